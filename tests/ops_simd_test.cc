// The element-wise ops (RMSNorm, SiLU and relu^2 gates) give the scalar
// code's bits with every kernel variant, on lengths that are not multiples
// of the SIMD width, with zeros, negative zeros, large and tiny values.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kernel_variant.h"
#include "kernels/ops.h"

namespace bitnet::kernels {
namespace {

std::vector<float> Values(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  const float specials[] = {0.f, -0.f, 90.f, -90.f, 1e-30f, -1e-30f, 200.f, -200.f};
  for (size_t i = 0; i < v.size() && i < 8; ++i) v[i * 7 % v.size()] = specials[i];
  return v;
}

struct Outputs {
  std::vector<float> norm, norm_nw, silu, relu2;
};

Outputs RunOps(const std::vector<float>& a, const std::vector<float>& b) {
  const int64_t n = static_cast<int64_t>(a.size());
  Outputs o;
  o.norm.resize(a.size());
  o.norm_nw.resize(a.size());
  o.silu.resize(a.size());
  o.relu2.resize(a.size());
  RmsNorm(a.data(), b.data(), n, 1e-5f, o.norm.data());
  RmsNorm(a.data(), nullptr, n, 1e-6f, o.norm_nw.data());
  SiluMul(a.data(), b.data(), n, o.silu.data());
  Relu2Mul(a.data(), b.data(), n, o.relu2.data());
  return o;
}

::testing::AssertionResult SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

class OpsVariantTest : public ::testing::TestWithParam<KernelVariant> {
 protected:
  void TearDown() override { ResetKernelVariant(); }
};

TEST_P(OpsVariantTest, ElementwiseEqualsScalar) {
  std::mt19937 rng(13);
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 100, 2560, 6913}) {
    const std::vector<float> a = Values(rng, n), b = Values(rng, n);
    ASSERT_TRUE(SetKernelVariant(KernelVariant::kScalar));
    const Outputs want = RunOps(a, b);
    ASSERT_TRUE(SetKernelVariant(GetParam()));
    const Outputs got = RunOps(a, b);
    const std::string where = "n = " + std::to_string(n);
    EXPECT_TRUE(SameBits(got.norm, want.norm)) << "RmsNorm, " << where;
    EXPECT_TRUE(SameBits(got.norm_nw, want.norm_nw)) << "RmsNorm without weight, " << where;
    EXPECT_TRUE(SameBits(got.silu, want.silu)) << "SiluMul, " << where;
    EXPECT_TRUE(SameBits(got.relu2, want.relu2)) << "Relu2Mul, " << where;
  }
}

TEST_P(OpsVariantTest, InPlace) {
  ASSERT_TRUE(SetKernelVariant(GetParam()));
  std::mt19937 rng(2);
  const std::vector<float> a = Values(rng, 37), b = Values(rng, 37);
  const Outputs want = RunOps(a, b);
  std::vector<float> x = a;
  RmsNorm(x.data(), b.data(), 37, 1e-5f, x.data());
  EXPECT_TRUE(SameBits(x, want.norm));
  x = a;
  SiluMul(x.data(), b.data(), 37, x.data());
  EXPECT_TRUE(SameBits(x, want.silu));
  x = a;
  Relu2Mul(x.data(), b.data(), 37, x.data());
  EXPECT_TRUE(SameBits(x, want.relu2));
}

INSTANTIATE_TEST_SUITE_P(Variants, OpsVariantTest, ::testing::ValuesIn(SupportedKernelVariants()),
                         [](const ::testing::TestParamInfo<KernelVariant>& info) {
                           std::string name(KernelVariantName(info.param));
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

}  // namespace
}  // namespace bitnet::kernels
