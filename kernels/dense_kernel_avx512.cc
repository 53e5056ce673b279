// AVX-512 (F/BW/VL/DQ + VNNI) dense kernels, compiled with per-function
// target attributes so the rest of the binary stays baseline x86-64.
//
// F16/BF16: four zmm accumulators per row are exactly the reference's 64
// lanes (independent add chains), and a row is read as one linear stream
// with software prefetch (four rows side by side, one stream each, measured
// 15-20% slower). F16 x fp16 products are exact in f32, so the FMA equals
// the reference's multiply-then-add; BF16 products can underflow, so BF16
// uses a separate multiply and add.
// Q8_0: two blocks per zmm, weights offset to unsigned (w ^ 0x80 = w + 128)
// for vpdpbusd, then 128 * sum(q) taken off per block; eight blocks' sums
// are reduced together.
// Q6_K: 6-bit codes rebuilt from the nibbles and the 2-bit planes (variable
// shifts put each 64-value quarter's bits in place), vpmaddubsw against the
// Q8_K activations, vpdpwssd with the sub-block scales; the -32 offset is
// taken off once per block with the activation's 16-value sums.
// Integer block sums are exact, so the float steps (the reference's) decide
// the bits.
#include "kernels/dense_kernel.h"

#if defined(__x86_64__)

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/float16.h"

#define BITNET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))

namespace bitnet::kernels {

namespace {

// Bytes ahead of the current position that a row stream prefetches: 4 KiB
// measured best for every format (as for the ternary kernels); 1 KiB left
// F16 at 82% and Q6_K at 80% of the stream-read probe.
constexpr int64_t kPrefetchBytes = 4096;

// The reference's fold of 16 lanes: j += j+8, j+4, j+2, j+1.
BITNET_AVX512 inline float Fold16(__m512 v) {
  __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

template <bool kBF16>
BITNET_AVX512 inline __m512 LoadHalf16(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (kBF16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(h);
  }
}

template <bool kBF16>
BITNET_AVX512 inline __m512 LoadHalfTail(const uint8_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if constexpr (kBF16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  } else {
    return _mm512_cvtph_ps(h);
  }
}

template <bool kBF16>
BITNET_AVX512 inline __m512 MulAdd(__m512 w, __m512 x, __m512 acc) {
  if constexpr (kBF16) {
    return _mm512_add_ps(acc, _mm512_mul_ps(w, x));
  } else {
    return _mm512_fmadd_ps(w, x, acc);  // exact product: same as mul + add
  }
}

// One row against NT tokens (x rows `stride` apart): four accumulators per
// token (lanes c % 64), each weight vector converted once for all NT tokens;
// the row is one linear stream.
template <bool kBF16, int NT>
BITNET_AVX512 void HalfRow64(const uint8_t* row, const float* x, int64_t stride, int64_t cols,
                             float* out, int64_t out_stride) {
  __m512 acc[NT][4];
  for (int t = 0; t < NT; ++t) {
    for (int q = 0; q < 4; ++q) acc[t][q] = _mm512_setzero_ps();
  }
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + 2 * c + kPrefetchBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(row + 2 * c + kPrefetchBytes + 64), _MM_HINT_T0);
    for (int q = 0; q < 4; ++q) {
      const __m512 wv = LoadHalf16<kBF16>(row + 2 * (c + 16 * q));
      for (int t = 0; t < NT; ++t) {
        acc[t][q] = MulAdd<kBF16>(wv, _mm512_loadu_ps(x + t * stride + c + 16 * q), acc[t][q]);
      }
    }
  }
  for (int q = 0; c < cols; c += 16, ++q) {
    const int64_t left = cols - c;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    const __m512 wv = LoadHalfTail<kBF16>(row + 2 * c, m);
    for (int t = 0; t < NT; ++t) {
      acc[t][q] = MulAdd<kBF16>(wv, _mm512_maskz_loadu_ps(m, x + t * stride + c), acc[t][q]);
    }
  }
  // 64 lanes -> 32 -> 16 (j + j+32, then j + j+16), then the 16-lane fold.
  for (int t = 0; t < NT; ++t) {
    out[t * out_stride] = Fold16(_mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][2]),
                                               _mm512_add_ps(acc[t][1], acc[t][3])));
  }
}

