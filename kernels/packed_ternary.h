// The kernels' own layout of a ternary matrix, built once at load time from a
// TernaryMatrix (whatever file format that came from).
//
// Rows are taken in tiles of 16 and columns in groups of 16. Each (tile,
// group) block is 64 bytes: one 32-bit lane per row of the tile (lane j = row
// 16*tile + j), whose byte b holds, at bits 2s..2s+1, the field code+1 of
// column 16*group + 4*s + b. Masking a block with 0x03 << 2s gives, per row,
// the four codes (times 4^s) of columns 16g+4s .. 16g+4s+3: one dot-product
// instruction against those four activations broadcast to every lane yields
// 16 row sums at once, with no horizontal reduction and no shuffles.
//
// Four tiles form a panel (64 rows). A panel's blocks are stored group by
// group, the four tiles of a group side by side (256 bytes), so a thread
// working on a panel reads one linear stream (several streams per thread
// measured markedly slower) and the four tiles share each broadcast.
// Rows past `rows` (up to whole panels) and columns past `cols` hold field 1
// (code 0). Scales: per tile and weight-scale block, 16 floats (one per lane).
#pragma once

#include <cstdint>

#include "kernels/aligned_buffer.h"

namespace bitnet::kernels {

struct TernaryMatrix;

inline constexpr int64_t kTileRows = 16;
inline constexpr int64_t kGroupCols = 16;
inline constexpr int64_t kBlockBytes = 64;  // one (tile, group) block
inline constexpr int64_t kPanelTiles = 4;
inline constexpr int64_t kPanelRows = kPanelTiles * kTileRows;

struct PackedTernary {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t tiles = 0;         // ceil(rows / 64) * 4: whole panels
  int64_t panels = 0;        // tiles / 4
  int64_t groups = 0;        // ceil(cols / 16)
  int64_t scale_block = 0;   // columns per weight scale (as in TernaryMatrix)
  int64_t scale_blocks = 0;  // weight scales per row
  AlignedBuffer codes;       // tiles * groups * 64 bytes
  AlignedBuffer scales;      // tiles * scale_blocks * 16 floats

  // Block (tile, group); the panel's next tile follows 64 bytes later and its
  // next group kPanelTiles * 64 bytes later.
  const uint8_t* block(int64_t tile, int64_t group) const {
    return codes.data() +
           ((tile / kPanelTiles * groups + group) * kPanelTiles + tile % kPanelTiles) * kBlockBytes;
  }
  const float* tile_scales(int64_t tile) const {
    return reinterpret_cast<const float*>(scales.data()) + tile * scale_blocks * kTileRows;
  }
  // Field (code + 1) of element (r, c).
  int field(int64_t r, int64_t c) const {
    const uint8_t* b = block(r / kTileRows, c / kGroupCols);
    const int64_t in = c % kGroupCols;
    return (b[(r % kTileRows) * 4 + in % 4] >> (2 * (in / 4))) & 3;
  }
  float scale(int64_t r, int64_t block) const {
    return tile_scales(r / kTileRows)[block * kTileRows + r % kTileRows];
  }
  size_t memory_bytes() const { return codes.size() + scales.size(); }
};

// Sets the shape fields and allocates zeroed storage for a rows x cols matrix
// with `scale_blocks` scales per row (codes all field 0: fill them after).
void AllocatePacked(int64_t rows, int64_t cols, int64_t scale_block, int64_t scale_blocks,
                    PackedTernary* out);
// Builds the packed form. Field value 3 (invalid) is read as code 0.
void PackForKernels(const TernaryMatrix& w, PackedTernary* out);

}  // namespace bitnet::kernels
