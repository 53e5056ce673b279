// The interface between the element-wise ops of kernels/ops.cc (RMSNorm,
// gated activations) and their per-instruction-set variants; each gives the
// scalar reference's bits (see ops.h). Internal to kernels/.
#pragma once

#include <cstdint>

namespace bitnet::kernels {

struct ElementwiseOps {
  // sum of double(x[i] * x[i]) in 8 double lanes (i % 8), folded 4, 2, 1.
  double (*sum_squares)(const float* x, int64_t n) = nullptr;
  // y[i] = (x[i] * scale) * w[i] (w may be null: x[i] * scale).
  void (*scale_mul)(const float* x, const float* w, int64_t n, float scale, float* y) = nullptr;
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out) = nullptr;
  void (*relu2_mul)(const float* gate, const float* up, int64_t n, float* out) = nullptr;
};

// Null when not compiled in (non-x86 builds).
const ElementwiseOps* Avx2ElementwiseOps();
const ElementwiseOps* Avx512ElementwiseOps();

}  // namespace bitnet::kernels
