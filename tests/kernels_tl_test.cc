// The table-lookup kernels (kept for the measured comparison with the
// multiply-accumulate family) must also equal the reference bit for bit.
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation_quant.h"
#include "kernels/kernel_variant.h"
#include "kernels/matmul.h"
#include "kernels/ternary_tl.h"

namespace bitnet::kernels {
namespace {

TEST(TableLookup, EqualsReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (const auto& [rows, cols, per_tensor] :
       std::vector<std::tuple<int64_t, int64_t, bool>>{
           {1, 1, true}, {16, 16, false}, {17, 33, true}, {45, 300, false}, {64, 2560, true},
           {70, 1000, false}, {16, 4096, true}}) {
    std::vector<int8_t> codes(rows * cols);
    for (auto& c : codes) c = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
    std::vector<float> scales(per_tensor ? 1 : rows);
    for (auto& s : scales) s = 0.1f + static_cast<float>(rng() % 100) / 50.0f;
    const TernaryMatrix w =
        PackTernary(rows, cols, codes.data(), scales, per_tensor ? rows * cols : cols);
    TlPacked tl;
    ASSERT_TRUE(PackTl(w, &tl));
    std::vector<float> x(cols);
    for (auto& v : x) v = normal(rng);
    x[0] = 30.0f;  // an outlier
    QuantizedActs a;
    QuantizeActsReference(x.data(), 1, cols, ActQuant::kPerToken, &a);
    std::vector<float> want(rows);
    TernaryMatMulReference(w, a, want.data());
    std::vector<int16_t> scratch;
    for (const KernelVariant v :
         {KernelVariant::kScalar, KernelVariant::kAvx2, KernelVariant::kAvx512}) {
      if (!KernelVariantSupported(v)) continue;
      std::vector<float> got(rows, -1.0f);
      ASSERT_TRUE(TlGemv(tl, a, v, got.data(), &scratch));
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(std::memcmp(&got[r], &want[r], 4), 0)
            << KernelVariantName(v) << " " << rows << "x" << cols << " row " << r << ": "
            << got[r] << " vs " << want[r];
      }
    }
  }
}

TEST(TableLookup, RejectsWhatItDoesNotCover) {
  std::vector<int8_t> codes(2 * 512, 1);
  const TernaryMatrix blocks = PackTernary(2, 512, codes.data(), {1, 2, 3, 4}, 256);
  TlPacked tl;
  EXPECT_FALSE(PackTl(blocks, &tl));
  const TernaryMatrix w = PackTernary(2, 512, codes.data(), {1.0f}, 1024);
  ASSERT_TRUE(PackTl(w, &tl));
  std::vector<float> x(2 * 512, 1.0f);
  QuantizedActs a;
  QuantizeActs(x.data(), 2, 512, ActQuant::kPerToken, &a);  // two tokens
  std::vector<float> y(4);
  std::vector<int16_t> scratch;
  EXPECT_FALSE(TlGemv(tl, a, KernelVariant::kScalar, y.data(), &scratch));
}

}  // namespace
}  // namespace bitnet::kernels
