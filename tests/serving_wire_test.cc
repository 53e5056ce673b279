// The activation wire format: exactness of fp32, rounding of fp16, the
// documented int8 error bound (max|x| / 254 per row or block), and refusal of
// malformed frames.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "serving/activation_codec.h"

namespace bitnet::serving {
namespace {

std::vector<float> RandomActs(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows of very different magnitude, plus an outlier, like a residual stream.
    const float row_scale = std::pow(10.f, static_cast<float>(r % 5) - 2.f);
    for (int64_t c = 0; c < cols; ++c) x[r * cols + c] = normal(rng) * row_scale;
    x[r * cols + (r * 7) % cols] *= 20.f;
  }
  return x;
}

std::vector<float> RoundTrip(const std::vector<float>& x, int64_t rows, int64_t cols,
                             const WireFormat& f) {
  v1::Activations wire;
  EncodeActivations(x.data(), rows, cols, f, &wire);
  // Through the real serialization, as a stage would receive it.
  v1::Activations received;
  EXPECT_TRUE(received.ParseFromString(wire.SerializeAsString()));
  std::vector<float> y;
  EXPECT_TRUE(DecodeActivations(received, cols, &y).ok());
  EXPECT_EQ(static_cast<int64_t>(wire.data().size() + 4 * wire.scales_size()),
            EncodedBytes(rows, cols, f));
  return y;
}

TEST(WireFormat, ParsesNames) {
  EXPECT_EQ(*ParseWireFormat("fp32"), (WireFormat{v1::Activations::FP32, 0}));
  EXPECT_EQ(*ParseWireFormat("fp16"), (WireFormat{v1::Activations::FP16, 0}));
  EXPECT_EQ(*ParseWireFormat("int8"), (WireFormat{v1::Activations::INT8, 0}));
  EXPECT_EQ(*ParseWireFormat("int8-b32"), (WireFormat{v1::Activations::INT8, 32}));
  EXPECT_EQ(*ParseWireFormat("int8-b64"), (WireFormat{v1::Activations::INT8, 64}));
  for (const char* bad : {"int4", "", "int8-b", "int8-b0", "int8-bx", "FP32"}) {
    auto f = ParseWireFormat(bad);
    EXPECT_FALSE(f.ok()) << bad;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  }
  for (const char* name : {"fp32", "fp16", "int8", "int8-b32", "int8-b64"}) {
    EXPECT_EQ(WireFormatName(*ParseWireFormat(name)), name);
  }
}

TEST(WireFormat, Fp32IsExact) {
  const int64_t rows = 5, cols = 96;
  auto x = RandomActs(rows, cols, 1);
  EXPECT_EQ(RoundTrip(x, rows, cols, {v1::Activations::FP32, 0}), x);
}

TEST(WireFormat, Fp16RoundsToNearestHalf) {
  const int64_t rows = 5, cols = 96;
  auto x = RandomActs(rows, cols, 2);
  auto y = RoundTrip(x, rows, cols, {v1::Activations::FP16, 0});
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(y[i], ggml::RoundToHalf(x[i])) << i;
    EXPECT_LE(std::fabs(y[i] - x[i]), std::fabs(x[i]) * 0x1p-11f + 1e-7f) << i;
  }
}

// Checks |y - x| <= max|x over the group| / 254 (half a quantization step).
void ExpectInt8Bound(const std::vector<float>& x, const std::vector<float>& y, int64_t rows,
                     int64_t cols, int64_t group) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < cols; b += group) {
      const int64_t e = std::min(cols, b + group);
      float amax = 0;
      for (int64_t c = b; c < e; ++c) amax = std::max(amax, std::fabs(x[r * cols + c]));
      for (int64_t c = b; c < e; ++c) {
        const float err = std::fabs(y[r * cols + c] - x[r * cols + c]);
        EXPECT_LE(err, amax / 254.f * (1 + 1e-5f) + 1e-30f) << "row " << r << " col " << c;
      }
    }
  }
}

