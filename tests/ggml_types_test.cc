// ggml types: traits, fp16/bf16 rounding, quantize/dequantize round trips,
// lossless ternary decoding, and agreement with the oracle files.
#include "model/ggml_types.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "gtest/gtest.h"
#include "model/gguf.h"
#include "tests/test_support.h"

namespace bitnet::ggml {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Traits, KnownIdsAndNames) {
  EXPECT_EQ(Traits(Type::kTQ1_0).block_bytes, 54);
  EXPECT_EQ(Traits(Type::kTQ2_0).block_bytes, 66);
  EXPECT_EQ(Traits(Type::kQ6K).block_bytes, 210);
  EXPECT_EQ(Traits(Type::kQ8_0).block_bytes, 34);
  EXPECT_EQ(Traits(Type::kQ4K).block_bytes, 144);
  EXPECT_EQ(Traits(Type::kI2S).name, "i2_s");
  EXPECT_EQ(Traits(Type::kQ6K).name, "q6_K");
  EXPECT_TRUE(Traits(Type::kI2S).ternary);
  EXPECT_FALSE(Traits(Type::kQ8_0).ternary);
  EXPECT_FALSE(Traits(4).has_value());   // retired Q4_2
  EXPECT_FALSE(Traits(37).has_value());
  EXPECT_FALSE(Traits(1000).has_value());
  EXPECT_EQ(Traits(30)->type, Type::kBF16);
  for (uint32_t id = 0; id < 64; ++id) {
    std::optional<TypeTraits> t = Traits(id);
    if (!t) continue;
    EXPECT_EQ(static_cast<uint32_t>(t->type), id);
    EXPECT_GT(t->block_bytes, 0);
    absl::StatusOr<Type> back = TypeFromName(t->name);
    ASSERT_TRUE(back.ok()) << t->name;
    EXPECT_EQ(*back, t->type);
  }
  EXPECT_EQ(*TypeFromName("Q6_K"), Type::kQ6K);
  EXPECT_EQ(*TypeFromName("TQ2_0"), Type::kTQ2_0);
  EXPECT_FALSE(TypeFromName("q7_0").ok());
}

TEST(Traits, TensorBytes) {
  EXPECT_EQ(*TensorBytes(Type::kF32, 10), 40u);
  EXPECT_EQ(*TensorBytes(Type::kTQ2_0, 512), 132u);
  EXPECT_EQ(*TensorBytes(Type::kI2S, 256 * 128), 256u * 128 / 4 + 32);
  EXPECT_EQ(*TensorBytes(Type::kI2S, 0), 32u);
  EXPECT_FALSE(TensorBytes(Type::kQ8_0, 33).ok());
  EXPECT_FALSE(TensorBytes(Type::kI2S, 64).ok());
  EXPECT_FALSE(TensorBytes(Type::kF32, -1).ok());
  EXPECT_FALSE(TensorBytes(Type::kF64, std::numeric_limits<int64_t>::max()).ok());  // overflow
  EXPECT_FALSE(TensorBytes(static_cast<Type>(99), 1).ok());
}

TEST(Half, ExhaustiveRoundTripOfEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f))));
      continue;
    }
    ASSERT_EQ(FloatToHalf(f), h) << h;
  }
}

