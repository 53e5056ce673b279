// Building and validating TernaryMatrix from untrusted sizes (absl::Status).
#include "kernels/ternary_matrix.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace bitnet::kernels {

absl::StatusOr<TernaryMatrix> PackTernaryChecked(int64_t rows, int64_t cols, const int8_t* codes,
                                                 const std::vector<float>& scales,
                                                 int64_t scale_block) {
  const std::string error = TernaryShapeError(rows, cols, codes, scales, scale_block);
  if (!error.empty()) return absl::InvalidArgumentError(error);
  return PackTernary(rows, cols, codes, scales, scale_block);
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