TEST(WireFormat, Int8PerTokenWithinHalfStep) {
  const int64_t rows = 7, cols = 160;
  auto x = RandomActs(rows, cols, 3);
  auto y = RoundTrip(x, rows, cols, {v1::Activations::INT8, 0});
  ExpectInt8Bound(x, y, rows, cols, cols);
  // The largest value of each row survives exactly (it defines the scale).
  for (int64_t r = 0; r < rows; ++r) {
    int64_t c = 0;
    for (int64_t k = 1; k < cols; ++k) {
      if (std::fabs(x[r * cols + k]) > std::fabs(x[r * cols + c])) c = k;
    }
    EXPECT_NEAR(y[r * cols + c], x[r * cols + c], std::fabs(x[r * cols + c]) * 1e-6f);
  }
}

TEST(WireFormat, Int8PerBlockIsTighterThanPerToken) {
  const int64_t rows = 6, cols = 200;  // 200 = 3 blocks of 64 + a partial block of 8
  auto x = RandomActs(rows, cols, 4);
  for (int block : {32, 64}) {
    auto y = RoundTrip(x, rows, cols, {v1::Activations::INT8, block});
    ExpectInt8Bound(x, y, rows, cols, block);
  }
  auto per_token = RoundTrip(x, rows, cols, {v1::Activations::INT8, 0});
  auto per_block = RoundTrip(x, rows, cols, {v1::Activations::INT8, 32});
  double err_token = 0, err_block = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err_token += std::fabs(per_token[i] - x[i]);
    err_block += std::fabs(per_block[i] - x[i]);
  }
  EXPECT_LT(err_block, err_token);  // the outlier costs per-token more
}

TEST(WireFormat, ZeroAndEmptyRows) {
  std::vector<float> zeros(3 * 64, 0.f);
  EXPECT_EQ(RoundTrip(zeros, 3, 64, {v1::Activations::INT8, 0}), zeros);
  EXPECT_EQ(RoundTrip(zeros, 3, 64, {v1::Activations::INT8, 32}), zeros);
  std::vector<float> none;
  EXPECT_TRUE(RoundTrip(none, 0, 64, {v1::Activations::INT8, 0}).empty());
}

TEST(WireFormat, RefusesMalformedFrames) {
  const int64_t rows = 2, cols = 64;
  auto x = RandomActs(rows, cols, 5);
  v1::Activations good;
  EncodeActivations(x.data(), rows, cols, {v1::Activations::INT8, 32}, &good);
  std::vector<float> y;
  ASSERT_TRUE(DecodeActivations(good, cols, &y).ok());

  auto expect_invalid = [&](const v1::Activations& bad, int64_t expected_cols, const char* what) {
    absl::Status s = DecodeActivations(bad, expected_cols, &y);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << what << ": " << s;
  };
  expect_invalid(good, cols + 1, "other model width");
  v1::Activations bad = good;
  bad.mutable_data()->pop_back();
  expect_invalid(bad, cols, "truncated data");
  bad = good;
  bad.mutable_scales()->RemoveLast();
  expect_invalid(bad, cols, "missing scale");
  bad = good;
  bad.set_rows(3);
  expect_invalid(bad, cols, "rows larger than data");
  bad = good;
  bad.set_block(-4);
  expect_invalid(bad, cols, "negative block");
  bad = good;
  bad.set_format(static_cast<v1::Activations::Format>(42));
  expect_invalid(bad, cols, "unknown format");
  bad = good;
  bad.set_rows(-1);
  expect_invalid(bad, cols, "negative rows");
  v1::Activations f16;
  EncodeActivations(x.data(), rows, cols, {v1::Activations::FP16, 0}, &f16);
  f16.mutable_data()->append("x");
  expect_invalid(f16, cols, "fp16 with an extra byte");
}

}  // namespace
}  // namespace bitnet::serving
