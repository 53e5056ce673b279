// The interface between the TernaryMatMul driver (kernels/matmul.cc) and the
// per-instruction-set variants. Internal to kernels/.
//
// The driver turns QuantizedActs into an ActPlan: activations zero-padded to
// whole 16-column groups, and the columns cut into segments over which both
// the weight scale and the activation scale are constant (the reference's
// segments; each ends on a group boundary or at cols). A variant computes,
// for its tiles, exactly what TernaryMatMulReference computes:
//   acc = 0; for each segment s: acc += float(isum_s) * (act_scale * w_scale)
// where isum_s = sum over the segment of code * q, obtained as
// sum (code + 1) * q - sum q (the activation sums are in the plan).
#pragma once

#include <cstdint>

#include "kernels/activation_quant.h"
#include "kernels/packed_ternary.h"

namespace bitnet::kernels {

struct ActPlan {
  ActQuant mode = ActQuant::kPerToken;
  int64_t n = 0;
  int64_t cols = 0;
  int64_t groups = 0;            // ceil(cols / 16)
  const int8_t* q = nullptr;     // n rows of q_stride bytes, zero past cols
  int64_t q_stride = 0;          // >= groups * 16
  const float* x = nullptr;      // kNone: n rows of `cols` floats
  int nseg = 0;
  const int32_t* seg_begin = nullptr;   // nseg + 1 group indices; last = groups
  const int32_t* seg_wblock = nullptr;  // weight scale block of each segment
  const float* seg_scale = nullptr;     // n x nseg activation scales
  const int32_t* seg_qsum = nullptr;    // n x nseg sums of q
};

struct TernaryKernelOps {
  // y[i * w.rows + r] for every token i and the rows of panels [p0, p1).
  void (*panels)(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1, float* y);
  // The reference's QuantizeRowPerToken / QuantizeBlockQ8K, bit for bit.
  float (*quantize_row_per_token)(const float* x, int64_t cols, int8_t* q, int32_t* row_sum);
  float (*quantize_block_q8k)(const float* x, int64_t len, int8_t* q);
};

// The ops of a variant (null if not compiled into this build).
enum class KernelVariant;
const TernaryKernelOps* KernelOpsFor(KernelVariant v);

// Each returns null when the variant is not compiled into this build.
const TernaryKernelOps* ScalarKernelOps();
const TernaryKernelOps* Avx2KernelOps();
const TernaryKernelOps* AvxVnniKernelOps();
const TernaryKernelOps* Avx512KernelOps();
const TernaryKernelOps* NeonKernelOps();
const TernaryKernelOps* NeonDotKernelOps();

// Panels [p0, p1) with float activations (kNone), in the reference's order.
// Every variant uses it for kNone: those products only serve f32 debug files.
void TernaryPanelsFloatActs(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1,
                            float* y);

// Stores the 16 lanes of one tile's output row for token i, skipping rows
// past w.rows.
inline void StoreTileRow(const PackedTernary& w, int64_t tile, const float* lanes, float* y_i) {
  const int64_t r0 = tile * kTileRows;
  const int64_t left = w.rows - r0;
  const int64_t count = left < kTileRows ? left : kTileRows;
  for (int64_t j = 0; j < count; ++j) y_i[r0 + j] = lanes[j];
}

}  // namespace bitnet::kernels
