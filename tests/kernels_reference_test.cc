// Hand-computed cases for the scalar reference kernels: fp16/bf16 rounding,
// ternary packing, the activation quantizers and the matrix products.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation_quant.h"
#include "kernels/float16.h"
#include "kernels/matmul.h"
#include "kernels/ternary_matrix.h"

namespace bitnet::kernels {
namespace {

TEST(Float16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalfBits(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(65520.0f), 0x7c00);  // tie rounds to even = inf
  EXPECT_EQ(FloatToHalfBits(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(-std::numeric_limits<float>::infinity()), 0xfc00);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even 1.
  EXPECT_EQ(FloatToHalfBits(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Subnormals: units of 2^-24.
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -25)), 0x0000);      // tie -> 0
  EXPECT_EQ(FloatToHalfBits(3 * std::ldexp(1.0f, -25)), 0x0002);  // 1.5 -> 2
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(FloatToHalfBits(std::nanf("")))));
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0xbc00), -1.0f);
}

#if defined(__FLT16_MAX__)
// The compiler's own _Float16 conversion is correctly rounded: compare a
// dense sweep of float bit patterns.
TEST(Float16, MatchesCompilerFloat16) {
  for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
    const float f = std::bit_cast<float>(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    ASSERT_EQ(FloatToHalfBits(f), std::bit_cast<uint16_t>(h)) << f;
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfBitsToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f, static_cast<float>(std::bit_cast<_Float16>(static_cast<uint16_t>(h))));
    ASSERT_EQ(FloatToHalfBits(f), h);
  }
}
#endif

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBF16Bits(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBF16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie -> even
  EXPECT_EQ(FloatToBF16Bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even
  EXPECT_EQ(RoundToBF16(1.0f + std::ldexp(1.0f, -7)), 1.0f + std::ldexp(1.0f, -7));
  EXPECT_TRUE(std::isnan(RoundToBF16(std::nanf(""))));
}

TEST(PackTernary, LayoutAndPadding) {
  const std::vector<int8_t> codes = {1, 0, -1, 1, -1,  //
                                     0, 0, 0,  0, 1};
  TernaryMatrix w = PackTernary(2, 5, codes.data(), {0.5f}, 10);
  EXPECT_EQ(w.row_bytes(), 2);
  EXPECT_EQ(w.scale_block, 5);
  ASSERT_EQ(w.codes.size(), 4u);
  // Fields code+1 = 2,1,0,2 -> 0b10'00'01'10; then 0 and padding 1,1,1.
  EXPECT_EQ(w.codes[0], 0x86);
  EXPECT_EQ(w.codes[1], 0x54);
  EXPECT_EQ(w.codes[2], 0x55);
  EXPECT_EQ(w.codes[3], 0x56);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 5; ++c) EXPECT_EQ(w.code(r, c), codes[r * 5 + c]);
  EXPECT_EQ(w.scale(1, 0), 0.5f);
  EXPECT_TRUE(ValidateTernaryMatrix(w).ok());
  w.codes[0] = 0x03;  // field value 3
  EXPECT_FALSE(ValidateTernaryMatrix(w).ok());
}

TEST(PackTernary, BlockScalesAndErrors) {
  std::vector<int8_t> codes(2 * 8, 1);
  TernaryMatrix w = PackTernary(2, 8, codes.data(), {1, 2, 3, 4}, 4);
  EXPECT_EQ(w.blocks_per_row(), 2);
  EXPECT_EQ(w.scale(1, 0), 3.0f);
  EXPECT_EQ(w.scale(1, 1), 4.0f);
  EXPECT_FALSE(PackTernaryChecked(2, 8, codes.data(), {1, 2, 3}, 4).ok());
  EXPECT_FALSE(PackTernaryChecked(2, 8, codes.data(), {1, 2, 3, 4}, 3).ok());
}

TEST(ActQuantNames, RoundTrip) {
  for (ActQuant q : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
    EXPECT_EQ(*ActQuantFromName(ActQuantName(q)), q);
  }
  EXPECT_FALSE(ActQuantFromName("int4").ok());
}

