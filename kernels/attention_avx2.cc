// AVX2 attention heads (see attention_kernel.h for the order of operations
// every variant follows). Two ymm registers hold the 16 lanes of a q.k dot
// product (d % 16 < 8 and >= 8); head sizes that are not a multiple of 16
// finish their last columns in scalar code, lane by lane, which keeps the
// order. The weighted sum of V keeps up to 8 ymm accumulators per pass.
#include "kernels/attention_kernel.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstring>

#include "kernels/float16.h"

#define BITNET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace bitnet::kernels {

namespace {

BITNET_AVX2 inline float Fold16(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

BITNET_AVX2 inline __m256 RoundHalf(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <bool kF16>
struct Kv;
template <>
struct Kv<true> {
  using T = uint16_t;
  static float Scalar(const T* p) { return HalfBitsToFloat(*p); }
  BITNET_AVX2 static __m256 Load(const T* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // Products of two fp16 values are exact: the FMA equals multiply + add.
  BITNET_AVX2 static __m256 MulAdd(__m256 a, __m256 b, __m256 acc) {
    return _mm256_fmadd_ps(a, b, acc);
  }
  BITNET_AVX2 static __m256 Round(__m256 x) { return RoundHalf(x); }
  static float RoundScalar(float x) { return RoundToHalf(x); }
};
template <>
struct Kv<false> {
  using T = float;
  static float Scalar(const T* p) { return *p; }
  BITNET_AVX2 static __m256 Load(const T* p) { return _mm256_loadu_ps(p); }
  BITNET_AVX2 static __m256 MulAdd(__m256 a, __m256 b, __m256 acc) {
    return _mm256_add_ps(acc, _mm256_mul_ps(a, b));
  }
  BITNET_AVX2 static __m256 Round(__m256 x) { return x; }
  static float RoundScalar(float x) { return x; }
};

// One position's score: full 16-column chunks in SIMD, the rest lane by lane.
template <bool kF16>
BITNET_AVX2 inline float Score(const float* qh, const typename Kv<kF16>::T* kp, int64_t hd,
                               int64_t full) {
  using K = Kv<kF16>;
  __m256 lo = _mm256_setzero_ps(), hi = lo;
  for (int64_t d = 0; d < full; d += 16) {
    lo = K::MulAdd(_mm256_loadu_ps(qh + d), K::Load(kp + d), lo);
    hi = K::MulAdd(_mm256_loadu_ps(qh + d + 8), K::Load(kp + d + 8), hi);
  }
  if (full == hd) return Fold16(lo, hi);
  alignas(32) float lanes[16];
  _mm256_store_ps(lanes, lo);
  _mm256_store_ps(lanes + 8, hi);
  for (int64_t d = full; d < hd; ++d) lanes[d - full] += qh[d] * K::Scalar(kp + d);
  for (int w = 8; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  }
  return lanes[0];
}

template <bool kF16, int NC>
BITNET_AVX2 void WeightedV(const typename Kv<kF16>::T* v, int64_t n_pos, int64_t kv_stride,
                           int64_t d0, const float* w, float* out) {
  using K = Kv<kF16>;
  __m256 acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = _mm256_setzero_ps();
  for (int64_t p = 0; p < n_pos; ++p) {
    const __m256 wp = _mm256_set1_ps(w[p]);
    const typename K::T* vp = v + p * kv_stride + d0;
    for (int c = 0; c < NC; ++c) acc[c] = K::MulAdd(wp, K::Load(vp + 8 * c), acc[c]);
  }
  for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
}

template <bool kF16>
BITNET_AVX2 void Head(const float* q, const typename Kv<kF16>::T* k,
                      const typename Kv<kF16>::T* v, int64_t n_pos, int64_t kv_stride,
                      int64_t hd, float scale, float* scratch, float* out) {
  using K = Kv<kF16>;
  float* qh = scratch + n_pos;
  const int64_t full = hd / 16 * 16;
  int64_t d = 0;
  for (; d + 8 <= hd; d += 8) _mm256_storeu_ps(qh + d, K::Round(_mm256_loadu_ps(q + d)));
  for (; d < hd; ++d) qh[d] = K::RoundScalar(q[d]);

  float mx = -INFINITY;
  for (int64_t p = 0; p < n_pos; ++p) {
    scratch[p] = Score<kF16>(qh, k + p * kv_stride, hd, full) * scale;
    mx = scratch[p] > mx ? scratch[p] : mx;
  }

  // Softmax: exponentials, their sum in 8 double lanes (p % 8: two ymm).
  const __m256 mv = _mm256_set1_ps(mx);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  int64_t p = 0;
  for (; p + 8 <= n_pos; p += 8) {
    const __m256 e = FastExp8(_mm256_sub_ps(_mm256_loadu_ps(scratch + p), mv));
    _mm256_storeu_ps(scratch + p, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (p < n_pos) {
    alignas(32) float t[8] = {};
    std::memcpy(t, scratch + p, static_cast<size_t>(n_pos - p) * sizeof(float));
    __m256 e = FastExp8(_mm256_sub_ps(_mm256_load_ps(t), mv));
    _mm256_store_ps(t, e);
    for (int64_t j = n_pos - p; j < 8; ++j) t[j] = 0.0f;  // lanes past n_pos add +0
    e = _mm256_load_ps(t);
    std::memcpy(scratch + p, t, static_cast<size_t>(n_pos - p) * sizeof(float));
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  const __m256d s4 = _mm256_add_pd(s0, s1);
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  const double total = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  const float inv = static_cast<float>(1.0 / total);
  const __m256 iv = _mm256_set1_ps(inv);
  for (p = 0; p + 8 <= n_pos; p += 8) {
    _mm256_storeu_ps(scratch + p, K::Round(_mm256_mul_ps(_mm256_loadu_ps(scratch + p), iv)));
  }
  for (; p < n_pos; ++p) scratch[p] = K::RoundScalar(scratch[p] * inv);

  // out = sum of w[p] * V[p]: 8-column chunks in SIMD (up to 8 per pass),
  // the rest per column.
  const int64_t full8 = hd / 8 * 8;
  for (int64_t d0 = 0; d0 < full8; d0 += 64) {
    switch ((full8 - d0) / 8 >= 8 ? 8 : (full8 - d0) / 8) {
      case 8: WeightedV<kF16, 8>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 7: WeightedV<kF16, 7>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 6: WeightedV<kF16, 6>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 5: WeightedV<kF16, 5>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 4: WeightedV<kF16, 4>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 3: WeightedV<kF16, 3>(v, n_pos, kv_stride, d0, scratch, out); break;
      case 2: WeightedV<kF16, 2>(v, n_pos, kv_stride, d0, scratch, out); break;
      default: WeightedV<kF16, 1>(v, n_pos, kv_stride, d0, scratch, out); break;
    }
  }
  for (int64_t dd = full8; dd < hd; ++dd) {
    float acc = 0.0f;
    for (p = 0; p < n_pos; ++p) acc += scratch[p] * K::Scalar(v + p * kv_stride + dd);
    out[dd] = acc;
  }
}

BITNET_AVX2 void HeadF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                         int64_t kv_stride, int64_t hd, float scale, float* scratch, float* out) {
  Head<true>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
}

BITNET_AVX2 void HeadF32(const float* q, const float* k, const float* v, int64_t n_pos,
                         int64_t kv_stride, int64_t hd, float scale, float* scratch, float* out) {
  Head<false>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
}

const AttentionKernelOps kOps = {HeadF16, HeadF32};

}  // namespace

const AttentionKernelOps* Avx2AttentionOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const AttentionKernelOps* Avx2AttentionOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
