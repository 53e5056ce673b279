// ggml tensor types: traits, fp16/bf16 conversion, and the (de)quantizers the
// project needs. Block layouts are described next to each codec; they follow
// ggml's formats (and bitnet.cpp's I2_S), derived from the format descriptions
// in /work/shared/oracle/README.md and checked against the oracle files.
#include "model/ggml_types.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace bitnet::ggml {
namespace {

constexpr int64_t kQK = 256;   // super-block of the K and TQ types
constexpr int64_t kQ80 = 32;   // Q8_0 block
constexpr int64_t kI2SGroup = 128;

constexpr std::array<TypeTraits, 35> kTraits = {{
    {Type::kF32, "f32", 1, 4, true, false},
    {Type::kF16, "f16", 1, 2, true, false},
    {Type::kQ4_0, "q4_0", 32, 18, false, false},
    {Type::kQ4_1, "q4_1", 32, 20, false, false},
    {Type::kQ5_0, "q5_0", 32, 22, false, false},
    {Type::kQ5_1, "q5_1", 32, 24, false, false},
    {Type::kQ8_0, "q8_0", 32, 34, true, false},
    {Type::kQ8_1, "q8_1", 32, 36, false, false},
    {Type::kQ2K, "q2_K", 256, 84, false, false},
    {Type::kQ3K, "q3_K", 256, 110, false, false},
    {Type::kQ4K, "q4_K", 256, 144, false, false},
    {Type::kQ5K, "q5_K", 256, 176, false, false},
    {Type::kQ6K, "q6_K", 256, 210, true, false},
    {Type::kQ8K, "q8_K", 256, 292, false, false},
    {Type::kIQ2_XXS, "iq2_xxs", 256, 66, false, false},
    {Type::kIQ2_XS, "iq2_xs", 256, 74, false, false},
    {Type::kIQ3_XXS, "iq3_xxs", 256, 98, false, false},
    {Type::kIQ1_S, "iq1_s", 256, 50, false, false},
    {Type::kIQ4_NL, "iq4_nl", 32, 18, false, false},
    {Type::kIQ3_S, "iq3_s", 256, 110, false, false},
    {Type::kIQ2_S, "iq2_s", 256, 82, false, false},
    {Type::kIQ4_XS, "iq4_xs", 256, 136, false, false},
    {Type::kI8, "i8", 1, 1, false, false},
    {Type::kI16, "i16", 1, 2, false, false},
    {Type::kI32, "i32", 1, 4, false, false},
    {Type::kI64, "i64", 1, 8, false, false},
    {Type::kF64, "f64", 1, 8, false, false},
    {Type::kIQ1_M, "iq1_m", 256, 56, false, false},
    {Type::kBF16, "bf16", 1, 2, true, false},
    {Type::kQ4_0_4_4, "q4_0_4x4", 32, 18, false, false},
    {Type::kQ4_0_4_8, "q4_0_4x8", 32, 18, false, false},
    {Type::kQ4_0_8_8, "q4_0_8x8", 32, 18, false, false},
    {Type::kTQ1_0, "tq1_0", 256, 54, true, true},
    {Type::kTQ2_0, "tq2_0", 256, 66, true, true},
    // I2_S: 128 codes per 32 bytes; TensorBytes adds the 32-byte scale tail.
    {Type::kI2S, "i2_s", kI2SGroup, 32, true, true},
}};
constexpr TypeTraits kMxfp4 = {Type::kMXFP4, "mxfp4", 32, 17, false, false};
constexpr TypeTraits kUnknown = {Type::kF32, "unknown", 1, 0, false, false};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return absl::ascii_tolower(static_cast<unsigned char>(x)) ==
                  absl::ascii_tolower(static_cast<unsigned char>(y));
         });
}

const TypeTraits* FindTraits(uint32_t id) {
  for (const TypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  if (id == static_cast<uint32_t>(Type::kMXFP4)) return &kMxfp4;
  return nullptr;
}

// Unaligned little-endian loads/stores: tensor data may sit at any offset.
uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void StoreU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ggml's nearest_int: round half to even (the default FP rounding mode).
int NearestInt(float x) { return static_cast<int>(std::nearbyint(x)); }

absl::Status CheckCount(Type t, int64_t n) {
  const TypeTraits& tr = Traits(t);
  if (n < 0 || n % tr.block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d elements is not a whole number of %s blocks (%d elements each)", n, tr.name,
        tr.block_elems));
  }
  return absl::OkStatus();
}