TEST(QuantizePerToken, HandComputed) {
  const std::vector<float> x = {1.0f, -0.5f, 0.25f, 0.0f};
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 4, ActQuant::kPerToken, &a);
  // s = 127: -63.5 -> -64 (even), 31.75 -> 32.
  EXPECT_EQ(a.q, (std::vector<int8_t>{127, -64, 32, 0}));
  EXPECT_EQ(a.scale[0], 1.0f / 127.0f);
  EXPECT_EQ(a.row_sum[0], 95);
}

TEST(QuantizePerToken, ExactHalvesRoundToEven) {
  const std::vector<float> x = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -127.0f};
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 7, ActQuant::kPerToken, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{127, 0, 2, 2, 0, -2, -127}));
  EXPECT_EQ(a.scale[0], 1.0f);
}

TEST(QuantizePerToken, ZeroRowAndSeveralRows) {
  const std::vector<float> x = {0, 0, 0, 2, 2, 2};
  QuantizedActs a;
  QuantizeActs(x.data(), 2, 3, ActQuant::kPerToken, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{0, 0, 0, 127, 127, 127}));
  EXPECT_EQ(a.scale[0], 1.0f / (127.0f / 1e-5f));  // max(|x|) floored at 1e-5
  EXPECT_EQ(a.scale[1], 1.0f / (127.0f / 2.0f));
  EXPECT_EQ(a.row_sum, (std::vector<int32_t>{0, 381}));
}

TEST(QuantizeQ8K, HandComputed) {
  // x_max = -4 (signed), iscale = 31.75: 63.5 -> 64, 95.25 -> 95.
  const std::vector<float> x = {2.0f, -4.0f, 1.0f, 3.0f};
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 4, ActQuant::kQ8K, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{64, -127, 32, 95}));
  ASSERT_EQ(a.scale.size(), 1u);
  EXPECT_EQ(a.scale[0], 1.0f / (-127.0f / -4.0f));
}

TEST(QuantizeQ8K, ExactHalvesSignAndTies) {
  QuantizedActs a;
  const std::vector<float> neg = {-127.0f, 0.5f, 1.5f, 2.5f};  // iscale = 1
  QuantizeActs(neg.data(), 1, 4, ActQuant::kQ8K, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{-127, 0, 2, 2}));
  EXPECT_EQ(a.scale[0], 1.0f);
  const std::vector<float> pos = {127.0f, 0.5f, 1.5f};  // iscale = -1
  QuantizeActs(pos.data(), 1, 3, ActQuant::kQ8K, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{-127, 0, -2}));
  EXPECT_EQ(a.scale[0], -1.0f);
  // Equal magnitudes: the first one sets the sign.
  const std::vector<float> tie = {3.0f, -3.0f};
  QuantizeActs(tie.data(), 1, 2, ActQuant::kQ8K, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{-127, 127}));
  EXPECT_LT(a.scale[0], 0.0f);
  const std::vector<float> equal = {2.0f, 2.0f, 2.0f};
  QuantizeActs(equal.data(), 1, 3, ActQuant::kQ8K, &a);
  EXPECT_EQ(a.q, (std::vector<int8_t>{-127, -127, -127}));
  EXPECT_EQ(a.scale[0], 1.0f / (-127.0f / 2.0f));
}

TEST(QuantizeQ8K, ZeroBlockAndPartialLastBlock) {
  // Two rows of 300: blocks [0,256) and a partial [256,300).
  std::vector<float> x(600, 0.0f);
  x[256] = 8.0f;    // row 0, partial block
  x[300] = -1.0f;   // row 1, first block
  x[599] = 0.5f;    // row 1, partial block
  QuantizedActs a;
  QuantizeActs(x.data(), 2, 300, ActQuant::kQ8K, &a);
  ASSERT_EQ(a.scale.size(), 4u);
  EXPECT_EQ(a.scale[0], 0.0f);  // all-zero block
  EXPECT_EQ(a.scale[1], 1.0f / (-127.0f / 8.0f));
  EXPECT_EQ(a.scale[2], 1.0f / 127.0f);
  EXPECT_EQ(a.scale[3], 1.0f / (-127.0f / 0.5f));
  EXPECT_EQ(a.q[256], -127);
  EXPECT_EQ(a.q[300], -127);
  EXPECT_EQ(a.q[599], -127);
  EXPECT_EQ(a.q[0], 0);
}

