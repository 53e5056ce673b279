// AVX-512 (F/BW/VL/DQ) + VNNI variant. Compiled with per-function target
// attributes so the rest of the binary stays baseline x86-64.
//
// Batch 1 (decode): each 64-byte block is masked four times (0x03, 0x0C,
// 0x30, 0xC0) and fed straight to vpdpbusd with the matching four
// activations broadcast: two ops per 64 MACs and no shifts. The four
// accumulators hold the field sums times 1, 4, 16 and 64; they are shifted
// back once per segment. The four tiles of a panel run together: they share
// the broadcasts, and 16 independent accumulators hide the vpdpbusd latency.
// Batches (prefill, batched decode): the fields are decoded once per block
// (shift + mask) and reused for up to 8 tokens.
#include "kernels/ternary_kernel.h"

#if defined(__x86_64__)

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own
// _mm512_undefined_* helpers; the warnings are about the headers, not us.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#define BITNET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))

namespace bitnet::kernels {

namespace {

BITNET_AVX512 inline __m512i Bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

BITNET_AVX512 inline void StoreLanes(const PackedTernary& w, int64_t tile, __m512 v, float* y_i) {
  const int64_t r0 = tile * kTileRows;
  const int64_t count = w.rows - r0;
  if (count >= kTileRows) {
    _mm512_storeu_ps(y_i + r0, v);
  } else if (count > 0) {
    _mm512_mask_storeu_ps(y_i + r0, static_cast<__mmask16>((1u << count) - 1), v);
  }
}

// How far ahead (in bytes) the batch-1 kernel prefetches its stream, into
// L1: the hardware prefetchers alone leave streaming well short of the read
// bandwidth. Same-process A/B over rotating copies (2026-12-05, 640 x 2560,
// about 300 pairs each): into L1 beat into L2 (the setting before) by 2-6
// points of the stream read. Of 4, 6, 8, 10, 12 and 16 KB ahead, 6 KB was
// best or within a point of it everywhere: one thread 94% (4 KB 93, 8 KB
// 92), two threads on one core 89% (90, 88), two on separate cores, where
// each core streams faster and needs more lines in flight, 80% (77, 80).
// 16 KB was the worst (73-87%). Prefetching past the buffer is harmless.
constexpr int64_t kPrefetchBytes = 6144;
// At the start of a chunk, the lines asked for at once (the loop's own
// prefetch only reaches kPrefetchBytes ahead of where it reads).
constexpr int64_t kHeadBytes = 8192;
// One line of every 4 KB page is also asked for this far ahead. Presumably
// this VM backs the weights' 2 MB pages with smaller host pages, so each
// 4 KB of a cold stream needs its own address translation and the hardware
// prefetcher stops at each such page; touching a page 16 KB early starts
// its translation before the lines 6 KB ahead are due. Same-process A/B
// with the weights cycled over 1 GB (cold, like a model's decode), 640 x
// 2560: 91 -> 94% of the stream read at one thread, 73 -> 76% and 86 ->
// 88% at two (two cores / one core); 2560 x 2560 at two: 86 -> 89%, 91 ->
// 93%. 32 and 64 KB were no better.
constexpr int64_t kPageBytes = 4096;
constexpr int64_t kFarBytes = 16384;

// The four field sums of one tile (times 1, 4, 16 and 64) and the four
// activations of a group, broadcast.
struct FieldSums {
  __m512i f0, f1, f2, f3;
};
struct GroupActs {
  __m512i b0, b1, b2, b3;
};

// acc += u8 x s8 dot products, in place. GCC 12 treats the intrinsic as
// three-operand: it copied each accumulator around it and, short of
// registers, stored seven of the sixteen to the stack on every group
// (448 bytes of stores per 256 bytes of weights). The asm pins each
// accumulator to one register. (Folding the broadcasts into the memory
// operand instead made the kernel load-port bound: 20% slower from L1, no
// faster from memory.)
BITNET_AVX512 inline __attribute__((always_inline)) void Dpbusd(__m512i& acc, __m512i u8,
                                                                __m512i s8) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u8), "v"(s8));
}