absl::Status BadCode(Type t, int64_t index, int code) {
  return absl::DataLossError(absl::StrFormat(
      "%s element %d holds 2-bit code %d, which is not a ternary value; the tensor data is "
      "corrupt",
      Traits(t).name, index, code));
}

// ---- TQ2_0: qs[64] then fp16 d; element e in qs[32*(e/128) + e%32] at bits
// 2*((e%128)/32); value (code-1)*d.
constexpr int64_t kTq2Bytes = 66;

absl::Status DecodeTq2(const uint8_t* src, int64_t n, int8_t* codes, float* scales) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = src + b * kTq2Bytes;
    scales[b] = HalfToFloat(LoadU16(blk + 64));
    for (int e = 0; e < kQK; ++e) {
      int code = (blk[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
      if (code == 3) return BadCode(Type::kTQ2_0, b * kQK + e, code);
      codes[b * kQK + e] = static_cast<int8_t>(code - 1);
    }
  }
  return absl::OkStatus();
}

// ggml's quantize_row_tq2_0_ref rounds with lroundf (half away from zero);
// for ternary inputs (x = c*d) no value is a tie, so the rule never matters.
int TernaryCode(float x, float id) {
  long q = std::lround(x * id);
  return static_cast<int>(std::clamp(q, -1L, 1L)) + 1;
}

void QuantizeTq2(const float* x, int64_t n, uint8_t* dst) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    uint8_t* blk = dst + b * kTq2Bytes;
    float amax = 0;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float id = amax != 0 ? 1.0f / amax : 0.0f;
    std::memset(blk, 0, 64);
    for (int e = 0; e < kQK; ++e) {
      blk[32 * (e / 128) + e % 32] |=
          static_cast<uint8_t>(TernaryCode(x[e], id) << (2 * ((e % 128) / 32)));
    }
    StoreU16(blk + 64, FloatToHalf(amax));
  }
}

// ---- TQ1_0: qs[48], qh[4], fp16 d. A byte holds 5 (qh: 4) base-3 digits as
// b = ceil(v * 256 / 243) where v = sum d_n * 3^(4-n); digit n is recovered as
// ((uint8)(b * 3^n) * 3) >> 8.
constexpr int64_t kTq1Bytes = 54;
constexpr int kPow3[5] = {1, 3, 9, 27, 81};

int Tq1Digit(uint8_t b, int n) {
  uint8_t shifted = static_cast<uint8_t>(b * kPow3[n]);
  return (static_cast<uint16_t>(shifted) * 3) >> 8;
}

// Element index of digit n in byte `byte` of the 52 code bytes of a block.
int Tq1Element(int byte, int n) {
  if (byte < 32) return 32 * n + byte;
  if (byte < 48) return 160 + 16 * n + (byte - 32);
  return 240 + 4 * n + (byte - 48);
}

absl::Status DecodeTq1(const uint8_t* src, int64_t n, int8_t* codes, float* scales) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* blk = src + b * kTq1Bytes;
    scales[b] = HalfToFloat(LoadU16(blk + 52));
    for (int byte = 0; byte < 52; ++byte) {
      const int digits = byte < 48 ? 5 : 4;
      for (int d = 0; d < digits; ++d) {
        codes[b * kQK + Tq1Element(byte, d)] = static_cast<int8_t>(Tq1Digit(blk[byte], d) - 1);
      }
    }
  }
  return absl::OkStatus();
}

void QuantizeTq1(const float* x, int64_t n, uint8_t* dst) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    uint8_t* blk = dst + b * kTq1Bytes;
    float amax = 0;
    for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float id = amax != 0 ? 1.0f / amax : 0.0f;
    for (int byte = 0; byte < 52; ++byte) {
      const int digits = byte < 48 ? 5 : 4;
      int v = 0;
      for (int d = 0; d < 5; ++d) {
        v = v * 3 + (d < digits ? TernaryCode(x[Tq1Element(byte, d)], id) : 0);
      }
      blk[byte] = static_cast<uint8_t>((v * 256 + 242) / 243);
    }
    StoreU16(blk + 52, FloatToHalf(amax));
  }
}