TEST(QuantizeNone, CopiesFloats) {
  const std::vector<float> x = {1.5f, -2.0f};
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 2, ActQuant::kNone, &a);
  EXPECT_EQ(a.x, x);
  EXPECT_TRUE(a.q.empty());
}

TEST(TernaryMatMulReference, PerTokenHandComputed) {
  const std::vector<int8_t> codes = {1, 0, -1, 1, -1,  //
                                     -1, -1, 1, 0, 1};
  const TernaryMatrix w = PackTernary(2, 5, codes.data(), {0.5f}, 10);
  const std::vector<float> x = {127, 1, -2, 3, 0};  // s = 1: q = x
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 5, ActQuant::kPerToken, &a);
  float y[2];
  TernaryMatMulReference(w, a, y);
  EXPECT_EQ(y[0], 66.0f);   // (127 + 2 + 3) * 0.5
  EXPECT_EQ(y[1], -65.0f);  // (-127 - 1 - 2) * 0.5
  TernaryMatMul(w, a, y);
  EXPECT_EQ(y[0], 66.0f);
}

TEST(TernaryMatMulReference, BlockScalesWithQ8K) {
  // 1 row, 512 cols, weight scales per 256 (TQ2_0 style) = {2, 3}.
  std::vector<int8_t> codes(512, 0);
  codes[0] = 1;
  codes[1] = -1;
  codes[300] = 1;
  const TernaryMatrix w = PackTernary(1, 512, codes.data(), {2.0f, 3.0f}, 256);
  std::vector<float> x(512, 0.0f);
  x[0] = -127.0f;  // block 0: iscale 1, d 1
  x[1] = 7.0f;
  x[300] = 127.0f;  // block 1: iscale -1, d -1
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 512, ActQuant::kQ8K, &a);
  float y;
  TernaryMatMulReference(w, a, &y);
  // block 0: (-127 - 7) * (1 * 2) = -268; block 1: (-127) * (-1 * 3) = 381.
  EXPECT_EQ(y, 113.0f);
}

TEST(TernaryMatMulReference, FloatActivations) {
  const std::vector<int8_t> codes = {1, -1, 0, 1};
  const TernaryMatrix w = PackTernary(1, 4, codes.data(), {0.25f}, 4);
  const std::vector<float> x = {1.5f, -2.0f, 100.0f, 0.5f};
  QuantizedActs a;
  QuantizeActs(x.data(), 1, 4, ActQuant::kNone, &a);
  float y;
  TernaryMatMulReference(w, a, &y);
  EXPECT_EQ(y, (1.5f + 2.0f + 0.5f) * 0.25f);
}