TEST(Half, EdgeCases) {
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);  // max finite
  EXPECT_EQ(FloatToHalf(65519.99f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // tie rounds to even = inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xfc00);
  const uint16_t nan = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x3ff, 0);
  EXPECT_NE(FloatToHalf(FromBits(0x7f800001)) & 0x3ff, 0);  // signalling NaN stays NaN
  // Subnormals: min subnormal 2^-24; 2^-25 is a tie -> even (0); just above rounds up.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp tie -> even 2
  EXPECT_EQ(FloatToHalf(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 ulp tie -> even 2
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into normals
  EXPECT_EQ(FloatToHalf(1e-30f), 0x0000);
  EXPECT_EQ(FloatToHalf(-1e-30f), 0x8000);
  // Normal ties: 1 + 2^-11 is halfway between 1 and 1+2^-10 -> even (1).
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(HalfToFloat(0x8000)));
}

#if defined(__FLT16_MAX__)
TEST(Half, MatchesCompilerConversionOnRandomFloats) {
  std::mt19937 rng(7);
  for (int i = 0; i < 1000000; ++i) {
    const float f = FromBits(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    ASSERT_EQ(FloatToHalf(f), hb) << std::hexfloat << f;
  }
}
#endif

TEST(Bf16, RoundingAndSpecials) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(FloatToBf16(FromBits(0x3f818000)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(FloatToBf16(FromBits(0x7f7fffff)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(FloatToBf16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToBf16(FromBits(0x00000001)), 0x0000);  // subnormal, not flushed wrongly
  EXPECT_EQ(FloatToBf16(FromBits(0x00018000)), 0x0002);  // subnormal tie -> even
  const uint16_t nan = FloatToBf16(FromBits(0x7f800001));  // sNaN with low payload only
  EXPECT_TRUE(std::isnan(Bf16ToFloat(nan)));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Bf16ToFloat(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToBf16(f), h);
    }
  }
}

std::vector<float> Gaussian(int64_t n, float sigma, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> RoundTrip(Type t, const std::vector<float>& x) {
  absl::StatusOr<std::vector<uint8_t>> q = Quantize(t, x);
  EXPECT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->size(), *TensorBytes(t, static_cast<int64_t>(x.size())));
  std::vector<float> y(x.size());
  absl::Status s = Dequantize(t, q->data(), static_cast<int64_t>(x.size()), y.data());
  EXPECT_TRUE(s.ok()) << s;
  return y;
}

TEST(Quantize, FloatTypesRoundTrip) {
  const std::vector<float> x = Gaussian(1024, 3.0f, 1);
  EXPECT_EQ(RoundTrip(Type::kF32, x), x);
  const std::vector<float> h = RoundTrip(Type::kF16, x);
  const std::vector<float> b = RoundTrip(Type::kBF16, x);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], RoundToHalf(x[i]));
    EXPECT_LE(std::fabs(h[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -11) + 1e-7f);
    EXPECT_LE(std::fabs(b[i] - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8));
  }
}

TEST(Quantize, Q8_0WithinHalfStep) {
  std::vector<float> x = Gaussian(32 * 64, 1.0f, 2);
  std::fill(x.begin(), x.begin() + 32, 0.0f);  // an all-zero block
  const std::vector<float> y = RoundTrip(Type::kQ8_0, x);
  for (int64_t b = 0; b < 64; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float d = RoundToHalf(amax / 127);
    for (int i = 0; i < 32; ++i) {
      // Half a step, plus the fp16 rounding of d times up to 127 steps.
      EXPECT_LE(std::fabs(y[b * 32 + i] - x[b * 32 + i]), 0.5f * d + 127 * std::fabs(d - amax / 127) + 1e-7f);
    }
  }
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.0f);
  // Integers that are exactly representable come back exactly.
  std::vector<float> ints(32);
  for (int i = 0; i < 32; ++i) ints[i] = static_cast<float>(i * 4 - 64);
  ints[0] = 127;
  EXPECT_EQ(RoundTrip(Type::kQ8_0, ints), ints);
}

TEST(Quantize, Q6KAccurate) {
  std::vector<float> x = Gaussian(256 * 32, 0.02f, 3);
  std::fill(x.begin(), x.begin() + 256, 0.0f);  // an all-zero block
  const std::vector<float> y = RoundTrip(Type::kQ6K, x);
  double err2 = 0, sig2 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err2 += (y[i] - x[i]) * (y[i] - x[i]);
    sig2 += x[i] * x[i];
  }
  EXPECT_LT(std::sqrt(err2 / sig2), 0.02);  // 6-bit: ~1% relative RMS error
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.0f);
  // No element is off by more than one sub-block step: |x| / 31 at most.
  for (size_t b = 1; b < 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 256; ++i) amax = std::max(amax, std::fabs(x[b * 256 + i]));
    for (int i = 0; i < 256; ++i) EXPECT_LE(std::fabs(y[b * 256 + i] - x[b * 256 + i]), amax / 31);
  }
}

// Ternary codes times a per-block (or per-tensor) fp16-exact scale.
std::vector<float> TernaryValues(int64_t n, int64_t block, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  float scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i % block == 0) scale = RoundToHalf(0.001f + 0.05f * (rng() % 1000) / 1000.0f);
    v[i] = static_cast<float>(static_cast<int>(rng() % 3) - 1) * scale;
  }
  return v;
}

class TernaryType : public ::testing::TestWithParam<Type> {};

TEST_P(TernaryType, DecodeOfQuantizeIsExact) {
  const Type t = GetParam();
  const int64_t n = 256 * 12;
  const int64_t block = t == Type::kI2S ? n : 256;
  const std::vector<float> x = TernaryValues(n, block, 4);
  absl::StatusOr<std::vector<uint8_t>> q = Quantize(t, x);
  ASSERT_TRUE(q.ok()) << q.status();
  absl::StatusOr<TernaryDecoded> d = DecodeTernary(t, q->data(), n);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->codes.size(), static_cast<size_t>(n));
  EXPECT_EQ(d->scale_block, block);
  std::vector<float> y(n);
  ASSERT_TRUE(Dequantize(t, q->data(), n, y.data()).ok());
  for (int64_t i = 0; i < n; ++i) {
    const float s = d->scales[i / d->scale_block];
    ASSERT_EQ(d->codes[i] * s, x[i]) << i;
    ASSERT_EQ(y[i], x[i]) << i;
  }
  // And quantizing again gives the same bytes.
  EXPECT_EQ(*Quantize(t, y), *q);
}

