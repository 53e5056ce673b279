// The parts of TernaryMatrix every build needs (no absl: the ARM cross test
// compiles this file).
#include "kernels/ternary_matrix.h"

#include "kernels/packed_ternary.h"

namespace bitnet::kernels {

size_t TernaryMatrix::memory_bytes() const {
  return codes.size() + scales.size() * sizeof(float) + (packed ? packed->memory_bytes() : 0);
}

void PrepareForKernels(TernaryMatrix& w, bool keep_codes) {
  if (!w.packed) {
    auto p = std::make_shared<PackedTernary>();
    PackForKernels(w, p.get());
    w.packed = std::move(p);
  }
  if (!keep_codes) {
    w.codes.clear();
    w.codes.shrink_to_fit();
  }
}

}  // namespace bitnet::kernels