// One 64-byte block: each field masked in place and multiplied with its
// activations (two ops per 64 multiply-adds, no shifts).
BITNET_AVX512 inline __attribute__((always_inline)) void AccumulateBlock(const uint8_t* blk,
                                                                         const GroupActs& b,
                                                                         FieldSums& a) {
  const __m512i m0 = _mm512_set1_epi8(0x03), m1 = _mm512_set1_epi8(0x0C);
  const __m512i m2 = _mm512_set1_epi8(0x30), m3 = _mm512_set1_epi8(static_cast<char>(0xC0));
  const __m512i v = _mm512_load_si512(blk);
  Dpbusd(a.f0, _mm512_and_si512(v, m0), b.b0);
  Dpbusd(a.f1, _mm512_and_si512(v, m1), b.b1);
  Dpbusd(a.f2, _mm512_and_si512(v, m2), b.b2);
  Dpbusd(a.f3, _mm512_and_si512(v, m3), b.b3);
}

// The exact integer dot products of a tile's 16 rows with the segment.
BITNET_AVX512 inline __attribute__((always_inline)) __m512i RowSums(const FieldSums& a,
                                                                    __m512i qsum) {
  __m512i isum = _mm512_add_epi32(a.f0, _mm512_srai_epi32(a.f1, 2));
  isum = _mm512_add_epi32(isum, _mm512_srai_epi32(a.f2, 4));
  isum = _mm512_add_epi32(isum, _mm512_srai_epi32(a.f3, 6));
  return _mm512_sub_epi32(isum, qsum);
}

// One group (16 columns) of a panel's four tiles, prefetching ahead.
BITNET_AVX512 inline __attribute__((always_inline)) void GemvGroup(
    const uint8_t* base, const int8_t* q, int64_t g, FieldSums& s0, FieldSums& s1,
    FieldSums& s2, FieldSums& s3) {
  const uint8_t* blk = base + g * (kPanelTiles * kBlockBytes);
  for (int line = 0; line < kPanelTiles; ++line) {
    _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 64 * line), _MM_HINT_T0);
  }
  constexpr int64_t kGroupsPerPage = kPageBytes / (kPanelTiles * kBlockBytes);
  if (g % kGroupsPerPage == 0) {
    _mm_prefetch(reinterpret_cast<const char*>(blk + kFarBytes), _MM_HINT_T0);
  }
  const int8_t* qg = q + g * kGroupCols;
  const GroupActs b{Bcast4(qg), Bcast4(qg + 4), Bcast4(qg + 8), Bcast4(qg + 12)};
  AccumulateBlock(blk, b, s0);
  AccumulateBlock(blk + kBlockBytes, b, s1);
  AccumulateBlock(blk + 2 * kBlockBytes, b, s2);
  AccumulateBlock(blk + 3 * kBlockBytes, b, s3);
}

// The field sums of a panel's four tiles over groups [g0, g1), one token.
// A function of its own, not inlined: inside the panel loop, with that
// loop's state live around it, GCC 12 kept some of the state in vector
// registers, ran out of them, and reloaded one broadcast from the stack
// four times per group.
BITNET_AVX512 __attribute__((noinline)) void SegmentSums(const uint8_t* base, const int8_t* q,
                                                         int64_t g0, int64_t g1,
                                                         FieldSums sums[kPanelTiles]) {
  FieldSums s0{}, s1{}, s2{}, s3{};
  // One linear stream per panel. Reading the segment's two halves in step
  // (two streams) was 7-15% slower on every 2B-4T shape at 1 and 2 threads
  // in a same-process A/B: the hardware prefetcher follows one stream best.
  for (int64_t g = g0; g < g1; ++g) GemvGroup(base, q, g, s0, s1, s2, s3);
  sums[0] = s0;
  sums[1] = s1;
  sums[2] = s2;
  sums[3] = s3;
}

// One panel (4 tiles, 64 rows), one token.
BITNET_AVX512 void GemvPanel(const PackedTernary& w, const ActPlan& a, int64_t panel, int64_t i,
                             float* y_i) {
  static_assert(kPanelTiles == 4, "GemvPanel unrolls four tiles");
  constexpr int P = kPanelTiles;
  const int64_t t0 = panel * P;
  const uint8_t* base = w.block(t0, 0);
  const int8_t* q = a.q + i * a.q_stride;
  __m512 facc[P];
  for (int k = 0; k < P; ++k) facc[k] = _mm512_setzero_ps();
  for (int s = 0; s < a.nseg; ++s) {
    FieldSums sums[P];
    SegmentSums(base, q, a.seg_begin[s], a.seg_begin[s + 1], sums);
    const __m512 da = _mm512_set1_ps(a.seg_scale[i * a.nseg + s]);
    const __m512i qsum = _mm512_set1_epi32(a.seg_qsum[i * a.nseg + s]);
    const __m512i isum[P] = {RowSums(sums[0], qsum), RowSums(sums[1], qsum),
                             RowSums(sums[2], qsum), RowSums(sums[3], qsum)};
    for (int k = 0; k < P; ++k) {
      const float* ws = w.tile_scales(t0 + k) + a.seg_wblock[s] * kTileRows;
      const __m512 d = _mm512_mul_ps(da, _mm512_loadu_ps(ws));
      facc[k] = _mm512_add_ps(facc[k], _mm512_mul_ps(_mm512_cvtepi32_ps(isum[k]), d));
    }
  }
  for (int k = 0; k < P; ++k) StoreLanes(w, t0 + k, facc[k], y_i);
}