TEST_P(TernaryType, AllCodePatternsSurvive) {
  // Every code in every position of a block, with a block scale of 1.
  const Type t = GetParam();
  const int64_t n = 256 * 3;
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i / 3 + i) % 3) - 1.0f;
  for (int64_t b = 0; b < 3; ++b) x[b * 256] = 1.0f;
  absl::StatusOr<TernaryDecoded> d = DecodeTernary(t, Quantize(t, x)->data(), n);
  ASSERT_TRUE(d.ok());
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(d->codes[i], x[i]) << i;
  for (float s : d->scales) EXPECT_EQ(s, 1.0f);
}

TEST_P(TernaryType, RejectsPartialBlocksAndWrongTypes) {
  std::vector<uint8_t> buf(1024);
  EXPECT_FALSE(DecodeTernary(GetParam(), buf.data(), 100).ok());
  EXPECT_FALSE(DecodeTernary(Type::kF32, buf.data(), 256).ok());
}

INSTANTIATE_TEST_SUITE_P(All, TernaryType,
                         ::testing::Values(Type::kTQ1_0, Type::kTQ2_0, Type::kI2S));

TEST(Ternary, TwoBitCodeThreeIsReportedNotDecoded) {
  std::vector<uint8_t> tq2(66, 0xFF);  // every code 3
  EXPECT_FALSE(DecodeTernary(Type::kTQ2_0, tq2.data(), 256).ok());
  std::vector<float> y(256);
  EXPECT_FALSE(Dequantize(Type::kTQ2_0, tq2.data(), 256, y.data()).ok());
  std::vector<uint8_t> i2s(256 / 4 + 32, 0xFF);
  EXPECT_FALSE(DecodeTernary(Type::kI2S, i2s.data(), 256).ok());
}

TEST(Ternary, I2sLayoutMatchesReadme) {
  // Element j of group g: (byte[32g + j%32] >> (6 - 2*(j/32))) & 3.
  std::vector<float> x(256, 0.0f);
  x[0] = 1.0f;     // group 0, j=0: byte 0 bits 6-7 -> code 2
  x[33] = -1.0f;   // group 0, j=33: byte 1 bits 4-5 -> code 0
  x[128 + 127] = 1.0f;  // group 1, j=127: byte 63 bits 0-1 -> code 2
  std::vector<uint8_t> q = *Quantize(Type::kI2S, x);
  ASSERT_EQ(q.size(), 96u);
  EXPECT_EQ(q[0], 0x95);  // codes 2,1,1,1 (j=0,32,64,96)
  EXPECT_EQ(q[1], 0x45);  // codes 1,0,1,1 (j=1,33,65,97)
  EXPECT_EQ(q[63], 0x56); // codes 1,1,1,2
  float scale;
  std::memcpy(&scale, q.data() + 64, 4);
  EXPECT_EQ(scale, 1.0f);
  for (size_t i = 68; i < q.size(); ++i) EXPECT_EQ(q[i], 0);
}

TEST(Dequantize, UnsupportedTypeSaysSo) {
  std::vector<uint8_t> buf(144);
  std::vector<float> y(256);
  absl::Status s = Dequantize(Type::kQ4K, buf.data(), 256, y.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("q4_K"), std::string::npos);
  EXPECT_FALSE(Quantize(Type::kQ4K, y).ok());
}

// ---- Oracle: all encodings of the same model hold identical ternary weights.

std::unique_ptr<gguf::File> OpenOracle(const std::string& type) {
  auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-" + type + ".gguf");
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

std::vector<float> DequantizeTensor(const gguf::File& f, const gguf::TensorInfo& t) {
  std::vector<float> y(t.n_elements());
  absl::Status s = Dequantize(t.type, f.TensorData(t), t.n_elements(), y.data());
  EXPECT_TRUE(s.ok()) << t.name << ": " << s;
  return y;
}

class OracleTernary : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleTernary, DecodesBitIdenticalToF32File) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> f32 = OpenOracle("f32");
  std::unique_ptr<gguf::File> q = OpenOracle(GetParam());
  ASSERT_TRUE(f32 && q);
  int checked = 0;
  for (const gguf::TensorInfo& t : q->tensors()) {
    if (!Traits(t.type).ternary) continue;
    const gguf::TensorInfo* ref = f32->FindTensor(t.name);
    ASSERT_NE(ref, nullptr) << t.name;
    ASSERT_EQ(ref->ne, t.ne);
    absl::StatusOr<TernaryDecoded> d = DecodeTernary(t.type, q->TensorData(t), t.n_elements());
    ASSERT_TRUE(d.ok()) << t.name << ": " << d.status();
    const std::vector<float> want = DequantizeTensor(*f32, *ref);
    for (int64_t i = 0; i < t.n_elements(); ++i) {
      ASSERT_EQ(d->codes[i] * d->scales[i / d->scale_block], want[i]) << t.name << " @" << i;
    }
    EXPECT_EQ(DequantizeTensor(*q, t), want) << t.name;
    ++checked;
  }
  EXPECT_EQ(checked, 28);  // 7 linear weights x 4 layers
}

