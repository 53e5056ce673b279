// Quantization of the activations that enter a BitLinear (matrix product).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bitnet::kernels {

enum class ActQuant {
  // BitNet b1.58 / bitnet.cpp I2_S: per token (row) absmax int8,
  // s = 127 / max(max|x|, 1e-5), q = clamp(rne(x*s), -128, 127), y = acc / s.
  kPerToken,
  // llama.cpp's Q8_K for TQ1_0/TQ2_0: per block of 256 of a row, x_max = the
  // signed element of largest magnitude, iscale = -127/x_max,
  // q = min(127, rne(iscale*x)), d = 1/iscale (0 for an all-zero block).
  kQ8K,
  // Float activations (llama.cpp with F32 weights).
  kNone,
};
std::string_view ActQuantName(ActQuant q);
absl::StatusOr<ActQuant> ActQuantFromName(std::string_view name);  // per-token|q8k|none

inline constexpr int64_t kQ8KBlock = 256;

// n rows of `cols` activations, quantized.
struct QuantizedActs {
  ActQuant mode = ActQuant::kPerToken;
  int64_t n = 0;
  int64_t cols = 0;
  std::vector<int8_t> q;      // n*cols (kPerToken, kQ8K)
  std::vector<float> scale;   // multiplier that turns integer sums into values:
                              // kPerToken: 1/s per row (n); kQ8K: d per block
                              // (n * ceil(cols/256)); kNone: empty
  std::vector<float> x;       // n*cols raw values (kNone only)
  // Sum of q over each row (kPerToken) for kernels that use the
  // (sum code*q - sum q) form with unsigned codes.
  std::vector<int32_t> row_sum;
};

// Quantizes n rows of `cols` floats. Reuses out's buffers (no allocation once
// they are large enough). NaN inputs quantize to -128 and are ignored when
// taking the maximum. QuantizeActs picks the
// fastest variant for the CPU; all give the reference's bits.
void QuantizeActs(const float* x, int64_t n, int64_t cols, ActQuant mode, QuantizedActs* out);
// The plain scalar reference (the oracle for SIMD variants).
void QuantizeActsReference(const float* x, int64_t n, int64_t cols, ActQuant mode,
                           QuantizedActs* out);

// Quantizes one row; the building blocks of the reference, shared with the
// dense-product rounding. `q` gets cols values.
// Per token: returns 1/s and stores the sum of q in *row_sum.
float QuantizeRowPerToken(const float* x, int64_t cols, int8_t* q, int32_t* row_sum);
// One Q8_K block of len <= 256 values: returns d.
float QuantizeBlockQ8K(const float* x, int64_t len, int8_t* q);

}  // namespace bitnet::kernels