// Two tiles (t, t+1) of a panel, tokens i0 .. i0+T-1: fields decoded once per
// block (shift + mask) and reused for every token.
template <int T>
BITNET_AVX512 void GemmHalfPanel(const PackedTernary& w, const ActPlan& a, int64_t t, int64_t i0,
                                 float* y) {
  constexpr int NT = 2;
  const uint8_t* base = w.block(t, 0);
  const __m512i m = _mm512_set1_epi8(0x03);
  alignas(64) float facc[NT][T][kTileRows] = {};
  for (int s = 0; s < a.nseg; ++s) {
    __m512i acc[NT][T];
    for (int k = 0; k < NT; ++k)
      for (int u = 0; u < T; ++u) acc[k][u] = _mm512_setzero_si512();
    const int64_t g1 = a.seg_begin[s + 1];
    for (int64_t g = a.seg_begin[s]; g < g1; ++g) {
      const uint8_t* blk = base + g * (kPanelTiles * kBlockBytes);
      // Small batches stream their weights from memory too.
      _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes + 64), _MM_HINT_T0);
      __m512i f[NT][4];
      for (int k = 0; k < NT; ++k) {
        const __m512i v = _mm512_load_si512(blk + k * kBlockBytes);
        f[k][0] = _mm512_and_si512(v, m);
        f[k][1] = _mm512_and_si512(_mm512_srli_epi16(v, 2), m);
        f[k][2] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
        f[k][3] = _mm512_and_si512(_mm512_srli_epi16(v, 6), m);
      }
      const int8_t* qg = a.q + i0 * a.q_stride + g * kGroupCols;
#pragma GCC unroll 8
      for (int u = 0; u < T; ++u) {
#pragma GCC unroll 4
        for (int sub = 0; sub < 4; ++sub) {
          const __m512i b = Bcast4(qg + u * a.q_stride + 4 * sub);
#pragma GCC unroll 2
          for (int k = 0; k < NT; ++k) acc[k][u] = _mm512_dpbusd_epi32(acc[k][u], f[k][sub], b);
        }
      }
    }
    for (int u = 0; u < T; ++u) {
      const int64_t idx = (i0 + u) * a.nseg + s;
      const __m512 da = _mm512_set1_ps(a.seg_scale[idx]);
      const __m512i qsum = _mm512_set1_epi32(a.seg_qsum[idx]);
      for (int k = 0; k < NT; ++k) {
        const float* ws = w.tile_scales(t + k) + a.seg_wblock[s] * kTileRows;
        const __m512 d = _mm512_mul_ps(da, _mm512_loadu_ps(ws));
        const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[k][u], qsum)), d);
        _mm512_store_ps(facc[k][u], _mm512_add_ps(_mm512_load_ps(facc[k][u]), p));
      }
    }
  }
  for (int u = 0; u < T; ++u)
    for (int k = 0; k < NT; ++k)
      StoreLanes(w, t + k, _mm512_load_ps(facc[k][u]), y + (i0 + u) * w.rows);
}

BITNET_AVX512 void GemmHalfPanelTokens(const PackedTernary& w, const ActPlan& a, int64_t t,
                                       int64_t i0, int64_t count, float* y) {
  switch (count) {
    case 1: return GemmHalfPanel<1>(w, a, t, i0, y);
    case 2: return GemmHalfPanel<2>(w, a, t, i0, y);
    case 3: return GemmHalfPanel<3>(w, a, t, i0, y);
    case 4: return GemmHalfPanel<4>(w, a, t, i0, y);
    case 5: return GemmHalfPanel<5>(w, a, t, i0, y);
    case 6: return GemmHalfPanel<6>(w, a, t, i0, y);
    case 7: return GemmHalfPanel<7>(w, a, t, i0, y);
    default: return GemmHalfPanel<8>(w, a, t, i0, y);
  }
}

