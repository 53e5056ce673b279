// The runtime form of a ternary weight matrix, independent of the file format
// it came from. Every ternary GGUF type (TQ1_0, TQ2_0, I2_S), ternary-valued
// float tensors and Hugging Face packed weights convert to this losslessly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bitnet::kernels {

struct PackedTernary;  // kernels/packed_ternary.h
int PackedField(const PackedTernary& p, int64_t r, int64_t c);

// rows x cols matrix W = code * scale, code in {-1, 0, +1}.
//
// Codes are 2-bit fields holding code + 1 (0, 1, 2), four per byte, row-major:
// element c of row r lives in byte r * row_bytes() + c / 4 at bits 2 * (c % 4).
// Rows are padded with code 0 (value -1 + 1 = 0 -> field value 1) up to a
// multiple of 4 elements so a row starts on a byte.
//
// Scales: one per (row, block of `scale_block` columns), row-major, or a single
// per-tensor scale when scales.size() == 1. TQ types use scale_block = 256.
struct TernaryMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t scale_block = 0;  // columns per scale; == cols for one scale per row
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  // The kernels' SIMD layout of the same codes (kernels/packed_ternary.h),
  // built by PackTernary/PackTernaryChecked and PrepareForKernels. `codes`
  // may have been released to save memory (see PrepareForKernels); code()
  // then reads the packed form. Whoever changes `codes` or `scales` must
  // reset `packed` (it is shared between copies).
  std::shared_ptr<const PackedTernary> packed;

  int64_t row_bytes() const { return (cols + 3) / 4; }
  int64_t blocks_per_row() const { return (cols + scale_block - 1) / scale_block; }
  int code(int64_t r, int64_t c) const {
    if (codes.empty()) return PackedField(*packed, r, c) - 1;
    return ((codes[r * row_bytes() + c / 4] >> (2 * (c % 4))) & 3) - 1;
  }
  float scale(int64_t r, int64_t block) const {
    return scales.size() == 1 ? scales[0] : scales[r * blocks_per_row() + block];
  }
  size_t memory_bytes() const;
};

// Builds a TernaryMatrix from int8 codes in {-1,0,1} (rows*cols, row-major)
// and scales per block of `scale_block` elements of the flattened data
// (scale_block must divide cols, or equal rows*cols for one tensor scale).
// Codes outside {-1,0,1} are clamped. Aborts on inconsistent sizes (a
// programming error); loaders that handle untrusted shapes use
// PackTernaryChecked.
TernaryMatrix PackTernary(int64_t rows, int64_t cols, const int8_t* codes,
                          const std::vector<float>& scales, int64_t scale_block);
// Empty if PackTernary accepts these arguments, else what is wrong.
std::string TernaryShapeError(int64_t rows, int64_t cols, const int8_t* codes,
                              const std::vector<float>& scales, int64_t scale_block);
absl::StatusOr<TernaryMatrix> PackTernaryChecked(int64_t rows, int64_t cols, const int8_t* codes,
                                                 const std::vector<float>& scales,
                                                 int64_t scale_block);

// Builds w.packed if missing (the fast kernels need it; TernaryMatMul falls
// back to the slow reference without it). Unless keep_codes, then releases
// the row-major `codes` to halve the memory: everything keeps working, but
// code() gets slower and code that reads `codes` directly must not be used.
void PrepareForKernels(TernaryMatrix& w, bool keep_codes = false);

// Checks that sizes are consistent and no 2-bit field holds the invalid value 3.
absl::Status ValidateTernaryMatrix(const TernaryMatrix& w);

}  // namespace bitnet::kernels
