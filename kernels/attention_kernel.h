// The interface between the attention ops (kernels/ops.cc) and their
// per-instruction-set variants. Internal to kernels/.
//
// One query head against n_pos cached positions, in this order (the scalar
// reference in ops.cc; every variant gives its bits):
//   qh = round(q)                          (fp16 rounding for an fp16 cache)
//   s[p] = fold16(lanes) * scale           lane j sums qh[d] * K[p][d] over
//                                          d % 16 == j in d order (multiply,
//                                          then add), folded j+8, j+4, j+2, j+1
//   m = max s;  e[p] = AttnExp(s[p] - m)
//   sum = fold8(double lanes of e[p], p % 8), folded j+4, j+2, j+1
//   w[p] = round(e[p] * float(1 / sum))
//   out[d] = sum over p in order of w[p] * V[p][d]   (multiply, then add)
// With an fp16 cache every product is of two fp16 values, exact in f32.
#pragma once

#include <cstdint>

#include "kernels/fast_exp.h"

namespace bitnet::kernels {

// The softmax's exponential (kernels/fast_exp.h: identical bits in every
// variant).
inline float AttnExp(float x) { return FastExp(x); }

// One head: q (head_dim values, not yet rounded), K and V rows of this head
// (position p at p * kv_stride), scratch of n_pos + head_dim floats, out
// (head_dim values).
using AttnHeadF16Fn = void (*)(const float* q, const uint16_t* k, const uint16_t* v,
                               int64_t n_pos, int64_t kv_stride, int64_t head_dim, float scale,
                               float* scratch, float* out);
using AttnHeadF32Fn = void (*)(const float* q, const float* k, const float* v, int64_t n_pos,
                               int64_t kv_stride, int64_t head_dim, float scale, float* scratch,
                               float* out);

struct AttentionKernelOps {
  AttnHeadF16Fn f16 = nullptr;
  AttnHeadF32Fn f32 = nullptr;
};

// Null when not compiled in (non-x86 builds).
const AttentionKernelOps* Avx2AttentionOps();
const AttentionKernelOps* Avx512AttentionOps();

}  // namespace bitnet::kernels
