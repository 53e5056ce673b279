// Variants not written yet.
#include "kernels/ternary_kernel.h"
namespace bitnet::kernels {
const TernaryKernelOps* NeonKernelOps() { return nullptr; }
const TernaryKernelOps* NeonDotKernelOps() { return nullptr; }
}  // namespace bitnet::kernels
