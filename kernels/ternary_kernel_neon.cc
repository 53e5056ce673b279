// ARM NEON variants: with the ARMv8.2 dot-product extension (sdot: four int8
// products summed into each 32-bit lane, like vpdpbusd) and without it
// (smlal into int16, widened every few groups). A 128-bit register holds a
// quarter of a block: 4 rows (lanes) x 4 columns.
#include "kernels/ternary_kernel.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#define BITNET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

namespace bitnet::kernels {

namespace {

inline int8x16_t Bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// The four fields (0..2) of each byte of v, as separate bytes.
inline void Fields(uint8x16_t v, int8x16_t* f) {
  const uint8x16_t m = vdupq_n_u8(3);
  f[0] = vreinterpretq_s8_u8(vandq_u8(v, m));
  f[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 2), m));
  f[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(v, 4), m));
  f[3] = vreinterpretq_s8_u8(vshrq_n_u8(v, 6));
}

// facc[0..3] += float(isum - qsum) * (da * ws[0..3]).
inline void Combine(int32x4_t isum, int32_t qsum, float da, const float* ws, float* facc) {
  const float32x4_t d = vmulq_f32(vdupq_n_f32(da), vld1q_f32(ws));
  const float32x4_t p = vmulq_f32(vcvtq_f32_s32(vsubq_s32(isum, vdupq_n_s32(qsum))), d);
  vst1q_f32(facc, vaddq_f32(vld1q_f32(facc), p));
}

// Quarter-block index within a group line: tile k, quarter j -> 16 bytes at
// 64k + 16j. Row of lane l: 16 (t0 + k) + 4 j + l.
constexpr int kQuarters = 4 * kPanelTiles;

// --- with sdot --------------------------------------------------------------

// One panel, tokens i0 .. i0+T-1 (T = 1 for decode).
template <int T>
BITNET_DOTPROD void DotPanel(const PackedTernary& w, const ActPlan& a, int64_t panel, int64_t i0,
                             float* y) {
  const int64_t t0 = panel * kPanelTiles;
  const uint8_t* base = w.block(t0, 0);
  alignas(16) float facc[T][kQuarters][4] = {};
  for (int s = 0; s < a.nseg; ++s) {
    int32x4_t acc[T][kQuarters];
    for (int u = 0; u < T; ++u)
      for (int j = 0; j < kQuarters; ++j) acc[u][j] = vdupq_n_s32(0);
    const int64_t g1 = a.seg_begin[s + 1];
    for (int64_t g = a.seg_begin[s]; g < g1; ++g) {
      const uint8_t* blk = base + g * (kPanelTiles * kBlockBytes);
      __builtin_prefetch(blk + 4096);
      __builtin_prefetch(blk + 4096 + 64);
      __builtin_prefetch(blk + 4096 + 128);
      __builtin_prefetch(blk + 4096 + 192);
      int8x16_t b[T][4];
      for (int u = 0; u < T; ++u) {
        const int8_t* qg = a.q + (i0 + u) * a.q_stride + g * kGroupCols;
        for (int sub = 0; sub < 4; ++sub) b[u][sub] = Bcast4(qg + 4 * sub);
      }
#pragma GCC unroll 16
      for (int j = 0; j < kQuarters; ++j) {
        int8x16_t f[4];
        Fields(vld1q_u8(blk + 16 * j), f);
        for (int u = 0; u < T; ++u) {
          acc[u][j] = vdotq_s32(acc[u][j], f[0], b[u][0]);
          acc[u][j] = vdotq_s32(acc[u][j], f[1], b[u][1]);
          acc[u][j] = vdotq_s32(acc[u][j], f[2], b[u][2]);
          acc[u][j] = vdotq_s32(acc[u][j], f[3], b[u][3]);
        }
      }
    }
    for (int u = 0; u < T; ++u) {
      const int64_t idx = (i0 + u) * a.nseg + s;
      for (int j = 0; j < kQuarters; ++j) {
        const float* ws = w.tile_scales(t0 + j / 4) + a.seg_wblock[s] * kTileRows + 4 * (j % 4);
        Combine(acc[u][j], a.seg_qsum[idx], a.seg_scale[idx], ws, facc[u][j]);
      }
    }
  }
  for (int u = 0; u < T; ++u)
    for (int k = 0; k < kPanelTiles; ++k)
      StoreTileRow(w, t0 + k, facc[u][4 * k], y + (i0 + u) * w.rows);
}

BITNET_DOTPROD void NeonDotPanels(const PackedTernary& w, const ActPlan& a, int64_t p0,
                                  int64_t p1, float* y) {
  // One token at a time: 16 accumulators already take half the register
  // file (batches decode the fields again per token; untuned on ARM).
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t i = 0; i < a.n; ++i) DotPanel<1>(w, a, p, i, y);
  }
}

// --- without sdot -----------------------------------------------------------

// Products are at most 2 * 128 in magnitude and each int16 lane takes four
// per group, so 16 groups stay below 2^15; then they are widened.
constexpr int64_t kGroupsPerWiden = 16;