// The segment bookkeeping against a direct per-element double sum.
TEST(TernaryMatMulReference, AgreesWithDirectSumOnRandomShapes) {
  std::mt19937 rng(7);
  for (const ActQuant mode : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
    for (const auto& [rows, cols, block] :
         std::vector<std::tuple<int, int, int>>{{3, 300, 300}, {5, 512, 256}, {2, 600, 100},
                                                {4, 7, 7}}) {
      std::vector<int8_t> codes(rows * cols);
      for (auto& c : codes) c = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
      std::vector<float> scales(rows * cols / block);
      for (auto& s : scales) s = 0.5f + static_cast<float>(rng() % 100) / 100.0f;
      const TernaryMatrix w = PackTernary(rows, cols, codes.data(), scales, block);
      const int n = 3;
      std::vector<float> x(n * cols);
      std::normal_distribution<float> normal;
      for (auto& v : x) v = normal(rng);
      QuantizedActs a;
      QuantizeActs(x.data(), n, cols, mode, &a);
      std::vector<float> y(n * rows);
      TernaryMatMulReference(w, a, y.data());
      for (int i = 0; i < n; ++i) {
        for (int r = 0; r < rows; ++r) {
          double want = 0;
          for (int c = 0; c < cols; ++c) {
            double v = mode == ActQuant::kNone ? x[i * cols + c] : a.q[i * cols + c];
            if (mode == ActQuant::kPerToken) v *= a.scale[i];
            if (mode == ActQuant::kQ8K) v *= a.scale[i * ((cols + 255) / 256) + c / 256];
            want += v * codes[r * cols + c] * w.scale(r, c / block);
          }
          EXPECT_NEAR(y[i * rows + r], want, 1e-4 * (1 + std::fabs(want)))
              << ActQuantName(mode) << " " << rows << "x" << cols;
        }
      }
    }
  }
}

TEST(DenseMatMul, F16AndBF16Rounding) {
  DenseMatrix w{.rows = 1, .cols = 2, .w = {1.0f, 1.0f}};
  const float x[2] = {1.0f + std::ldexp(1.0f, -11), 3 * std::ldexp(1.0f, -11)};
  float y;
  w.act_rounding = DenseActRounding::kNone;
  DenseMatMul(w, x, 1, &y);
  EXPECT_EQ(y, x[0] + x[1]);
  w.act_rounding = DenseActRounding::kF16;
  DenseMatMul(w, x, 1, &y);
  EXPECT_EQ(y, 1.0f + RoundToHalf(x[1]));  // x[0] rounds to 1 (tie to even)
  w.act_rounding = DenseActRounding::kBF16;
  const float xb[2] = {1.0f + std::ldexp(1.0f, -8), 2.0f};
  DenseMatMul(w, xb, 1, &y);
  EXPECT_EQ(y, 3.0f);
}

TEST(DenseMatMul, Q8_0Blocks) {
  // 40 columns: a block of 32 and a partial block of 8.
  DenseMatrix w{.rows = 1, .cols = 40, .w = std::vector<float>(40, 1.0f),
                .act_rounding = DenseActRounding::kQ8_0};
  std::vector<float> x(40, 0.0f);
  x[0] = 127.0f;  // d = 1 exactly: q = rne(x)
  x[1] = 0.5f;    // -> 0
  x[2] = 1.5f;    // -> 2
  x[32] = 1.0f;   // d = fp16(1/127), q = 127
  x[33] = 0.3f;   // q = rne(38.1) = 38
  std::vector<float> r(40);
  RoundDenseActs(DenseActRounding::kQ8_0, x.data(), 40, r.data());
  EXPECT_EQ(r[0], 127.0f);
  EXPECT_EQ(r[1], 0.0f);
  EXPECT_EQ(r[2], 2.0f);
  const float d = RoundToHalf(1.0f / 127.0f);
  EXPECT_NE(d, 1.0f / 127.0f);
  EXPECT_EQ(r[32], 127.0f * d);
  EXPECT_EQ(r[33], 38.0f * d);
  float y;
  DenseMatMul(w, x.data(), 1, &y);
  float want = 0;
  for (float v : r) want += v;
  EXPECT_EQ(y, want);
}

TEST(DenseMatMul, Q8KAndSeveralRows) {
  DenseMatrix w{.rows = 2, .cols = 3, .w = {1, 2, 3, -1, 0, 1},
                .act_rounding = DenseActRounding::kQ8K};
  const float x[6] = {-127.0f, 0.5f, 1.5f,  // iscale 1: q = -127, 0, 2
                      0, 0, 0};
  float y[4];
  DenseMatMul(w, x, 2, y);
  EXPECT_EQ(y[0], -127.0f + 0 + 6.0f);
  EXPECT_EQ(y[1], 127.0f + 2.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
}

}  // namespace
}  // namespace bitnet::kernels
