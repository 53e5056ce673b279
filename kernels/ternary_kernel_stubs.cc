// Variants not written yet.
#include "kernels/ternary_kernel.h"
namespace bitnet::kernels {
const TernaryKernelOps* Avx2KernelOps() { return nullptr; }
const TernaryKernelOps* AvxVnniKernelOps() { return nullptr; }
const TernaryKernelOps* NeonKernelOps() { return nullptr; }
const TernaryKernelOps* NeonDotKernelOps() { return nullptr; }
}  // namespace bitnet::kernels
