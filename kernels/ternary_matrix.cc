// TernaryMatrix building and preparation without absl (the ARM cross test
// compiles this file; the Status-returning wrappers live in
// ternary_matrix_checked.cc).
#include "kernels/ternary_matrix.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/packed_ternary.h"

namespace bitnet::kernels {

std::string TernaryShapeError(int64_t rows, int64_t cols, const int8_t* codes,
                              const std::vector<float>& scales, int64_t scale_block) {
  const std::string shape = std::to_string(rows) + " x " + std::to_string(cols);
  if (rows < 0 || cols < 0) return "ternary matrix has a negative shape " + shape;
  const int64_t total = rows * cols;
  if (!(scale_block == total && scales.size() == 1)) {
    if (scale_block <= 0 || cols % scale_block != 0) {
      return "scale block " + std::to_string(scale_block) + " must divide the row length " +
             std::to_string(cols) + " or cover the whole " + shape + " tensor";
    }
    const int64_t want = total / scale_block;
    if (static_cast<int64_t>(scales.size()) != want) {
      return "ternary matrix " + shape + " with scale block " + std::to_string(scale_block) +
             " needs " + std::to_string(want) + " scales, got " + std::to_string(scales.size());
    }
  }
  if (total > 0 && codes == nullptr) return "ternary codes are null";
  return "";
}

TernaryMatrix PackTernary(int64_t rows, int64_t cols, const int8_t* codes,
                          const std::vector<float>& scales, int64_t scale_block) {
  const std::string error = TernaryShapeError(rows, cols, codes, scales, scale_block);
  if (!error.empty()) {
    std::fprintf(stderr, "PackTernary: %s\n", error.c_str());
    std::abort();
  }
  TernaryMatrix w;
  w.rows = rows;
  w.cols = cols;
  // One per-tensor scale, or one per block of a row.
  w.scale_block = scale_block == rows * cols && scales.size() == 1 ? std::max<int64_t>(cols, 1)
                                                                  : scale_block;
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

size_t TernaryMatrix::memory_bytes() const {
  return codes.size() + scales.size() * sizeof(float) + (packed ? packed->memory_bytes() : 0);
}

void PrepareForKernels(TernaryMatrix& w, bool keep_codes) {
  if (!w.packed) {
    auto p = std::make_shared<PackedTernary>();
    PackForKernels(w, p.get());
    w.packed = std::move(p);
  }
  if (!keep_codes) {
    w.codes.clear();
    w.codes.shrink_to_fit();
  }
}

}  // namespace bitnet::kernels
