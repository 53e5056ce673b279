// The portable variant over the packed layout: plain C++, the fallback for
// CPUs without a SIMD variant and a check of the layout itself. Also the
// float-activation (kNone) product that every variant shares.
#include <algorithm>

#include "kernels/ternary_kernel.h"

namespace bitnet::kernels {

namespace {

// Adds sum over groups [g0, g1) of field * q to isum[16] (one per row).
void FieldDotGroups(const PackedTernary& w, int64_t t, const int8_t* q, int64_t g0, int64_t g1,
                    int32_t* isum) {
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* block = w.block(t, g);
    const int8_t* qg = q + g * kGroupCols;
    for (int j = 0; j < kTileRows; ++j) {
      int32_t s = 0;
      for (int b = 0; b < 4; ++b) {
        const int byte = block[j * 4 + b];
        for (int sub = 0; sub < 4; ++sub) s += ((byte >> (2 * sub)) & 3) * qg[4 * sub + b];
      }
      isum[j] += s;
    }
  }
}

void ScalarPanels(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1, float* y) {
  for (int64_t t = p0 * kPanelTiles; t < p1 * kPanelTiles; ++t) {
    if (t * kTileRows >= w.rows) break;
    const float* wscale = w.tile_scales(t);
    for (int64_t i = 0; i < a.n; ++i) {
      const int8_t* q = a.q + i * a.q_stride;
      float acc[kTileRows] = {};
      for (int s = 0; s < a.nseg; ++s) {
        int32_t isum[kTileRows] = {};
        FieldDotGroups(w, t, q, a.seg_begin[s], a.seg_begin[s + 1], isum);
        const float da = a.seg_scale[i * a.nseg + s];
        const int32_t qsum = a.seg_qsum[i * a.nseg + s];
        const float* ws = wscale + a.seg_wblock[s] * kTileRows;
        for (int j = 0; j < kTileRows; ++j) {
          acc[j] += static_cast<float>(isum[j] - qsum) * (da * ws[j]);
        }
      }
      StoreTileRow(w, t, acc, y + i * w.rows);
    }
  }
}

const TernaryKernelOps kScalarOps = {ScalarPanels, QuantizeRowPerToken, QuantizeBlockQ8K};

}  // namespace

void TernaryPanelsFloatActs(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1,
                            float* y) {
  for (int64_t t = p0 * kPanelTiles; t < p1 * kPanelTiles; ++t) {
    const int64_t r0 = t * kTileRows;
    const int64_t count = std::min(kTileRows, w.rows - r0);
    for (int64_t i = 0; i < a.n; ++i) {
      const float* x = a.x + i * a.cols;
      for (int64_t j = 0; j < count; ++j) {
        float acc = 0.0f;
        for (int s = 0; s < a.nseg; ++s) {
          const int64_t c0 = a.seg_begin[s] * kGroupCols;
          const int64_t c1 = std::min(a.seg_begin[s + 1] * kGroupCols, a.cols);
          float sum = 0.0f;
          for (int64_t c = c0; c < c1; ++c) {
            sum += static_cast<float>(w.field(r0 + j, c) - 1) * x[c];
          }
          acc += sum * w.scale(r0 + j, a.seg_wblock[s]);
        }
        y[i * w.rows + r0 + j] = acc;
      }
    }
  }
}

const TernaryKernelOps* ScalarKernelOps() { return &kScalarOps; }

}  // namespace bitnet::kernels
