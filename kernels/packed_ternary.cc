#include "kernels/packed_ternary.h"

#include <cstring>

#include "kernels/ternary_matrix.h"

namespace bitnet::kernels {

void PackForKernels(const TernaryMatrix& w, PackedTernary* out) {
  out->rows = w.rows;
  out->cols = w.cols;
  out->tiles = (w.rows + kTileRows - 1) / kTileRows;
  out->groups = (w.cols + kGroupCols - 1) / kGroupCols;
  out->scale_block = w.scale_block;
  out->scale_blocks = w.rows * w.cols == 0 ? 0 : w.blocks_per_row();
  out->codes.Allocate(static_cast<size_t>(out->tiles * out->groups * kBlockBytes));
  // Field 1 (code 0) everywhere first: covers the padding rows and columns.
  if (!out->codes.empty()) std::memset(out->codes.data(), 0x55, out->codes.size());
  const int64_t rb = w.row_bytes();
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* src = w.codes.data() + r * rb;
    uint8_t* tile = out->codes.data() + (r / kTileRows) * out->groups * kBlockBytes;
    const int64_t lane = (r % kTileRows) * 4;
    for (int64_t c = 0; c < w.cols; ++c) {
      int f = (src[c / 4] >> (2 * (c % 4))) & 3;
      if (f == 3) f = 1;  // invalid field: ValidateTernaryMatrix rejects it
      const int64_t in = c % kGroupCols;
      const int shift = 2 * static_cast<int>(in / 4);
      uint8_t& b = tile[(c / kGroupCols) * kBlockBytes + lane + in % 4];
      b = static_cast<uint8_t>((b & ~(3 << shift)) | (f << shift));
    }
  }
  out->scales.Allocate(static_cast<size_t>(out->tiles * out->scale_blocks * kTileRows) *
                       sizeof(float));
  float* scales = reinterpret_cast<float*>(out->scales.data());
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t b = 0; b < out->scale_blocks; ++b) {
      scales[((r / kTileRows) * out->scale_blocks + b) * kTileRows + r % kTileRows] = w.scale(r, b);
    }
  }
}

int PackedField(const PackedTernary& p, int64_t r, int64_t c) { return p.field(r, c); }

}  // namespace bitnet::kernels
