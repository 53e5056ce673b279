// Building and validating TernaryMatrix from untrusted sizes (absl::Status).
#include "kernels/ternary_matrix.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "kernels/packed_ternary.h"

namespace bitnet::kernels {

absl::StatusOr<TernaryMatrix> PackTernaryChecked(int64_t rows, int64_t cols, const int8_t* codes,
                                                 const std::vector<float>& scales,
                                                 int64_t scale_block) {
  if (rows < 0 || cols < 0) {
    return absl::InvalidArgumentError(absl::StrCat("ternary matrix has a negative shape ", rows,
                                                   " x ", cols));
  }
  TernaryMatrix w;
  w.rows = rows;
  w.cols = cols;
  const int64_t total = rows * cols;
  if (scale_block == total && scales.size() == 1) {
    w.scale_block = std::max<int64_t>(cols, 1);  // one per-tensor scale
  } else {
    if (scale_block <= 0 || cols % scale_block != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("scale block ", scale_block, " must divide the row length ", cols,
                       " or cover the whole ", rows, " x ", cols, " tensor"));
    }
    const int64_t want = total / scale_block;
    if (static_cast<int64_t>(scales.size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat("ternary matrix ", rows, " x ", cols,
                                                     " with scale block ", scale_block, " needs ",
                                                     want, " scales, got ", scales.size()));
    }
    w.scale_block = scale_block;
  }
  if (total > 0 && codes == nullptr) return absl::InvalidArgumentError("ternary codes are null");
  w.scales = scales;
  const int64_t rb = w.row_bytes();
  // Padding fields hold 1 (code 0).
  w.codes.assign(static_cast<size_t>(rows * rb), 0x55);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = w.codes.data() + r * rb;
    const int8_t* src = codes + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const int v = std::clamp<int>(src[c], -1, 1) + 1;
      const int shift = 2 * static_cast<int>(c % 4);
      dst[c / 4] = static_cast<uint8_t>((dst[c / 4] & ~(3 << shift)) | (v << shift));
    }
  }
  PrepareForKernels(w, /*keep_codes=*/true);
  return w;
}

TernaryMatrix PackTernary(int64_t rows, int64_t cols, const int8_t* codes,
                          const std::vector<float>& scales, int64_t scale_block) {
  absl::StatusOr<TernaryMatrix> w = PackTernaryChecked(rows, cols, codes, scales, scale_block);
  if (!w.ok()) {
    std::fprintf(stderr, "PackTernary: %s\n", w.status().ToString().c_str());
    std::abort();
  }
  return *std::move(w);
}

absl::Status ValidateTernaryMatrix(const TernaryMatrix& w) {
  if (w.rows < 0 || w.cols < 0) return absl::InvalidArgumentError("negative matrix shape");
  if (w.rows * w.cols == 0) return absl::OkStatus();
  if (w.scale_block <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("scale block must be positive, got ",
                                                   w.scale_block));
  }
  if (static_cast<int64_t>(w.codes.size()) != w.rows * w.row_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("ternary matrix ", w.rows, " x ", w.cols,
                                                   " needs ", w.rows * w.row_bytes(),
                                                   " code bytes, has ", w.codes.size()));
  }
  const int64_t want = w.rows * w.blocks_per_row();
  if (w.scales.size() != 1 && static_cast<int64_t>(w.scales.size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat("ternary matrix needs 1 or ", want,
                                                   " scales, has ", w.scales.size()));
  }
  for (uint8_t b : w.codes) {
    // A field value of 3 has no meaning (codes are 0, 1, 2).
    if (((b & 0x55) & ((b >> 1) & 0x55)) != 0) {
      return absl::InvalidArgumentError(
          "ternary matrix holds the invalid 2-bit code 3; the file is corrupt");
    }
  }
  return absl::OkStatus();
}

}  // namespace bitnet::kernels
