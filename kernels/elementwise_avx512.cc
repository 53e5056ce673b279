// AVX-512 element-wise ops: RMSNorm's double sum of squares (8 double lanes,
// as the reference) and scaling, SiLU (the shared FastExp) and relu^2 gates.
// Tails use masked loads; masked-off lanes add +0, which changes no sum.
#include "kernels/elementwise_kernel.h"

#if defined(__x86_64__)

#include "kernels/fast_exp.h"

#define BITNET_AVX512 __attribute__((target("avx512f,avx512dq")))

namespace bitnet::kernels {

namespace {

BITNET_AVX512 inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
}

BITNET_AVX512 double SumSquares(const float* x, int64_t n) {
  __m512d acc = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(TailMask(n - i), x + i);
    const __m512 sq = _mm512_mul_ps(v, v);
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(sq)));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sq, 1)));
  }
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1));
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

BITNET_AVX512 void ScaleMul(const float* x, const float* w, int64_t n, float scale, float* y) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s);
    if (w != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

BITNET_AVX512 void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = FastExp16(_mm512_xor_ps(g, _mm512_set1_ps(-0.0f)));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

BITNET_AVX512 void Relu2Mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = TailMask(n - i);
    // max(g, 0) = g > 0 ? g : 0 (the second operand for NaN), as the reference.
    const __m512 r = _mm512_max_ps(_mm512_maskz_loadu_ps(m, gate + i), _mm512_setzero_ps());
    _mm512_mask_storeu_ps(out + i, m,
                          _mm512_mul_ps(_mm512_mul_ps(r, r), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

const ElementwiseOps kOps = {SumSquares, ScaleMul, SiluMul, Relu2Mul};

}  // namespace

const ElementwiseOps* Avx512ElementwiseOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const ElementwiseOps* Avx512ElementwiseOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