// ---- I2_S (bitnet.cpp, x86 layout): n/4 bytes of codes in groups of 128
// elements / 32 bytes; element j of group g is
// (byte[32g + j%32] >> (6 - 2*(j/32))) & 3; codes 0,1,2 = -1,0,+1; then one
// f32 tensor scale and zero padding up to n/4 + 32 bytes.
absl::Status DecodeI2s(const uint8_t* src, int64_t n, int8_t* codes, float* scale) {
  for (int64_t g = 0; g < n / kI2SGroup; ++g) {
    for (int j = 0; j < kI2SGroup; ++j) {
      int code = (src[32 * g + j % 32] >> (6 - 2 * (j / 32))) & 3;
      if (code == 3) return BadCode(Type::kI2S, g * kI2SGroup + j, code);
      codes[g * kI2SGroup + j] = static_cast<int8_t>(code - 1);
    }
  }
  *scale = LoadF32(src + n / 4);
  return absl::OkStatus();
}

// bitnet.cpp's quantizer assumes ternary input and keys on the sign; we round
// x/max|x| instead, which is identical for ternary input and closer otherwise.
void QuantizeI2s(const float* x, int64_t n, uint8_t* dst) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float id = amax != 0 ? 1.0f / amax : 0.0f;
  std::memset(dst, 0, n / 4 + 32);
  for (int64_t g = 0; g < n / kI2SGroup; ++g) {
    for (int j = 0; j < kI2SGroup; ++j) {
      dst[32 * g + j % 32] |=
          static_cast<uint8_t>(TernaryCode(x[g * kI2SGroup + j], id) << (6 - 2 * (j / 32)));
    }
  }
  std::memcpy(dst + n / 4, &amax, 4);
}

// ---- Q8_0: fp16 d, int8 qs[32]; value d*q.
constexpr int64_t kQ80Bytes = 34;

void DequantizeQ80(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQ80; ++b) {
    const uint8_t* blk = src + b * kQ80Bytes;
    const float d = HalfToFloat(LoadU16(blk));
    for (int i = 0; i < kQ80; ++i) dst[b * kQ80 + i] = d * static_cast<int8_t>(blk[2 + i]);
  }
}

// As ggml's quantize_row_q8_0_ref: d = absmax/127, q = roundf(x * (1/d)).
void QuantizeQ80(const float* x, int64_t n, uint8_t* dst) {
  for (int64_t b = 0; b < n / kQ80; ++b, x += kQ80) {
    uint8_t* blk = dst + b * kQ80Bytes;
    float amax = 0;
    for (int i = 0; i < kQ80; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    StoreU16(blk, FloatToHalf(d));
    for (int i = 0; i < kQ80; ++i) {
      blk[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
    }
  }
}

// ---- Q6_K: ql[128], qh[64], int8 scales[16], fp16 d. 16 sub-blocks of 16
// elements, sub-block s scaled by d*scales[s]; 6-bit codes q-32. In each half
// h (128 elements) element l+32k (l < 32, k < 4) keeps its low nibble in
// ql[64h + l + 32*(k&1)] (high nibble when k >= 2) and its top 2 bits in
// qh[32h + l] at bits 2k.
constexpr int64_t kQ6Bytes = 210;

void DequantizeQ6K(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint8_t* ql = src + b * kQ6Bytes;
    const uint8_t* qh = ql + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(ql + 192);
    const float d = HalfToFloat(LoadU16(ql + 208));
    float* y = dst + b * kQK;
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int e = 128 * h + 32 * k + l;
          const uint8_t lo_byte = ql[64 * h + l + 32 * (k & 1)];
          const int lo = k >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
          const int hi = (qh[32 * h + l] >> (2 * k)) & 3;
          y[e] = d * sc[e / 16] * ((lo | (hi << 4)) - 32);
        }
      }
    }
  }
}

