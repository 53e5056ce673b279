// IEEE fp16 and bfloat16 conversions with round-to-nearest-even, written with
// plain integer arithmetic so they give the same bits on every CPU and need no
// F16C/NEON-fp16 target flags. The kernels use them to reproduce ggml's
// activation rounding; the model library may reuse them.
#pragma once

#include <bit>
#include <cstdint>

namespace bitnet::kernels {

// float -> fp16 bits, round to nearest even; overflow -> inf, NaN stays NaN
// (quiet, top payload bits kept).
inline uint16_t FloatToHalfBits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  // 65520 (halfway between the largest half 65504 and 2^16) and above -> inf.
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) {  // normal half (>= 2^-14)
    const uint32_t rebiased = ax - (112u << 23);
    const uint32_t rounded = rebiased + 0xfffu + ((rebiased >> 13) & 1u);
    return static_cast<uint16_t>(sign | (rounded >> 13));
  }
  // Subnormal half: adding 0.5f aligns the value to units of 2^-24 and the FPU
  // rounds to nearest even (the default mode) for us.
  const float aligned = std::bit_cast<float>(ax) + 0.5f;
  return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(aligned) - 0x3f000000u));
}

inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24 is exact in float.
  const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
  return sign ? -v : v;
}

inline float RoundToHalf(float f) { return HalfBitsToFloat(FloatToHalfBits(f)); }

// float -> bfloat16 bits as ggml does (round to nearest even; NaN made quiet).
inline uint16_t FloatToBF16Bits(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64u);
  return static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

inline float BF16BitsToFloat(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

inline float RoundToBF16(float f) { return BF16BitsToFloat(FloatToBF16Bits(f)); }

}  // namespace bitnet::kernels
