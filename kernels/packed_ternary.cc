#include "kernels/packed_ternary.h"

#include <cstring>

#include "kernels/ternary_matrix.h"

namespace bitnet::kernels {

void AllocatePacked(int64_t rows, int64_t cols, int64_t scale_block, int64_t scale_blocks,
                    PackedTernary* out) {
  out->rows = rows;
  out->cols = cols;
  out->panels = (rows + kPanelRows - 1) / kPanelRows;
  out->tiles = out->panels * kPanelTiles;
  out->groups = (cols + kGroupCols - 1) / kGroupCols;
  out->scale_block = scale_block;
  out->scale_blocks = scale_blocks;
  out->codes.AllocateWeights(static_cast<size_t>(out->tiles * out->groups * kBlockBytes));
  out->scales.Allocate(static_cast<size_t>(out->tiles * scale_blocks * kTileRows) *
                       sizeof(float));
}

void PackForKernels(const TernaryMatrix& w, PackedTernary* out) {
  AllocatePacked(w.rows, w.cols, w.scale_block, w.rows * w.cols == 0 ? 0 : w.blocks_per_row(),
                 out);
  // Field 1 (code 0) everywhere first: covers the padding rows and columns.
  if (!out->codes.empty()) std::memset(out->codes.data(), 0x55, out->codes.size());
  const int64_t rb = w.row_bytes();
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* src = w.codes.data() + r * rb;
    const int64_t lane = (r % kTileRows) * 4;
    for (int64_t c = 0; c < w.cols; ++c) {
      int f = (src[c / 4] >> (2 * (c % 4))) & 3;
      if (f == 3) f = 1;  // invalid field: ValidateTernaryMatrix rejects it
      const int64_t in = c % kGroupCols;
      const int shift = 2 * static_cast<int>(in / 4);
      uint8_t& b = const_cast<uint8_t*>(out->block(r / kTileRows, c / kGroupCols))[lane + in % 4];
      b = static_cast<uint8_t>((b & ~(3 << shift)) | (f << shift));
    }
  }
  float* scales = reinterpret_cast<float*>(out->scales.data());
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t b = 0; b < out->scale_blocks; ++b) {
      scales[((r / kTileRows) * out->scale_blocks + b) * kTileRows + r % kTileRows] = w.scale(r, b);
    }
  }
}

int PackedField(const PackedTernary& p, int64_t r, int64_t c) { return p.field(r, c); }

}  // namespace bitnet::kernels
