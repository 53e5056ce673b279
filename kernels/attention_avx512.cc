// AVX-512 attention heads (see attention_kernel.h for the order of
// operations every variant follows). One zmm holds the 16 lanes of a q.k
// dot product, four positions run together; the softmax exponentials and
// their double sums go 16 (8) at a time; the weighted sum of V keeps up to 8
// zmm accumulators (head_dim 128) across all positions.
#include "kernels/attention_kernel.h"

#if defined(__x86_64__)

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define BITNET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))

namespace bitnet::kernels {

namespace {

BITNET_AVX512 inline float Fold16(__m512 v) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

BITNET_AVX512 inline __m512 RoundHalf(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

template <bool kF16>
struct Kv;
template <>
struct Kv<true> {
  using T = uint16_t;
  BITNET_AVX512 static __m512 Load(const T* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
  BITNET_AVX512 static __m512 Load(const T* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  // Products of two fp16 values are exact: the FMA equals multiply + add.
  BITNET_AVX512 static __m512 MulAdd(__m512 a, __m512 b, __m512 acc) {
    return _mm512_fmadd_ps(a, b, acc);
  }
  BITNET_AVX512 static __m512 Round(__m512 x) { return RoundHalf(x); }
};
template <>
struct Kv<false> {
  using T = float;
  BITNET_AVX512 static __m512 Load(const T* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  BITNET_AVX512 static __m512 Load(const T* p) { return _mm512_loadu_ps(p); }
  BITNET_AVX512 static __m512 MulAdd(__m512 a, __m512 b, __m512 acc) {
    return _mm512_add_ps(acc, _mm512_mul_ps(a, b));
  }
  BITNET_AVX512 static __m512 Round(__m512 x) { return x; }
};

// out[c*16 ..] for NC chunks starting at chunk c0: sum over p of w[p] * V.
template <bool kF16, bool kFull, int NC>
BITNET_AVX512 void WeightedV(const typename Kv<kF16>::T* v, int64_t n_pos, int64_t kv_stride,
                             int64_t hd, int64_t c0, const float* w, float* out) {
  using K = Kv<kF16>;
  __m512 acc[NC];
  __mmask16 mask[NC];
  for (int c = 0; c < NC; ++c) {
    acc[c] = _mm512_setzero_ps();
    const int64_t left = hd - 16 * (c0 + c);
    mask[c] = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
  }
  for (int64_t p = 0; p < n_pos; ++p) {
    const __m512 wp = _mm512_set1_ps(w[p]);
    const typename K::T* vp = v + p * kv_stride + 16 * c0;
    for (int c = 0; c < NC; ++c) {
      if constexpr (kFull) {
        acc[c] = K::MulAdd(wp, K::Load(vp + 16 * c), acc[c]);
      } else {
        acc[c] = K::MulAdd(wp, K::Load(vp + 16 * c, mask[c]), acc[c]);
      }
    }
  }
  for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(out + 16 * (c0 + c), mask[c], acc[c]);
}

// kFull: head_dim is a multiple of 16, so no load needs a mask.
template <bool kF16, bool kFull>
BITNET_AVX512 void Head(const float* q, const typename Kv<kF16>::T* k,
                        const typename Kv<kF16>::T* v, int64_t n_pos, int64_t kv_stride,
                        int64_t hd, float scale, float* scratch, float* out) {
  using K = Kv<kF16>;
  const int64_t nc = (hd + 15) / 16;
  float* qh = scratch + n_pos;
  const __mmask16 tail = static_cast<__mmask16>(hd % 16 == 0 ? 0xffff : (1u << (hd % 16)) - 1);
  auto chunk_mask = [&](int64_t c) {
    return kFull || c + 1 < nc ? static_cast<__mmask16>(0xffff) : tail;
  };
  for (int64_t c = 0; c < nc; ++c) {
    const __mmask16 m = chunk_mask(c);
    _mm512_mask_storeu_ps(qh + 16 * c, m, K::Round(_mm512_maskz_loadu_ps(m, q + 16 * c)));
  }

  // Scores, four positions at a time (independent add chains).
  float mx = -INFINITY;
  int64_t p = 0;
  for (; p + 4 <= n_pos; p += 4) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const typename K::T* kp = k + p * kv_stride;
    for (int64_t c = 0; c < nc; ++c) {
      if constexpr (kFull) {
        const __m512 qv = _mm512_loadu_ps(qh + 16 * c);
        a0 = K::MulAdd(qv, K::Load(kp + 16 * c), a0);
        a1 = K::MulAdd(qv, K::Load(kp + kv_stride + 16 * c), a1);
        a2 = K::MulAdd(qv, K::Load(kp + 2 * kv_stride + 16 * c), a2);
        a3 = K::MulAdd(qv, K::Load(kp + 3 * kv_stride + 16 * c), a3);
      } else {
        const __mmask16 m = chunk_mask(c);
        const __m512 qv = _mm512_maskz_loadu_ps(m, qh + 16 * c);
        a0 = K::MulAdd(qv, K::Load(kp + 16 * c, m), a0);
        a1 = K::MulAdd(qv, K::Load(kp + kv_stride + 16 * c, m), a1);
        a2 = K::MulAdd(qv, K::Load(kp + 2 * kv_stride + 16 * c, m), a2);
        a3 = K::MulAdd(qv, K::Load(kp + 3 * kv_stride + 16 * c, m), a3);
      }
    }
    const float s[4] = {Fold16(a0) * scale, Fold16(a1) * scale, Fold16(a2) * scale,
                        Fold16(a3) * scale};
    for (int i = 0; i < 4; ++i) {
      scratch[p + i] = s[i];
      mx = s[i] > mx ? s[i] : mx;
    }
  }
  for (; p < n_pos; ++p) {
    __m512 a = _mm512_setzero_ps();
    const typename K::T* kp = k + p * kv_stride;
    for (int64_t c = 0; c < nc; ++c) {
      const __mmask16 m = chunk_mask(c);
      a = K::MulAdd(_mm512_maskz_loadu_ps(m, qh + 16 * c), K::Load(kp + 16 * c, m), a);
    }
    scratch[p] = Fold16(a) * scale;
    mx = scratch[p] > mx ? scratch[p] : mx;
  }

  // Softmax: exponentials, their sum in 8 double lanes (p % 8).
  const __m512 mv = _mm512_set1_ps(mx);
  __m512d sum = _mm512_setzero_pd();
  for (p = 0; p < n_pos; p += 16) {
    const int64_t left = n_pos - p;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff)
                                   : static_cast<__mmask16>((1u << left) - 1);
    const __m512 e = _mm512_maskz_mov_ps(m, FastExp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + p), mv)));
    _mm512_mask_storeu_ps(scratch + p, m, e);
    sum = _mm512_add_pd(sum, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    sum = _mm512_add_pd(sum, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(sum), _mm512_extractf64x4_pd(sum, 1));
  const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
  const double total = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / total));
  for (p = 0; p < n_pos; p += 16) {
    const int64_t left = n_pos - p;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff)
                                   : static_cast<__mmask16>((1u << left) - 1);
    _mm512_mask_storeu_ps(scratch + p, m,
                          K::Round(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, scratch + p), inv)));
  }

  // out = sum of w[p] * V[p], up to 8 chunks (128 values) per pass.
  for (int64_t c0 = 0; c0 < nc; c0 += 8) {
    switch (nc - c0 >= 8 ? 8 : nc - c0) {
      case 8: WeightedV<kF16, kFull, 8>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 7: WeightedV<kF16, kFull, 7>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 6: WeightedV<kF16, kFull, 6>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 5: WeightedV<kF16, kFull, 5>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 4: WeightedV<kF16, kFull, 4>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 3: WeightedV<kF16, kFull, 3>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      case 2: WeightedV<kF16, kFull, 2>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
      default: WeightedV<kF16, kFull, 1>(v, n_pos, kv_stride, hd, c0, scratch, out); break;
    }
  }
}

BITNET_AVX512 void HeadF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                           int64_t kv_stride, int64_t hd, float scale, float* scratch,
                           float* out) {
  if (hd % 16 == 0) {
    Head<true, true>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
  } else {
    Head<true, false>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
  }
}

BITNET_AVX512 void HeadF32(const float* q, const float* k, const float* v, int64_t n_pos,
                           int64_t kv_stride, int64_t hd, float scale, float* scratch,
                           float* out) {
  if (hd % 16 == 0) {
    Head<false, true>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
  } else {
    Head<false, false>(q, k, v, n_pos, kv_stride, hd, scale, scratch, out);
  }
}

const AttentionKernelOps kOps = {HeadF16, HeadF32};

}  // namespace

const AttentionKernelOps* Avx512AttentionOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const AttentionKernelOps* Avx512AttentionOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
