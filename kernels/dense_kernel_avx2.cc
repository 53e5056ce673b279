// AVX2 (+FMA, F16C) dense kernels, used by the avx2 and avxvnni variants;
// per-function target attributes keep the rest of the binary baseline.
//
// F16/BF16: eight ymm accumulators per row hold the reference's 64 lanes
// (c % 64), and a row is read as one linear stream. F16 products are exact,
// so FMA equals the reference's multiply-then-add; BF16 uses a separate
// multiply and add.
// Q8_0: blocks widened to int16 and multiplied with vpmaddwd (no saturation
// and no sign tricks, so a -128 weight is fine); eight blocks' sums are
// reduced together.
// Q6_K: as ggml's AVX2 code: codes rebuilt from nibbles and 2-bit planes,
// vpmaddubsw against Q8_K, vpmaddwd with the sub-block scales, the -32 offset
// taken off with the activation's 16-value sums.
#include "kernels/dense_kernel.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstring>

#include "kernels/float16.h"

#define BITNET_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace bitnet::kernels {

namespace {

constexpr int64_t kPrefetchBytes = 4096;

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// The reference's fold: lo/hi are lanes 0-7 and 8-15.
BITNET_AVX2 inline float Fold16(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  const __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}

template <bool kBF16>
BITNET_AVX2 inline __m256 LoadHalf8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBF16) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    return _mm256_cvtph_ps(h);
  }
}

template <bool kBF16>
BITNET_AVX2 inline __m256 MulAdd(__m256 w, __m256 x, __m256 acc) {
  if constexpr (kBF16) {
    return _mm256_add_ps(acc, _mm256_mul_ps(w, x));
  } else {
    return _mm256_fmadd_ps(w, x, acc);  // exact product: same as mul + add
  }
}

// One row, one token: eight ymm accumulators are the reference's 64 lanes
// (c % 64), read as one linear stream.
template <bool kBF16>
BITNET_AVX2 float HalfRow64(const uint8_t* row, const float* x, int64_t cols) {
  __m256 a[8];
  for (int q = 0; q < 8; ++q) a[q] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(row + 2 * c + kPrefetchBytes), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(row + 2 * c + kPrefetchBytes + 64), _MM_HINT_T0);
    for (int q = 0; q < 8; ++q) {
      a[q] = MulAdd<kBF16>(LoadHalf8<kBF16>(row + 2 * (c + 8 * q)), _mm256_loadu_ps(x + c + 8 * q), a[q]);
    }
  }
  int q = 0;
  for (; c + 8 <= cols; c += 8, ++q) {
    a[q] = MulAdd<kBF16>(LoadHalf8<kBF16>(row + 2 * c), _mm256_loadu_ps(x + c), a[q]);
  }
  if (c == cols) {
    // 64 -> 32 -> 16 lanes (j + j+32, j + j+16), then the 16-lane fold.
    const __m256 b0 = _mm256_add_ps(a[0], a[4]), b1 = _mm256_add_ps(a[1], a[5]);
    const __m256 b2 = _mm256_add_ps(a[2], a[6]), b3 = _mm256_add_ps(a[3], a[7]);
    return Fold16(_mm256_add_ps(b0, b2), _mm256_add_ps(b1, b3));
  }
  // The last cols % 8 columns, lane by lane, then the reference's fold.
  alignas(32) float lanes[64];
  for (int k = 0; k < 8; ++k) _mm256_store_ps(lanes + 8 * k, a[k]);
  for (; c < cols; ++c) {
    uint16_t h;
    std::memcpy(&h, row + 2 * c, 2);
    lanes[c % 64] += (kBF16 ? BF16BitsToFloat(h) : HalfBitsToFloat(h)) * x[c];
  }
  return FoldDenseLanes(lanes);
}

