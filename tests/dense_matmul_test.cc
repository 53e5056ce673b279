// Dense products on compact weights (F16, BF16, Q8_0, Q6_K): every variant
// and thread count equals the scalar reference bit for bit on awkward shapes;
// the reference computes what its contract says (checked against an
// independent double-precision sum of the dequantized values); rows decode
// exactly as model/ggml_types does; the storage is compact.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation_quant.h"
#include "kernels/dense_matmul.h"
#include "kernels/float16.h"
#include "kernels/kernel_variant.h"
#include "kernels/thread_pool.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "tests/test_support.h"

namespace bitnet::kernels {
namespace {

struct FormatCase {
  DenseFormat format;
  ggml::Type type;
};
const FormatCase kFormats[] = {{DenseFormat::kF16, ggml::Type::kF16},
                               {DenseFormat::kBF16, ggml::Type::kBF16},
                               {DenseFormat::kQ8_0, ggml::Type::kQ8_0},
                               {DenseFormat::kQ6K, ggml::Type::kQ6K}};

::testing::AssertionResult SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::memcmp(&a[k], &b[k], sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "element " << k << ": " << a[k] << " vs reference " << b[k];
    }
  }
  return ::testing::AssertionSuccess();
}

// Random GGUF bytes for a rows x cols matrix of `f`: raw random codes, scales
// and weights over their whole range (including -128), with finite block
// scales, so every bit pattern the kernels decode is exercised.
std::vector<uint8_t> RandomBytes(std::mt19937& rng, DenseFormat f, int64_t rows, int64_t cols) {
  const int64_t blocks = rows * cols / DenseBlockCols(f);
  std::vector<uint8_t> b(static_cast<size_t>(blocks * DenseBlockBytes(f)));
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto put_half = [&](size_t at, float v) {
    const uint16_t h = FloatToHalfBits(v);
    std::memcpy(&b[at], &h, 2);
  };
  switch (f) {
    case DenseFormat::kF16:
      for (int64_t k = 0; k < blocks; ++k) put_half(2 * k, normal(rng));
      break;
    case DenseFormat::kBF16:
      for (int64_t k = 0; k < blocks; ++k) {
        const uint16_t h = FloatToBF16Bits(normal(rng));
        std::memcpy(&b[2 * k], &h, 2);
      }
      break;
    case DenseFormat::kQ8_0:
      for (int64_t k = 0; k < blocks; ++k) put_half(34 * k, 0.01f * (1.0f + std::fabs(normal(rng))));
      break;
    case DenseFormat::kQ6K:
      for (int64_t k = 0; k < blocks; ++k) put_half(210 * k + 208, 0.001f * (1.0f + std::fabs(normal(rng))));
      break;
    case DenseFormat::kF32: break;
  }
  return b;
}

std::vector<float> RandomActs(std::mt19937& rng, int64_t n, int64_t cols) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (auto& v : x) v = normal(rng);
  for (int k = 0; k < 3 && !x.empty(); ++k) x[rng() % x.size()] *= 40.0f;  // outliers
  // An all-zero activation block (a zero Q8 scale).
  const int64_t z = std::min<int64_t>(cols, 256);
  for (int64_t c = 0; c < z && n > 1; ++c) x[static_cast<size_t>(cols + c)] = 0.0f;
  return x;
}

std::vector<int64_t> ColsFor(DenseFormat f) {
  switch (f) {
    case DenseFormat::kQ8_0: return {32, 96, 288, 544, 2560};
    case DenseFormat::kQ6K: return {256, 768, 2560};
    default: return {1, 15, 16, 17, 100, 2560};
  }
}

class DenseVariantTest : public ::testing::TestWithParam<KernelVariant> {
 protected:
  void SetUp() override { ASSERT_TRUE(SetKernelVariant(GetParam())); }
  void TearDown() override { ResetKernelVariant(); }
};

