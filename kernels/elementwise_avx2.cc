// AVX2 element-wise ops: RMSNorm's double sum of squares (8 double lanes in
// two ymm, as the reference) and scaling, SiLU (the shared FastExp) and
// relu^2 gates. The last n % 8 values go through the scalar reference code.
#include "kernels/elementwise_kernel.h"

#if defined(__x86_64__)

#include "kernels/fast_exp.h"

#define BITNET_AVX2 __attribute__((target("avx2")))

namespace bitnet::kernels {

namespace {

BITNET_AVX2 double SumSquares(const float* x, int64_t n) {
  __m256d lo = _mm256_setzero_pd(), hi = lo;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(v, v);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  alignas(32) double lanes[8];
  _mm256_store_pd(lanes, lo);
  _mm256_store_pd(lanes + 4, hi);
  for (; i < n; ++i) lanes[i % 8] += static_cast<double>(x[i] * x[i]);
  for (int w = 4; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  }
  return lanes[0];
}

BITNET_AVX2 void ScaleMul(const float* x, const float* w, int64_t n, float scale, float* y) {
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), s);
    if (w != nullptr) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) y[i] = w != nullptr ? (x[i] * scale) * w[i] : x[i] * scale;
}

BITNET_AVX2 void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = FastExp8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + FastExp(-g))) * up[i];
  }
}

BITNET_AVX2 void Relu2Mul(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // max(g, 0) = g > 0 ? g : 0 (the second operand for NaN), as the reference.
    const __m256 r = _mm256_max_ps(_mm256_loadu_ps(gate + i), _mm256_setzero_ps());
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float r = gate[i] > 0.f ? gate[i] : 0.f;
    out[i] = (r * r) * up[i];
  }
}

const ElementwiseOps kOps = {SumSquares, ScaleMul, SiluMul, Relu2Mul};

}  // namespace

const ElementwiseOps* Avx2ElementwiseOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const ElementwiseOps* Avx2ElementwiseOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