template <bool kBF16>
BITNET_AVX512 void HalfRows(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                            float* y) {
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    int64_t i = 0;
    // Up to four tokens share each converted weight vector (16 accumulators).
    for (; i + 4 <= a.n; i += 4) {
      HalfRow64<kBF16, 4>(row, a.x + i * a.cols, a.cols, w.cols, y + i * w.rows + r, w.rows);
    }
    switch (a.n - i) {
      case 3: HalfRow64<kBF16, 3>(row, a.x + i * a.cols, a.cols, w.cols, y + i * w.rows + r, w.rows); break;
      case 2: HalfRow64<kBF16, 2>(row, a.x + i * a.cols, a.cols, w.cols, y + i * w.rows + r, w.rows); break;
      case 1: HalfRow64<kBF16, 1>(row, a.x + i * a.cols, a.cols, w.cols, y + i * w.rows + r, w.rows); break;
      default: break;
    }
  }
}

BITNET_AVX512 void RowsF16(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                           float* y) {
  HalfRows<false>(w, a, r0, r1, y);
}

BITNET_AVX512 void RowsBF16(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                            float* y) {
  HalfRows<true>(w, a, r0, r1, y);
}

// ---- Q8_0 ----

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Dot products of two consecutive Q8_0 blocks (b, b+1) of a row with the
// activations: 8 partial sums each, lanes 0-7 and 8-15, of (w + 128) * q.
BITNET_AVX512 inline __m512i PairDot(const uint8_t* blk, const int8_t* q) {
  const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  const __m256i w1 =
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQ8_0BlockBytes + 2));
  const __m512i wu = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1),
                                      _mm512_set1_epi8(static_cast<char>(0x80)));
  const __m512i xq = _mm512_loadu_si512(q);
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), wu, xq);
}

// Sums of 8 consecutive blocks, in block order, of 4 PairDot results.
BITNET_AVX512 inline __m256i ReduceEight(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  // Within each 128-bit lane: (v0, v1) interleaved sums, then (v0..v3) sums.
  const __m512i u01 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i u23 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  const __m512i s = _mm512_add_epi32(_mm512_unpacklo_epi64(u01, u23), _mm512_unpackhi_epi64(u01, u23));
  // 128-bit lane L of s holds (v0, v1, v2, v3) partial sums over lane L;
  // block 2k is lanes 0+1 of v_k, block 2k+1 lanes 2+3.
  const __m512i lanes02 = _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(2, 0, 2, 0));
  const __m512i lanes13 = _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(3, 1, 3, 1));
  const __m256i t = _mm512_castsi512_si256(_mm512_add_epi32(lanes02, lanes13));
  // t = (b0, b2, b4, b6, b1, b3, b5, b7) -> block order.
  return _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

BITNET_AVX512 void RowsQ8_0(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                            float* y) {
  const int64_t nb = w.cols / kQ8_0Block;
  const __m256i gather_off = _mm256_setr_epi32(0, 34, 68, 102, 136, 170, 204, 238);
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* q = a.q + i * a.cols;
    const float* dx = a.d + i * nb;
    const int32_t* qsum = a.qsum + i * nb;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
      float acc = 0.0f;
      int64_t b = 0;
      alignas(32) float terms[8];
      for (; b + 8 <= nb; b += 8) {
        const uint8_t* blk = row + b * kQ8_0BlockBytes;
        _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 64), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 128), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 192), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 256), _MM_HINT_T0);
        const int8_t* qb = q + b * kQ8_0Block;
        const __m256i sums = ReduceEight(PairDot(blk, qb),
                                         PairDot(blk + 2 * kQ8_0BlockBytes, qb + 64),
                                         PairDot(blk + 4 * kQ8_0BlockBytes, qb + 128),
                                         PairDot(blk + 6 * kQ8_0BlockBytes, qb + 192));
        const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qsum + b));
        const __m256i isum = _mm256_sub_epi32(sums, _mm256_slli_epi32(qs, 7));
        // fp16 block scales: the low half of a 32-bit gather at each block.
        const __m256i dbits = _mm256_i32gather_epi32(reinterpret_cast<const int*>(blk), gather_off, 1);
        const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dbits));
        const __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(dx + b));
        _mm256_store_ps(terms, _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scale));
        for (int k = 0; k < 8; ++k) acc += terms[k];
      }
      for (; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ8_0BlockBytes;
        const int8_t* wq = reinterpret_cast<const int8_t*>(blk + 2);
        int32_t isum = 0;
        for (int64_t j = 0; j < kQ8_0Block; ++j) isum += wq[j] * q[b * kQ8_0Block + j];
        acc += static_cast<float>(isum) * (HalfBitsToFloat(LoadU16(blk)) * dx[b]);
      }
      y[i * w.rows + r] = acc;
    }
  }
}