INSTANTIATE_TEST_SUITE_P(Files, OracleTernary, ::testing::Values("tq1_0", "tq2_0", "i2_s"));

TEST(Oracle, Q6KEmbeddingCloseToF32) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> f32 = OpenOracle("f32");
  std::unique_ptr<gguf::File> tq = OpenOracle("tq2_0");
  ASSERT_TRUE(f32 && tq);
  const gguf::TensorInfo* t = tq->FindTensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->type, Type::kQ6K);
  const std::vector<float> got = DequantizeTensor(*tq, *t);
  const std::vector<float> want = DequantizeTensor(*f32, *f32->FindTensor("token_embd.weight"));
  double err2 = 0, sig2 = 0, max_err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err2 += (got[i] - want[i]) * (got[i] - want[i]);
    sig2 += want[i] * want[i];
    max_err = std::max(max_err, static_cast<double>(std::fabs(got[i] - want[i])));
  }
  EXPECT_LT(std::sqrt(err2 / sig2), 0.02);
  EXPECT_LT(max_err, 0.01);  // values are N(0, 0.02)

  // Our Q6_K quantizer, fed the f32 embedding, lands as close.
  const std::vector<float> ours = RoundTrip(Type::kQ6K, want);
  double our_err2 = 0;
  for (size_t i = 0; i < ours.size(); ++i) our_err2 += (ours[i] - want[i]) * (ours[i] - want[i]);
  EXPECT_LT(std::sqrt(our_err2 / sig2), 0.02);
  // In fact it reproduces llama-quantize's bytes exactly.
  const std::vector<uint8_t> enc = *Quantize(Type::kQ6K, want);
  ASSERT_EQ(enc.size(), t->n_bytes());
  EXPECT_EQ(0, std::memcmp(enc.data(), tq->TensorData(*t), enc.size()));
}

TEST(Oracle, I2sFileF16EmbeddingEqualsF32) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> f32 = OpenOracle("f32");
  std::unique_ptr<gguf::File> i2s = OpenOracle("i2_s");
  ASSERT_TRUE(f32 && i2s);
  const gguf::TensorInfo* t = i2s->FindTensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->type, Type::kF16);
  EXPECT_EQ(DequantizeTensor(*i2s, *t),
            DequantizeTensor(*f32, *f32->FindTensor("token_embd.weight")));
  // And our F16 encoder reproduces the file's bytes.
  const std::vector<float> ref = DequantizeTensor(*f32, *f32->FindTensor("token_embd.weight"));
  const std::vector<uint8_t> enc = *Quantize(Type::kF16, ref);
  EXPECT_EQ(0, std::memcmp(enc.data(), i2s->TensorData(*t), enc.size()));
}

TEST(Oracle, TernaryEncodersReproduceFileBytes) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> f32 = OpenOracle("f32");
  ASSERT_TRUE(f32);
  for (const std::string type : {"tq1_0", "tq2_0", "i2_s"}) {
    std::unique_ptr<gguf::File> q = OpenOracle(type);
    ASSERT_TRUE(q);
    for (const gguf::TensorInfo& t : q->tensors()) {
      if (!Traits(t.type).ternary) continue;
      const std::vector<float> x = DequantizeTensor(*f32, *f32->FindTensor(t.name));
      absl::StatusOr<std::vector<uint8_t>> enc = Quantize(t.type, x);
      ASSERT_TRUE(enc.ok());
      ASSERT_EQ(enc->size(), t.n_bytes());
      // I2_S padding after the scale is not specified; compare codes + scale.
      const size_t cmp = t.type == Type::kI2S ? t.n_elements() / 4 + 4 : enc->size();
      EXPECT_EQ(0, std::memcmp(enc->data(), q->TensorData(t), cmp)) << type << " " << t.name;
    }
  }
}

}  // namespace
}  // namespace bitnet::ggml