// Weight bytes kept hot in L2 while every token block passes over them.
constexpr int64_t kChunkBytes = 256 << 10;

BITNET_AVX512 void Avx512Panels(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1,
                                float* y) {
  if (a.n == 1) {
    // The panels prefetch kPrefetchBytes ahead of themselves, so the head
    // of a chunk would arrive at the hardware prefetchers' pace: ask for
    // it all now.
    const uint8_t* head = w.block(p0 * kPanelTiles, 0);
    for (int64_t off = 0; off < kHeadBytes; off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(head + off), _MM_HINT_T0);
    }
    for (int64_t off = kHeadBytes; off <= kFarBytes; off += kPageBytes) {
      _mm_prefetch(reinterpret_cast<const char*>(head + off), _MM_HINT_T0);
    }
    for (int64_t p = p0; p < p1; ++p) GemvPanel(w, a, p, 0, y);
    return;
  }
  const int64_t panel_bytes = w.groups * kPanelTiles * kBlockBytes;
  const int64_t chunk = std::max<int64_t>(1, kChunkBytes / panel_bytes);
  for (int64_t c0 = p0; c0 < p1; c0 += chunk) {
    const int64_t c1 = std::min(p1, c0 + chunk);
    for (int64_t i0 = 0; i0 < a.n; i0 += 8) {
      const int64_t count = std::min<int64_t>(8, a.n - i0);
      for (int64_t p = c0; p < c1; ++p) {
        for (int64_t t = p * kPanelTiles; t < (p + 1) * kPanelTiles; t += 2) {
          if (t * kTileRows >= w.rows) break;
          GemmHalfPanelTokens(w, a, t, i0, count, y);
        }
      }
    }
  }
}

// --- activation quantization ------------------------------------------------

BITNET_AVX512 inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

BITNET_AVX512 float AbsMax(const float* x, int64_t len) {
  __m512 vmax = _mm512_setzero_ps();
  for (int64_t c = 0; c < len; c += 16) {
    const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(TailMask(len - c), x + c));
    vmax = _mm512_max_ps(v, vmax);  // a NaN in v yields vmax: NaN is ignored
  }
  return _mm512_reduce_max_ps(vmax);
}

// q = clamp(rne(x * s)) for len values; returns the sum of q.
BITNET_AVX512 int32_t RoundScale(const float* x, int64_t len, float s, int8_t* q) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t c = 0; c < len; c += 16) {
    const __mmask16 m = TailMask(len - c);
    __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), vs),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);  // NaN -> -128, as the reference
    const __m512i qi = _mm512_maskz_cvtps_epi32(m, r);
    sum = _mm512_add_epi32(sum, qi);
    _mm512_mask_cvtepi32_storeu_epi8(q + c, m, qi);
  }
  return _mm512_reduce_add_epi32(sum);
}

BITNET_AVX512 float Avx512QuantizeRowPerToken(const float* x, int64_t cols, int8_t* q,
                                              int32_t* row_sum) {
  const float amax = AbsMax(x, cols);
  const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  *row_sum = RoundScale(x, cols, s, q);
  return 1.0f / s;
}

BITNET_AVX512 float Avx512QuantizeBlockQ8K(const float* x, int64_t len, int8_t* q) {
  const float amax = AbsMax(x, len);
  if (amax == 0.0f) {
    std::memset(q, 0, static_cast<size_t>(len));
    return 0.0f;
  }
  // The first element whose magnitude is amax carries the sign (ggml).
  float xmax = 0.0f;
  const __m512 va = _mm512_set1_ps(amax);
  for (int64_t c = 0; c < len; c += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(TailMask(len - c), x + c);
    const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(v), va, _CMP_EQ_OQ);
    if (hit) {
      xmax = x[c + __builtin_ctz(hit)];
      break;
    }
  }
  const float iscale = -127.0f / xmax;
  RoundScale(x, len, iscale, q);
  return 1.0f / iscale;
}

const TernaryKernelOps kAvx512Ops = {Avx512Panels, Avx512QuantizeRowPerToken,
                                     Avx512QuantizeBlockQ8K};

}  // namespace

const TernaryKernelOps* Avx512KernelOps() { return &kAvx512Ops; }

}  // namespace bitnet::kernels

#else

namespace bitnet::kernels {
const TernaryKernelOps* Avx512KernelOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
