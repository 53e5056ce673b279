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

#include <bit>
#include <cmath>
#include <cstdint>

namespace bitnet::kernels {

// exp(x) for the softmax, written with multiplies and adds only (no FMA) so a
// SIMD version gives the same bits: Cody-Waite reduction by ln 2 and Cephes'
// degree-6 polynomial (about 1 ulp). 0 below -87 (2^-126 is the smallest
// scale it builds), +inf above 88.7.
inline float AttnExp(float x) {
  if (std::isnan(x)) return x;
  if (x < -87.0f) return 0.0f;
  if (x > 88.7f) return INFINITY;
  const float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * (r * r);
  y = y + r;
  y = y + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  return y * std::bit_cast<float>(bits);
}

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
