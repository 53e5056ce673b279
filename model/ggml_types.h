// ggml tensor types this project reads and writes: traits, dequantization to
// f32, quantization from f32, and lossless decoding of ternary types to codes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bitnet::ggml {

// Numeric ids as stored in GGUF. kI2S is bitnet.cpp's fork id 36; upstream
// ggml later used 36 for another type, so the reader decides from context.
//
// Upstream ggml retired id 36 (IQ4_NL_4_4, a run-time repacking type that
// "support has been removed from gguf files"), so a GGUF tensor with id 36
// can only come from bitnet.cpp; the reader still checks that its bytes fit
// the I2_S layout (n/4 + 32) between its offset and the next tensor's.
// Types other than f32, f16, bf16, q8_0, q6_K, tq1_0, tq2_0 and i2_s are
// known for sizing only (Dequantize/Quantize return UNIMPLEMENTED).
enum class Type : uint32_t {
  kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ8_1 = 9,
  kQ2K = 10, kQ3K = 11, kQ4K = 12, kQ5K = 13, kQ6K = 14, kQ8K = 15,
  kIQ2_XXS = 16, kIQ2_XS = 17, kIQ3_XXS = 18, kIQ1_S = 19, kIQ4_NL = 20, kIQ3_S = 21,
  kIQ2_S = 22, kIQ4_XS = 23,
  kI8 = 24, kI16 = 25, kI32 = 26, kI64 = 27, kF64 = 28, kIQ1_M = 29, kBF16 = 30,
  kQ4_0_4_4 = 31, kQ4_0_4_8 = 32, kQ4_0_8_8 = 33,  // old ARM repacks, still in some files
  kTQ1_0 = 34, kTQ2_0 = 35, kI2S = 36,
  kMXFP4 = 39,
};

struct TypeTraits {
  Type type;
  std::string_view name;   // "f32", "tq2_0", "i2_s", ...
  int64_t block_elems;     // elements per block
  int64_t block_bytes;     // bytes per block
  bool supported;          // we can dequantize it
  bool ternary;            // TQ1_0, TQ2_0, I2_S
};

// Traits of a known type id, or nullopt for an id that is not a ggml type.
std::optional<TypeTraits> Traits(uint32_t id);
const TypeTraits& Traits(Type t);
absl::StatusOr<Type> TypeFromName(std::string_view name);  // case-insensitive

// Bytes a tensor of `n` elements needs, including I2_S's trailing f32 scale
// and padding (n/4 + 32). INVALID_ARGUMENT when n is not a multiple of the
// type's block.
absl::StatusOr<uint64_t> TensorBytes(Type t, int64_t n);

// Float helpers with round-to-nearest-even, as ggml does.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBf16(float f);
float Bf16ToFloat(uint16_t h);
inline float RoundToHalf(float f) { return HalfToFloat(FloatToHalf(f)); }

// Dequantizes a whole tensor of `n` elements to f32 (I2_S keeps one scale
// per tensor after the packed codes, so partial tensors are not allowed).
absl::Status Dequantize(Type t, const uint8_t* src, int64_t n, float* dst);

// Quantizes f32 values; n must be a multiple of the block. For ternary types
// the input is taken as ternary already: values are divided by the block (or,
// for I2_S, tensor) absmax and rounded to {-1,0,+1}, exactly as llama.cpp's
// quantize_row_tq*_ref and bitnet.cpp's I2_S quantizer do.
absl::StatusOr<std::vector<uint8_t>> Quantize(Type t, std::span<const float> src);

// Lossless view of a ternary tensor: codes in {-1,0,+1} (int8, row-major, n of
// them) and scales, one per block of `scale_block` elements along the data
// (256 for TQ1_0/TQ2_0; n for I2_S: a single tensor scale).
struct TernaryDecoded {
  std::vector<int8_t> codes;
  std::vector<float> scales;
  int64_t scale_block = 0;
};
absl::StatusOr<TernaryDecoded> DecodeTernary(Type t, const uint8_t* src, int64_t n);

}  // namespace bitnet::ggml