TEST_P(DenseVariantTest, EqualsReferenceOnAwkwardShapes) {
  std::mt19937 rng(7);
  ThreadPool pool1(1), pool3(3);
  for (const FormatCase& fc : kFormats) {
    for (int64_t cols : ColsFor(fc.format)) {
      for (int64_t rows : {1, 3, 5, 21, 70}) {
        const std::vector<uint8_t> bytes = RandomBytes(rng, fc.format, rows, cols);
        const DenseMatrix w = MakeCompactDense(fc.format, rows, cols, bytes.data());
        for (int64_t n : {1, 2, 5}) {
          const std::vector<float> x = RandomActs(rng, n, cols);
          std::vector<float> ref(static_cast<size_t>(n * rows)), got1(ref.size()), got3(ref.size());
          DenseMatMulReference(w, x.data(), n, ref.data());
          DenseMatMul(w, x.data(), n, got1.data(), pool1);
          DenseMatMul(w, x.data(), n, got3.data(), pool3);
          const std::string where = std::string(DenseFormatName(fc.format)) + " " +
                                    std::to_string(rows) + "x" + std::to_string(cols) +
                                    " n=" + std::to_string(n);
          EXPECT_TRUE(SameBits(got1, ref)) << where;
          EXPECT_TRUE(SameBits(got3, ref)) << where << " (3 threads)";
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, DenseVariantTest,
                         ::testing::ValuesIn(SupportedKernelVariants()),
                         [](const ::testing::TestParamInfo<KernelVariant>& info) {
                           std::string name(KernelVariantName(info.param));
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

// The values the dot product sees for one row of activations (an independent
// restatement of ggml's vec_dot_type rounding, via the model library's
// quantizers where they exist).
std::vector<double> SeenActs(DenseFormat f, const float* x, int64_t cols) {
  std::vector<float> r(static_cast<size_t>(cols));
  const DenseActRounding mode = f == DenseFormat::kF16    ? DenseActRounding::kF16
                                : f == DenseFormat::kBF16 ? DenseActRounding::kBF16
                                : f == DenseFormat::kQ8_0 ? DenseActRounding::kQ8_0
                                                          : DenseActRounding::kQ8K;
  RoundDenseActs(mode, x, cols, r.data());
  return std::vector<double>(r.begin(), r.end());
}

TEST(DenseMatMulTest, ReferenceIsTheDotProductOfWhatGgmlSees) {
  std::mt19937 rng(11);
  for (const FormatCase& fc : kFormats) {
    const int64_t rows = 9, cols = 512;
    const std::vector<uint8_t> bytes = RandomBytes(rng, fc.format, rows, cols);
    const DenseMatrix w = MakeCompactDense(fc.format, rows, cols, bytes.data());
    std::vector<float> wf(static_cast<size_t>(rows * cols));
    ASSERT_TRUE(ggml::Dequantize(fc.type, bytes.data(), rows * cols, wf.data()).ok());
    const std::vector<float> x = RandomActs(rng, 1, cols);
    const std::vector<double> xs = SeenActs(fc.format, x.data(), cols);
    std::vector<float> y(static_cast<size_t>(rows));
    DenseMatMulReference(w, x.data(), 1, y.data());
    for (int64_t r = 0; r < rows; ++r) {
      double want = 0.0, mag = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        want += static_cast<double>(wf[r * cols + c]) * xs[c];
        mag += std::fabs(static_cast<double>(wf[r * cols + c]) * xs[c]);
      }
      // f32 accumulation of a few hundred terms (and, for Q6_K, the
      // dequantized weights' own f32 rounding): relative to the magnitude.
      EXPECT_NEAR(y[r], want, 1e-5 * mag + 1e-30) << DenseFormatName(fc.format) << " row " << r;
    }
  }
}

TEST(DenseMatMulTest, RowsDecodeLikeGgml) {
  std::mt19937 rng(3);
  for (const FormatCase& fc : kFormats) {
    const int64_t rows = 4, cols = 512;
    const std::vector<uint8_t> bytes = RandomBytes(rng, fc.format, rows, cols);
    const DenseMatrix w = MakeCompactDense(fc.format, rows, cols, bytes.data());
    std::vector<float> want(static_cast<size_t>(rows * cols));
    ASSERT_TRUE(ggml::Dequantize(fc.type, bytes.data(), rows * cols, want.data()).ok());
    EXPECT_TRUE(SameBits(w.ToFloat(), want)) << DenseFormatName(fc.format);
    std::vector<float> row(static_cast<size_t>(cols));
    w.RowToFloat(2, row.data());
    EXPECT_TRUE(SameBits(row, std::vector<float>(want.begin() + 2 * cols, want.begin() + 3 * cols)));
  }
}

TEST(DenseMatMulTest, StorageIsCompact) {
  // A 2B-4T-sized embedding row count would be slow to build here; the
  // bytes per weight are what matters.
  const int64_t rows = 1000, cols = 2560;
  std::vector<uint8_t> f16(static_cast<size_t>(rows * cols * 2), 0);
  const DenseMatrix m = MakeCompactDense(DenseFormat::kF16, rows, cols, f16.data());
  EXPECT_EQ(m.memory_bytes(), static_cast<size_t>(rows * cols * 2));
  EXPECT_TRUE(m.w.empty());
  EXPECT_EQ(m.act_rounding, DenseActRounding::kF16);
  std::vector<uint8_t> q6(static_cast<size_t>(rows * cols / 256 * 210), 0);
  const DenseMatrix k = MakeCompactDense(DenseFormat::kQ6K, rows, cols, q6.data());
  EXPECT_EQ(k.memory_bytes(), static_cast<size_t>(rows * cols / 256 * 210));
  EXPECT_EQ(k.act_rounding, DenseActRounding::kQ8K);
  const DenseMatrix copy = m;  // copies share the weights
  EXPECT_EQ(copy.data.get(), m.data.get());
}

TEST(DenseMatMulTest, ShapeErrors) {
  EXPECT_EQ(DenseShapeError(DenseFormat::kF16, 3, 17), "");
  EXPECT_NE(DenseShapeError(DenseFormat::kQ8_0, 3, 40), "");
  EXPECT_NE(DenseShapeError(DenseFormat::kQ6K, 3, 512 + 32), "");
  EXPECT_NE(DenseShapeError(DenseFormat::kF16, -1, 4), "");
}

TEST(DenseMatMulTest, InconsistentMatrixGivesNaNNotACrash) {
  DenseMatrix m;
  m.rows = 2;
  m.cols = 3;
  m.w = {1.0f};  // too few values
  const float x[3] = {1, 2, 3};
  float y[2] = {0, 0};
  DenseMatMul(m, x, 1, y);
  EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
}

TEST(DenseMatMulTest, F32StorageKeepsColumnOrder) {
  // F32 matrices keep the old contract: one f32 sum in column order.
  DenseMatrix m{.rows = 1, .cols = 3, .w = {1e8f, 1.0f, -1e8f}};
  const float x[3] = {1.0f, 1.0f, 1.0f};
  float y = -1.0f;
  DenseMatMul(m, x, 1, &y);
  EXPECT_EQ(y, 0.0f);  // (1e8 + 1) rounds to 1e8, then - 1e8
}

// The oracle's I2_S file stores its tied embedding as F16: loaded, it stays
// F16 (2 bytes per weight), is held once (the output head is the same
// matrix), and decodes to the file's values.
TEST(DenseMatMulTest, TiedF16EmbeddingIsHeldOnceAsF16) {
  SKIP_WITHOUT_ORACLE();
  auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-i2_s.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto w = ModelWeights::Load(**f);
  ASSERT_TRUE(w.ok()) << w.status();
  const DenseMatrix& e = *(*w)->token_embd;
  EXPECT_EQ(e.format, DenseFormat::kF16);
  EXPECT_EQ(e.memory_bytes(), static_cast<size_t>(290 * 256 * 2));
  EXPECT_TRUE(e.w.empty());
  EXPECT_FALSE((*w)->lm_head.has_value());
  EXPECT_EQ((*w)->head(), &e);
  const gguf::TensorInfo* t = (*f)->FindTensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  std::vector<float> want(static_cast<size_t>(t->n_elements()));
  ASSERT_TRUE(ggml::Dequantize(t->type, (*f)->TensorData(*t), t->n_elements(), want.data()).ok());
  EXPECT_TRUE(SameBits(e.ToFloat(), want));
}

}  // namespace
}  // namespace bitnet::kernels