// Best scale for n values on the integer grid [-nmax, nmax-1]: tries a few
// inverse scales around -nmax/max and keeps the weighted (w = x^2)
// least-squares optimum, as ggml's make_qx_quants does. L gets q + nmax.
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0;
  }
  auto fit = [&](float iscale, float* sumlx, float* suml2) {
    *sumlx = *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * l;
      *suml2 += w * l * l;
    }
  };
  auto assign = [&](float iscale) {
    for (int i = 0; i < n; ++i) {
      L[i] = static_cast<int8_t>(nmax + std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
    }
  };
  float iscale = -nmax / max;
  float sumlx, suml2;
  fit(iscale, &sumlx, &suml2);
  assign(iscale);
  float scale = suml2 > 0 ? sumlx / suml2 : 0;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    fit(iscale, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      assign(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void QuantizeQ6KBlock(const float* x, uint8_t* blk) {
  int8_t L[kQK];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int s = 0; s < 16; ++s) {
    scales[s] = MakeQxQuants(16, 32, x + 16 * s, L + 16 * s);
    if (std::fabs(scales[s]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[s]);
      max_scale = scales[s];
    }
  }
  std::memset(blk, 0, kQ6Bytes);
  if (max_abs_scale < 1e-15f) return;  // all-zero block: d = 0

  const float iscale = -128.0f / max_scale;
  const uint16_t d16 = FloatToHalf(1.0f / iscale);
  const float d = HalfToFloat(d16);
  int8_t* sc = reinterpret_cast<int8_t*>(blk + 192);
  for (int s = 0; s < 16; ++s) sc[s] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[s])));
  // Re-quantize against the scale that will actually be stored.
  for (int s = 0; s < 16; ++s) {
    const float ds = d * sc[s];
    if (ds == 0) continue;
    for (int i = 0; i < 16; ++i) {
      L[16 * s + i] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * s + i] / ds), -32, 31) + 32);
    }
  }
  uint8_t* ql = blk;
  uint8_t* qh = blk + 128;
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const int q = L[128 * h + 32 * k + l];
        ql[64 * h + l + 32 * (k & 1)] |= static_cast<uint8_t>(k >= 2 ? (q & 0xF) << 4 : q & 0xF);
        qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
      }
    }
  }
  StoreU16(blk + 208, d16);
}

}  // namespace

std::optional<TypeTraits> Traits(uint32_t id) {
  const TypeTraits* t = FindTraits(id);
  if (t == nullptr) return std::nullopt;
  return *t;
}

const TypeTraits& Traits(Type t) {
  const TypeTraits* tr = FindTraits(static_cast<uint32_t>(t));
  return tr != nullptr ? *tr : kUnknown;
}

absl::StatusOr<Type> TypeFromName(std::string_view name) {
  for (const TypeTraits& t : kTraits) {
    if (EqualsIgnoreCase(t.name, name)) return t.type;
  }
  if (EqualsIgnoreCase(kMxfp4.name, name)) return kMxfp4.type;
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown ggml type name '%s' (expected e.g. f32, f16, bf16, q8_0, q6_K, tq1_0, tq2_0, i2_s)",
      name));
}

absl::StatusOr<uint64_t> TensorBytes(Type t, int64_t n) {
  const TypeTraits* tr = FindTraits(static_cast<uint32_t>(t));
  if (tr == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown ggml type id %d", static_cast<uint32_t>(t)));
  }
  if (absl::Status s = CheckCount(t, n); !s.ok()) return s;
  const uint64_t blocks = static_cast<uint64_t>(n / tr->block_elems);
  uint64_t bytes;
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tr->block_bytes), &bytes) ||
      (t == Type::kI2S && __builtin_add_overflow(bytes, uint64_t{32}, &bytes))) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d elements of %s overflow a 64-bit byte count", n, tr->name));
  }
  return bytes;
}

uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000) {  // NaN: keep it a (quiet) NaN, keep top payload bits
    return sign | 0x7e00 | static_cast<uint16_t>((ax >> 13) & 0x3ff);
  }
  if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to inf (or is inf)
  if (ax >= 0x38800000) {                      // normal half
    uint32_t h = ((ax >> 23) - 127 + 15) << 10 | ((ax >> 13) & 0x3ff);
    const uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // carry may bump exponent: fine
    return sign | static_cast<uint16_t>(h);
  }
  if (ax <= 0x33000000) return sign;  // <= 2^-25 (a tie at 2^-25 goes to even 0)
  // Subnormal half: value / 2^-24 = mantissa * 2^(e - 126), e = biased exp.
  const uint32_t e = ax >> 23;
  const uint32_t mant = (ax & 0x7fffff) | 0x800000;
  const int shift = 126 - static_cast<int>(e);  // 14..24
  uint32_t h = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return BitsFloat(sign | 0x7f800000 | (mant << 13));  // inf / NaN
  if (exp != 0) return BitsFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
  if (mant == 0) return BitsFloat(sign);
  // Subnormal: exact in float.
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
  return sign ? -v : v;
}

