// Attention heads: every kernel variant equals the scalar reference bit for
// bit (fp16 and f32 caches, awkward head sizes and position counts, grouped
// heads, extreme scores); the reference is attention (checked against a
// double-precision softmax); the softmax exponential is accurate.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/attention_kernel.h"
#include "kernels/float16.h"
#include "kernels/kernel_variant.h"
#include "kernels/ops.h"

namespace bitnet::kernels {
namespace {

struct Case {
  int64_t n_pos, head_dim, n_head, n_head_kv;
  float q_scale;  // large values give peaked (or saturated) softmaxes
};

const Case kCases[] = {{1, 64, 4, 2, 1.f},    {3, 16, 2, 1, 1.f},   {4, 128, 4, 1, 1.f},
                       {5, 72, 2, 2, 1.f},    {17, 200, 3, 1, 1.f}, {100, 128, 2, 1, 30.f},
                       {513, 64, 2, 2, 1.f},  {37, 8, 4, 4, 1.f},   {64, 128, 1, 1, 400.f}};

struct Data {
  std::vector<float> q, k, v;
  std::vector<uint16_t> k16, v16;
  int64_t kv_stride = 0;
};

Data MakeData(std::mt19937& rng, const Case& c) {
  std::normal_distribution<float> normal(0.f, 1.f);
  Data d;
  d.kv_stride = c.n_head_kv * c.head_dim + 3;  // rows not packed tightly
  d.q.resize(static_cast<size_t>(c.n_head * c.head_dim));
  for (auto& x : d.q) x = c.q_scale * normal(rng);
  const size_t kv = static_cast<size_t>(c.n_pos * d.kv_stride);
  d.k.resize(kv);
  d.v.resize(kv);
  for (auto& x : d.k) x = normal(rng);
  for (auto& x : d.v) x = normal(rng);
  d.k16.resize(kv);
  d.v16.resize(kv);
  for (size_t i = 0; i < kv; ++i) {
    d.k16[i] = FloatToHalfBits(d.k[i]);
    d.v16[i] = FloatToHalfBits(d.v[i]);
  }
  return d;
}

AttentionShape Shape(const Case& c) {
  AttentionShape s;
  s.n_head = c.n_head;
  s.n_head_kv = c.n_head_kv;
  s.head_dim = c.head_dim;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return s;
}

::testing::AssertionResult SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

class AttentionVariantTest : public ::testing::TestWithParam<KernelVariant> {
 protected:
  void SetUp() override { ASSERT_TRUE(SetKernelVariant(GetParam())); }
  void TearDown() override { ResetKernelVariant(); }
};

TEST_P(AttentionVariantTest, EqualsReference) {
  std::mt19937 rng(5);
  for (const Case& c : kCases) {
    const Data d = MakeData(rng, c);
    const AttentionShape s = Shape(c);
    const size_t out_n = static_cast<size_t>(c.n_head * c.head_dim);
    std::vector<float> scratch(static_cast<size_t>(c.n_pos + c.head_dim));
    std::vector<float> got(out_n, -1.f), want(out_n, -2.f);
    const std::string where = "n_pos " + std::to_string(c.n_pos) + ", head_dim " +
                              std::to_string(c.head_dim);
    AttentionHeadsF16(d.q.data(), d.k16.data(), d.v16.data(), c.n_pos, d.kv_stride, s, 0,
                      c.n_head, scratch.data(), got.data());
    AttentionHeadsF16Reference(d.q.data(), d.k16.data(), d.v16.data(), c.n_pos, d.kv_stride, s,
                               0, c.n_head, scratch.data(), want.data());
    EXPECT_TRUE(SameBits(got, want)) << "f16 cache, " << where;
    AttentionHeadsF32(d.q.data(), d.k.data(), d.v.data(), c.n_pos, d.kv_stride, s, 0, c.n_head,
                      scratch.data(), got.data());
    AttentionHeadsF32Reference(d.q.data(), d.k.data(), d.v.data(), c.n_pos, d.kv_stride, s, 0,
                               c.n_head, scratch.data(), want.data());
    EXPECT_TRUE(SameBits(got, want)) << "f32 cache, " << where;
    // A head range computes those heads only, with the same bits.
    if (c.n_head > 1) {
      std::vector<float> part(out_n, 7.f);
      AttentionHeadsF32(d.q.data(), d.k.data(), d.v.data(), c.n_pos, d.kv_stride, s, 1, 2,
                        scratch.data(), part.data());
      for (int64_t i = 0; i < static_cast<int64_t>(out_n); ++i) {
        const bool in = i >= c.head_dim && i < 2 * c.head_dim;
        ASSERT_EQ(part[i], in ? want[i] : 7.f) << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, AttentionVariantTest,
                         ::testing::ValuesIn(SupportedKernelVariants()),
                         [](const ::testing::TestParamInfo<KernelVariant>& info) {
                           std::string name(KernelVariantName(info.param));
                           for (char& ch : name) ch = ch == '-' ? '_' : ch;
                           return name;
                         });

TEST(AttentionTest, ReferenceIsSoftmaxAttention) {
  std::mt19937 rng(9);
  for (const Case& c : kCases) {
    const Data d = MakeData(rng, c);
    const AttentionShape s = Shape(c);
    std::vector<float> scratch(static_cast<size_t>(c.n_pos + c.head_dim));
    std::vector<float> out(static_cast<size_t>(c.n_head * c.head_dim));
    AttentionHeadsF32Reference(d.q.data(), d.k.data(), d.v.data(), c.n_pos, d.kv_stride, s, 0,
                               c.n_head, scratch.data(), out.data());
    const int64_t group = c.n_head / c.n_head_kv;
    for (int64_t h = 0; h < c.n_head; ++h) {
      const int64_t off = (h / group) * c.head_dim;
      std::vector<double> sc(static_cast<size_t>(c.n_pos));
      double mx = -INFINITY;
      for (int64_t p = 0; p < c.n_pos; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < c.head_dim; ++i) {
          dot += static_cast<double>(d.q[h * c.head_dim + i]) * d.k[p * d.kv_stride + off + i];
        }
        sc[p] = dot * s.scale;
        mx = std::max(mx, sc[p]);
      }
      double z = 0;
      for (auto& x : sc) z += (x = std::exp(x - mx));
      for (int64_t i = 0; i < c.head_dim; ++i) {
        double want = 0, mag = 0;
        for (int64_t p = 0; p < c.n_pos; ++p) {
          want += sc[p] / z * d.v[p * d.kv_stride + off + i];
          mag += std::fabs(sc[p] / z * d.v[p * d.kv_stride + off + i]);
        }
        // Scores up to |q| * |k| * 400 lose relative precision in f32.
        const double tol = (c.q_scale > 10 ? 2e-3 : 2e-5) * (mag + 1e-3);
        EXPECT_NEAR(out[h * c.head_dim + i], want, tol) << "head " << h << " n_pos " << c.n_pos;
      }
    }
  }
}

TEST(AttentionTest, ExpIsAccurate) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(AttnExp(x) - want) / want);
  }
  EXPECT_LT(worst, 3e-7);  // about 2 ulp
  EXPECT_EQ(AttnExp(0.0f), 1.0f);
  EXPECT_EQ(AttnExp(-100.0f), 0.0f);
  EXPECT_EQ(AttnExp(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isinf(AttnExp(100.0f)));
  EXPECT_TRUE(std::isnan(AttnExp(NAN)));
}

}  // namespace
}  // namespace bitnet::kernels
