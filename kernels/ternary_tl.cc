#include "kernels/ternary_tl.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace bitnet::kernels {

namespace {

constexpr int64_t kRows = 16, kCols = 16;

// Per quad: 16 low bytes then 16 high bytes of T[m]; a group's four quads
// are laid out as the four 128-bit lanes of a low-byte vector followed by
// those of a high-byte vector (128 bytes per group).
void BuildTables(const int8_t* q, int64_t cols, int64_t groups, int16_t* t16,
                 uint8_t* bytes) {
  for (int64_t g = 0; g < groups; ++g) {
    for (int quad = 0; quad < 4; ++quad) {
      int16_t v[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t c = g * kCols + 4 * quad + k;
        v[k] = c < cols ? q[c] : 0;
      }
      int16_t* t = t16 + (g * 4 + quad) * 16;
      for (int m = 0; m < 16; ++m) {
        t[m] = static_cast<int16_t>(((m & 1) ? v[0] : 0) + ((m & 2) ? v[1] : 0) +
                                    ((m & 4) ? v[2] : 0) + ((m & 8) ? v[3] : 0));
        bytes[g * 128 + quad * 16 + m] = static_cast<uint8_t>(t[m] & 0xff);
        bytes[g * 128 + 64 + quad * 16 + m] = static_cast<uint8_t>((t[m] >> 8) & 0xff);
      }
    }
  }
}

void Finish(const TlPacked& w, int64_t tile, const int32_t* isum, float da, float* y) {
  for (int j = 0; j < kRows; ++j) {
    const int64_t r = tile * kRows + j;
    if (r < w.rows) y[r] = 0.0f + static_cast<float>(isum[j]) * (da * w.scales[r]);
  }
}

void ScalarGemv(const TlPacked& w, const QuantizedActs& x, const int16_t* t16, float* y) {
  for (int64_t t = 0; t < w.tiles; ++t) {
    int32_t isum[kRows] = {};
    for (int64_t g = 0; g < w.groups; ++g) {
      const uint8_t* blk = w.codes.data() + (t * w.groups + g) * 64;
      for (int quad = 0; quad < 4; ++quad) {
        const int16_t* tab = t16 + (g * 4 + quad) * 16;
        for (int j = 0; j < kRows; ++j) {
          const uint8_t b = blk[quad * 16 + j];
          isum[j] += tab[b & 15] + 2 * tab[b >> 4];
        }
      }
    }
    for (int j = 0; j < kRows; ++j) isum[j] -= x.row_sum[0];
    Finish(w, t, isum, x.scale[0], y);
  }
}

#if defined(__x86_64__)

// int16 lanes hold sums of at most 1024 per group; widen every 16 groups.
constexpr int64_t kWiden = 16;

__attribute__((target("avx512f,avx512bw"))) void Avx512Gemv(const TlPacked& w,
                                                             const QuantizedActs& x,
                                                             const uint8_t* tabs, float* y) {
  const __m512i nib = _mm512_set1_epi8(0x0f);
  for (int64_t t = 0; t < w.tiles; ++t) {
    const uint8_t* tile = w.codes.data() + t * w.groups * 64;
    __m512i wide_lo = _mm512_setzero_si512(), wide_hi = wide_lo;  // int32, rows 0-7 / 8-15
    for (int64_t g0 = 0; g0 < w.groups; g0 += kWiden) {
      __m512i acc_lo = _mm512_setzero_si512(), acc_hi = acc_lo;  // int16
      const int64_t g1 = std::min(w.groups, g0 + kWiden);
      for (int64_t g = g0; g < g1; ++g) {
        _mm_prefetch(reinterpret_cast<const char*>(tile + g * 64 + 4096), _MM_HINT_T0);
        const __m512i v = _mm512_load_si512(tile + g * 64);
        const __m512i n0 = _mm512_and_si512(v, nib);
        const __m512i n1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
        const __m512i tl = _mm512_load_si512(tabs + g * 128);
        const __m512i th = _mm512_load_si512(tabs + g * 128 + 64);
        const __m512i l0 = _mm512_shuffle_epi8(tl, n0), h0 = _mm512_shuffle_epi8(th, n0);
        const __m512i l1 = _mm512_shuffle_epi8(tl, n1), h1 = _mm512_shuffle_epi8(th, n1);
        // Bytes -> int16 per 128-bit lane: rows 0-7 (unpacklo), 8-15 (unpackhi).
        const __m512i lo = _mm512_add_epi16(_mm512_unpacklo_epi8(l0, h0),
                                            _mm512_slli_epi16(_mm512_unpacklo_epi8(l1, h1), 1));
        const __m512i hi = _mm512_add_epi16(_mm512_unpackhi_epi8(l0, h0),
                                            _mm512_slli_epi16(_mm512_unpackhi_epi8(l1, h1), 1));
        acc_lo = _mm512_add_epi16(acc_lo, lo);
        acc_hi = _mm512_add_epi16(acc_hi, hi);
      }
      wide_lo = _mm512_add_epi32(wide_lo, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc_lo)));
      wide_lo = _mm512_add_epi32(wide_lo,
                                 _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc_lo, 1)));
      wide_hi = _mm512_add_epi32(wide_hi, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(acc_hi)));
      wide_hi = _mm512_add_epi32(wide_hi,
                                 _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(acc_hi, 1)));
    }
    // Each wide vector holds 8 rows twice (quads 0+2, 1+3): fold the halves.
    alignas(64) int32_t lanes[2][16];
    _mm512_store_si512(lanes[0], wide_lo);
    _mm512_store_si512(lanes[1], wide_hi);
    int32_t isum[kRows];
    for (int j = 0; j < 8; ++j) {
      isum[j] = lanes[0][j] + lanes[0][j + 8] - x.row_sum[0];
      isum[j + 8] = lanes[1][j] + lanes[1][j + 8] - x.row_sum[0];
    }
    Finish(w, t, isum, x.scale[0], y);
  }
}