uint16_t FloatToBf16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

float Bf16ToFloat(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

absl::Status Dequantize(Type t, const uint8_t* src, int64_t n, float* dst) {
  if (absl::Status s = CheckCount(t, n); !s.ok()) return s;
  switch (t) {
    case Type::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case Type::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    case Type::kBF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    case Type::kQ8_0:
      DequantizeQ80(src, n, dst);
      return absl::OkStatus();
    case Type::kQ6K:
      DequantizeQ6K(src, n, dst);
      return absl::OkStatus();
    case Type::kTQ1_0:
    case Type::kTQ2_0:
    case Type::kI2S: {
      absl::StatusOr<TernaryDecoded> dec = DecodeTernary(t, src, n);
      if (!dec.ok()) return dec.status();
      for (int64_t i = 0; i < n; ++i) dst[i] = dec->codes[i] * dec->scales[i / dec->scale_block];
      return absl::OkStatus();
    }
    default:
      return absl::UnimplementedError(absl::StrFormat(
          "dequantizing ggml type %s is not supported (supported: f32, f16, bf16, q8_0, q6_K, "
          "tq1_0, tq2_0, i2_s); re-quantize the model to one of these",
          Traits(t).name));
  }
}

absl::StatusOr<std::vector<uint8_t>> Quantize(Type t, std::span<const float> src) {
  const int64_t n = static_cast<int64_t>(src.size());
  if (absl::Status s = CheckCount(t, n); !s.ok()) return s;
  absl::StatusOr<uint64_t> bytes = TensorBytes(t, n);
  if (!bytes.ok()) return bytes.status();
  std::vector<uint8_t> out(*bytes);
  const float* x = src.data();
  switch (t) {
    case Type::kF32:
      if (n > 0) std::memcpy(out.data(), x, out.size());
      break;
    case Type::kF16:
      for (int64_t i = 0; i < n; ++i) StoreU16(out.data() + 2 * i, FloatToHalf(x[i]));
      break;
    case Type::kBF16:
      for (int64_t i = 0; i < n; ++i) StoreU16(out.data() + 2 * i, FloatToBf16(x[i]));
      break;
    case Type::kQ8_0:
      QuantizeQ80(x, n, out.data());
      break;
    case Type::kQ6K:
      for (int64_t b = 0; b < n / kQK; ++b) QuantizeQ6KBlock(x + b * kQK, out.data() + b * kQ6Bytes);
      break;
    case Type::kTQ1_0:
      QuantizeTq1(x, n, out.data());
      break;
    case Type::kTQ2_0:
      QuantizeTq2(x, n, out.data());
      break;
    case Type::kI2S:
      QuantizeI2s(x, n, out.data());
      break;
    default:
      return absl::UnimplementedError(absl::StrFormat(
          "quantizing to ggml type %s is not supported (supported: f32, f16, bf16, q8_0, q6_K, "
          "tq1_0, tq2_0, i2_s)",
          Traits(t).name));
  }
  return out;
}

absl::StatusOr<TernaryDecoded> DecodeTernary(Type t, const uint8_t* src, int64_t n) {
  if (t != Type::kTQ1_0 && t != Type::kTQ2_0 && t != Type::kI2S) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "DecodeTernary needs a ternary type (tq1_0, tq2_0, i2_s), got %s", Traits(t).name));
  }
  if (absl::Status s = CheckCount(t, n); !s.ok()) return s;
  TernaryDecoded out;
  out.codes.resize(static_cast<size_t>(n));
  absl::Status s;
  if (t == Type::kI2S) {
    out.scale_block = std::max<int64_t>(n, 1);
    out.scales.resize(1);
    s = DecodeI2s(src, n, out.codes.data(), out.scales.data());
  } else {
    out.scale_block = kQK;
    out.scales.resize(static_cast<size_t>(n / kQK));
    s = t == Type::kTQ1_0 ? DecodeTq1(src, n, out.codes.data(), out.scales.data())
                          : DecodeTq2(src, n, out.codes.data(), out.scales.data());
  }
  if (!s.ok()) return s;
  return out;
}

}  // namespace bitnet::ggml