template <bool kBF16>
BITNET_AVX2 void HalfRows(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                          float* y) {
  for (int64_t i = 0; i < a.n; ++i) {
    const float* x = a.x + i * a.cols;
    float* yi = y + i * w.rows;
    for (int64_t r = r0; r < r1; ++r) yi[r] = HalfRow64<kBF16>(w.row(r), x, w.cols);
  }
}

BITNET_AVX2 void RowsF16(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                         float* y) {
  HalfRows<false>(w, a, r0, r1, y);
}

BITNET_AVX2 void RowsBF16(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                          float* y) {
  HalfRows<true>(w, a, r0, r1, y);
}

// ---- Q8_0 ----

// 8 partial sums of one block's products (int16 widening: exact).
BITNET_AVX2 inline __m256i BlockDot(const uint8_t* blk, const int8_t* q) {
  const __m128i* wp = reinterpret_cast<const __m128i*>(blk + 2);
  const __m128i* xp = reinterpret_cast<const __m128i*>(q);
  const __m256i p0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(wp)),
                                       _mm256_cvtepi8_epi16(_mm_loadu_si128(xp)));
  const __m256i p1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(wp + 1)),
                                       _mm256_cvtepi8_epi16(_mm_loadu_si128(xp + 1)));
  return _mm256_add_epi32(p0, p1);
}

BITNET_AVX2 void RowsQ8_0(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                          float* y) {
  const int64_t nb = w.cols / kQ8_0Block;
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* q = a.q + i * a.cols;
    const float* dx = a.d + i * nb;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
      float acc = 0.0f;
      int64_t b = 0;
      alignas(32) float terms[8];
      alignas(16) uint16_t dbits[8];
      for (; b + 8 <= nb; b += 8) {
        const uint8_t* blk = row + b * kQ8_0BlockBytes;
        for (int64_t off = 0; off < 8 * kQ8_0BlockBytes; off += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + off), _MM_HINT_T0);
        }
        const int8_t* qb = q + b * kQ8_0Block;
        __m256i p[8];
        for (int k = 0; k < 8; ++k) p[k] = BlockDot(blk + k * kQ8_0BlockBytes, qb + k * kQ8_0Block);
        // Per 128-bit lane: the 4 sums of p0..p3 (and p4..p7); then lo + hi.
        const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
        const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                                              _mm256_permute2x128_si256(h0, h1, 0x31));
        for (int k = 0; k < 8; ++k) dbits[k] = LoadU16(blk + k * kQ8_0BlockBytes);
        const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dbits)));
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

// pshufb masks: bytes 0-7 pick scale 2p, bytes 8-15 scale 2p + 1.
alignas(16) constexpr uint8_t kScalePair[8][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15}};

BITNET_AVX2 inline int32_t HorizontalSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

BITNET_AVX2 inline int32_t Q6KBlockDot(const uint8_t* blk, const int8_t* q, const int16_t* bsum) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m30 = _mm256_set1_epi8(0x30);
  const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    const __m256i la = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h));
    const __m256i lb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh + 32 * h));
    const __m256i v[4] = {
        _mm256_or_si256(_mm256_and_si256(la, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30)),
        _mm256_or_si256(_mm256_and_si256(lb, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(la, 4), m4), _mm256_and_si256(hb, m30)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lb, 4), m4),
                        _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30))};
    for (int k = 0; k < 4; ++k) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 128 * h + 32 * k));
      const __m256i s = _mm256_cvtepi8_epi16(
          _mm_shuffle_epi8(sc8, _mm_load_si128(reinterpret_cast<const __m128i*>(kScalePair[4 * h + k]))));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(v[k], x), s));
    }
  }
  const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum)));
  return HorizontalSum(_mm256_sub_epi32(acc, _mm256_slli_epi32(corr, 5)));
}

BITNET_AVX2 void RowsQ6K(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
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

const DenseKernelOps* Avx2DenseOps() { return &kOps; }

}  // namespace bitnet::kernels

#else  // !__x86_64__

namespace bitnet::kernels {
const DenseKernelOps* Avx2DenseOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