// One tile (4 quarters), one token.
void MullTile(const PackedTernary& w, const ActPlan& a, int64_t t, int64_t i, float* y_i) {
  const uint8_t* base = w.block(t, 0);
  const int8_t* q = a.q + i * a.q_stride;
  alignas(16) float facc[4][4] = {};
  for (int s = 0; s < a.nseg; ++s) {
    int32x4_t acc[4][2];
    for (int j = 0; j < 4; ++j) acc[j][0] = acc[j][1] = vdupq_n_s32(0);
    const int64_t g1 = a.seg_begin[s + 1];
    for (int64_t gs = a.seg_begin[s]; gs < g1; gs += kGroupsPerWiden) {
      int16x8_t acc16[4][2];
      for (int j = 0; j < 4; ++j) acc16[j][0] = acc16[j][1] = vdupq_n_s16(0);
      const int64_t ge = std::min(g1, gs + kGroupsPerWiden);
      for (int64_t g = gs; g < ge; ++g) {
        const uint8_t* blk = base + g * (kPanelTiles * kBlockBytes);
        const int8_t* qg = q + g * kGroupCols;
        int8x16_t b[4];
        for (int sub = 0; sub < 4; ++sub) b[sub] = Bcast4(qg + 4 * sub);
        for (int j = 0; j < 4; ++j) {
          int8x16_t f[4];
          Fields(vld1q_u8(blk + 16 * j), f);
          for (int sub = 0; sub < 4; ++sub) {
            acc16[j][0] = vmlal_s8(acc16[j][0], vget_low_s8(f[sub]), vget_low_s8(b[sub]));
            acc16[j][1] = vmlal_high_s8(acc16[j][1], f[sub], b[sub]);
          }
        }
      }
      for (int j = 0; j < 4; ++j) {
        acc[j][0] = vpadalq_s16(acc[j][0], acc16[j][0]);
        acc[j][1] = vpadalq_s16(acc[j][1], acc16[j][1]);
      }
    }
    // acc[j][0] holds (row 0: cols 0+1, 2+3; row 1: ...); pairwise add -> rows.
    const int64_t idx = i * a.nseg + s;
    for (int j = 0; j < 4; ++j) {
      const int32x4_t isum = vpaddq_s32(acc[j][0], acc[j][1]);
      const float* ws = w.tile_scales(t) + a.seg_wblock[s] * kTileRows + 4 * j;
      Combine(isum, a.seg_qsum[idx], a.seg_scale[idx], ws, facc[j]);
    }
  }
  StoreTileRow(w, t, facc[0], y_i);
}

void NeonPanels(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1, float* y) {
  for (int64_t t = p0 * kPanelTiles; t < p1 * kPanelTiles && t * kTileRows < w.rows; ++t) {
    for (int64_t i = 0; i < a.n; ++i) MullTile(w, a, t, i, y + i * w.rows);
  }
}

// --- activation quantization ------------------------------------------------

float AbsMax(const float* x, int64_t len) {
  float32x4_t vmax = vdupq_n_f32(0.0f);
  int64_t c = 0;
  // maxnm returns the number when the other operand is NaN: NaN is ignored.
  for (; c + 4 <= len; c += 4) vmax = vmaxnmq_f32(vabsq_f32(vld1q_f32(x + c)), vmax);
  float amax = vmaxnmvq_f32(vmax);
  for (; c < len; ++c) {
    const float v = std::fabs(x[c]);
    amax = v > amax ? v : amax;
  }
  return amax;
}

int32_t RoundScale(const float* x, int64_t len, float s, int8_t* q) {
  const float32x4_t vs = vdupq_n_f32(s);
  const float32x4_t lo = vdupq_n_f32(-128.0f), hi = vdupq_n_f32(127.0f);
  int32x4_t sum = vdupq_n_s32(0);
  int64_t c = 0;
  for (; c + 8 <= len; c += 8) {
    int32x4_t v[2];
    for (int k = 0; k < 2; ++k) {
      float32x4_t r = vrndnq_f32(vmulq_f32(vld1q_f32(x + c + 4 * k), vs));
      r = vminnmq_f32(vmaxnmq_f32(r, lo), hi);  // NaN -> -128
      v[k] = vcvtq_s32_f32(r);
      sum = vaddq_s32(sum, v[k]);
    }
    const int16x8_t h = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
    vst1_s8(q + c, vmovn_s16(h));
  }
  int32_t total = vaddvq_s32(sum);
  for (; c < len; ++c) {
    float r = std::nearbyint(x[c] * s);
    r = std::fmin(std::fmax(r, -128.0f), 127.0f);
    q[c] = static_cast<int8_t>(static_cast<int>(r));
    total += q[c];
  }
  return total;
}

float NeonQuantizeRowPerToken(const float* x, int64_t cols, int8_t* q, int32_t* row_sum) {
  const float amax = AbsMax(x, cols);
  const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  *row_sum = RoundScale(x, cols, s, q);
  return 1.0f / s;
}

float NeonQuantizeBlockQ8K(const float* x, int64_t len, int8_t* q) {
  const float amax = AbsMax(x, len);
  if (amax == 0.0f) {
    std::memset(q, 0, static_cast<size_t>(len));
    return 0.0f;
  }
  float xmax = 0.0f;
  for (int64_t c = 0; c < len; ++c) {
    if (std::fabs(x[c]) == amax) {  // the first of largest magnitude (ggml)
      xmax = x[c];
      break;
    }
  }
  const float iscale = -127.0f / xmax;
  RoundScale(x, len, iscale, q);
  return 1.0f / iscale;
}

const TernaryKernelOps kNeonOps = {NeonPanels, NeonQuantizeRowPerToken, NeonQuantizeBlockQ8K};
const TernaryKernelOps kNeonDotOps = {NeonDotPanels, NeonQuantizeRowPerToken,
                                      NeonQuantizeBlockQ8K};

}  // namespace

const TernaryKernelOps* NeonKernelOps() { return &kNeonOps; }
const TernaryKernelOps* NeonDotKernelOps() { return &kNeonDotOps; }

}  // namespace bitnet::kernels

#else

namespace bitnet::kernels {
const TernaryKernelOps* NeonKernelOps() { return nullptr; }
const TernaryKernelOps* NeonDotKernelOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