// ---- Q6_K ----

// Sub-block (of 16 values) covered by each int16 lane of a vpmaddubsw
// result over 64 values.
alignas(64) constexpr int16_t kGroupOfLane[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                  2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};

// The exact integer sum of one Q6_K block against 256 Q8_K activations q,
// whose 16-value sums are bsum.
BITNET_AVX512 inline int32_t Q6KBlockDot(const uint8_t* blk, const int8_t* q, const int16_t* bsum) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i m30 = _mm512_set1_epi8(0x30);
  // Per 16-bit word: shift 4 for the first 32 bytes, 2 for the last 32.
  const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)));
  const __m512i sc = _mm512_castsi256_si512(sc16);
  __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};  // two short chains
  for (int h = 0; h < 2; ++h) {
    const __m512i l = _mm512_loadu_si512(ql + 64 * h);
    const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h)));
    // Values 128h + [0, 64): low nibbles; bits 0-1 (then 2-3) of qh moved to 4-5.
    const __m512i v0 = _mm512_or_si512(_mm512_and_si512(l, m4),
                                       _mm512_and_si512(_mm512_sllv_epi16(hb, shl), m30));
    // Values 128h + [64, 128): high nibbles; bits 4-5 (then 6-7) of qh.
    const __m512i v1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                       _mm512_and_si512(_mm512_srlv_epi16(hb, shr), m30));
    // Scales: int16 lane t of a product covers group 8h + 4j + t / 8.
    const __m512i idx0 = _mm512_add_epi16(_mm512_loadu_si512(kGroupOfLane),
                                          _mm512_set1_epi16(static_cast<int16_t>(8 * h)));
    const __m512i idx1 = _mm512_add_epi16(idx0, _mm512_set1_epi16(4));
    const __m512i s0 = _mm512_permutexvar_epi16(idx0, sc);
    const __m512i s1 = _mm512_permutexvar_epi16(idx1, sc);
    const __m512i x0 = _mm512_loadu_si512(q + 128 * h);
    const __m512i x1 = _mm512_loadu_si512(q + 128 * h + 64);
    acc[h] = _mm512_dpwssd_epi32(acc[h], _mm512_maddubs_epi16(v0, x0), s0);
    acc[h] = _mm512_dpwssd_epi32(acc[h], _mm512_maddubs_epi16(v1, x1), s1);
  }
  // The -32 offset of every code: 32 * sum_g scale_g * bsum_g.
  const __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum)));
  const __m512i sum = _mm512_add_epi32(acc[0], acc[1]);
  return _mm512_reduce_add_epi32(
      _mm512_sub_epi32(sum, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, 5))));
}

BITNET_AVX512 void RowsQ6K(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                           float* y) {
  const int64_t nb = w.cols / kQ6KBlock;
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* q = a.q + i * a.cols;
    const float* dx = a.d + i * nb;
    const int16_t* bsum = a.bsum + i * (a.cols / 16);
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        for (int64_t off = 0; off < kQ6KBlockBytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + off), _MM_HINT_T0);
        }
        const int32_t isum = Q6KBlockDot(blk, q + b * kQ6KBlock, bsum + b * 16);
        acc += static_cast<float>(isum) * (_cvtsh_ss(LoadU16(blk + 208)) * dx[b]);
      }
      y[i * w.rows + r] = acc;
    }
  }
}

const DenseKernelOps kOps = {RowsF16, RowsBF16, RowsQ8_0, RowsQ6K};

}  // namespace

const DenseKernelOps* Avx512DenseOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const DenseKernelOps* Avx512DenseOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