__attribute__((target("avx2"))) void Avx2Gemv(const TlPacked& w, const QuantizedActs& x,
                                               const uint8_t* tabs, float* y) {
  const __m256i nib = _mm256_set1_epi8(0x0f);
  for (int64_t t = 0; t < w.tiles; ++t) {
    const uint8_t* tile = w.codes.data() + t * w.groups * 64;
    __m256i wide[4];  // rows 0-7 and 8-15, for quads 0-1 and 2-3
    for (auto& v : wide) v = _mm256_setzero_si256();
    for (int64_t g0 = 0; g0 < w.groups; g0 += kWiden) {
      __m256i acc[4];
      for (auto& v : acc) v = _mm256_setzero_si256();
      const int64_t g1 = std::min(w.groups, g0 + kWiden);
      for (int64_t g = g0; g < g1; ++g) {
        _mm_prefetch(reinterpret_cast<const char*>(tile + g * 64 + 4096), _MM_HINT_T0);
        for (int half = 0; half < 2; ++half) {  // quads 0-1, then 2-3
          const __m256i v =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(tile + g * 64 + 32 * half));
          const __m256i n0 = _mm256_and_si256(v, nib);
          const __m256i n1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
          const __m256i tl =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(tabs + g * 128 + 32 * half));
          const __m256i th = _mm256_load_si256(
              reinterpret_cast<const __m256i*>(tabs + g * 128 + 64 + 32 * half));
          const __m256i l0 = _mm256_shuffle_epi8(tl, n0), h0 = _mm256_shuffle_epi8(th, n0);
          const __m256i l1 = _mm256_shuffle_epi8(tl, n1), h1 = _mm256_shuffle_epi8(th, n1);
          acc[2 * half] = _mm256_add_epi16(
              acc[2 * half],
              _mm256_add_epi16(_mm256_unpacklo_epi8(l0, h0),
                               _mm256_slli_epi16(_mm256_unpacklo_epi8(l1, h1), 1)));
          acc[2 * half + 1] = _mm256_add_epi16(
              acc[2 * half + 1],
              _mm256_add_epi16(_mm256_unpackhi_epi8(l0, h0),
                               _mm256_slli_epi16(_mm256_unpackhi_epi8(l1, h1), 1)));
        }
      }
      for (int k = 0; k < 4; ++k) {
        wide[k] = _mm256_add_epi32(wide[k],
                                   _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[k])));
        wide[k] = _mm256_add_epi32(wide[k],
                                   _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[k], 1)));
      }
    }
    // wide[2h + lohi] lanes: rows (0-7 or 8-15) for quad 2h, then quad 2h+1.
    alignas(32) int32_t lanes[4][8];
    for (int k = 0; k < 4; ++k) _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[k]), wide[k]);
    int32_t isum[kRows];
    for (int j = 0; j < 8; ++j) {
      isum[j] = lanes[0][j] + lanes[2][j] - x.row_sum[0];
      isum[j + 8] = lanes[1][j] + lanes[3][j] - x.row_sum[0];
    }
    Finish(w, t, isum, x.scale[0], y);
  }
}

#endif

}  // namespace

bool PackTl(const TernaryMatrix& w, TlPacked* out) {
  if (!(w.scales.size() == 1 || w.scale_block == w.cols)) return false;
  out->rows = w.rows;
  out->cols = w.cols;
  out->tiles = (w.rows + kRows - 1) / kRows;
  out->groups = (w.cols + kCols - 1) / kCols;
  out->codes.AllocateWeights(static_cast<size_t>(out->tiles * out->groups * 64));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) {
      const int u = w.code(r, c) + 1;
      const int64_t g = c / kCols, quad = (c % kCols) / 4, k = c % 4;
      uint8_t& b = out->codes.data()[((r / kRows) * out->groups + g) * 64 + quad * 16 + r % kRows];
      if (u == 1) b = static_cast<uint8_t>(b | (1 << k));
      if (u == 2) b = static_cast<uint8_t>(b | (1 << (4 + k)));
    }
  }
  out->scales.assign(static_cast<size_t>(out->tiles * kRows), 0.0f);
  for (int64_t r = 0; r < w.rows; ++r) out->scales[r] = w.scale(r, 0);
  return true;
}

bool TlGemv(const TlPacked& w, const QuantizedActs& x, KernelVariant v, float* y,
            std::vector<int16_t>* tables) {
  if (x.mode != ActQuant::kPerToken || x.n != 1 || x.cols != w.cols) return false;
  // int16 tables, then the byte tables (64-byte aligned inside the vector).
  const size_t n16 = static_cast<size_t>(w.groups * 64);
  tables->resize(n16 + static_cast<size_t>(w.groups * 64) + 32);
  int16_t* t16 = tables->data();
  uint8_t* bytes = reinterpret_cast<uint8_t*>(tables->data() + n16);
  bytes += (64 - reinterpret_cast<uintptr_t>(bytes) % 64) % 64;
  BuildTables(x.q.data(), w.cols, w.groups, t16, bytes);
  switch (v) {
    case KernelVariant::kScalar:
      ScalarGemv(w, x, t16, y);
      return true;
#if defined(__x86_64__)
    case KernelVariant::kAvx2:
      if (!KernelVariantSupported(v)) return false;
      Avx2Gemv(w, x, bytes, y);
      return true;
    case KernelVariant::kAvx512:
      if (!KernelVariantSupported(v)) return false;
      Avx512Gemv(w, x, bytes, y);
      return true;
#endif
    default:
      return false;
  }
}

}  // namespace bitnet::kernels
