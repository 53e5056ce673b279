// Every kernel variant this CPU supports must equal the scalar reference bit
// for bit: ternary products on awkward shapes (rows and columns not multiples
// of the tile, batch 1..n, every activation mode and scale layout, threads)
// and the activation quantizers (tails, ties, zeros, NaN, infinities).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/activation_quant.h"
#include "kernels/kernel_variant.h"
#include "kernels/matmul.h"
#include "kernels/ternary_matrix.h"
#include "kernels/thread_pool.h"

namespace bitnet::kernels {
namespace {

class VariantTest : public ::testing::TestWithParam<KernelVariant> {
 protected:
  void SetUp() override { ASSERT_TRUE(SetKernelVariant(GetParam())); }
  void TearDown() override { ResetKernelVariant(); }
};

std::string VariantParamName(const ::testing::TestParamInfo<KernelVariant>& info) {
  std::string name(KernelVariantName(info.param));
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

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

std::vector<float> RandomActs(std::mt19937& rng, int64_t n, int64_t cols) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n * cols);
  for (auto& v : x) v = normal(rng);
  // Some outliers, as real activations have.
  for (int k = 0; k < 3 && !x.empty(); ++k) x[rng() % x.size()] *= 40.0f;
  return x;
}

TernaryMatrix RandomMatrix(std::mt19937& rng, int64_t rows, int64_t cols, int64_t block) {
  std::vector<int8_t> codes(rows * cols);
  for (auto& c : codes) c = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  const int64_t nscales = block == rows * cols ? 1 : rows * cols / block;
  std::vector<float> scales(nscales);
  std::uniform_real_distribution<float> u(0.01f, 2.0f);
  for (auto& s : scales) s = u(rng);
  return PackTernary(rows, cols, codes.data(), scales, block);
}

struct Shape {
  int64_t rows, cols, block;  // block == rows*cols: per-tensor scale
};

void CheckProducts(const std::vector<Shape>& shapes, const std::vector<int64_t>& batches,
                   ThreadPool& pool) {
  std::mt19937 rng(1234);
  for (const Shape& sh : shapes) {
    TernaryMatrix w = RandomMatrix(rng, sh.rows, sh.cols, sh.block);
    for (const ActQuant mode : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
      for (const int64_t n : batches) {
        const std::vector<float> x = RandomActs(rng, n, sh.cols);
        QuantizedActs a;
        QuantizeActsReference(x.data(), n, sh.cols, mode, &a);
        std::vector<float> want(n * sh.rows), got(n * sh.rows, -1.0f);
        TernaryMatMulReference(w, a, want.data());
        TernaryMatMul(w, a, got.data(), pool);
        ASSERT_TRUE(SameBits(got, want))
            << sh.rows << "x" << sh.cols << " block " << sh.block << " " << ActQuantName(mode)
            << " batch " << n << " threads " << pool.size();
      }
    }
  }
}

TEST_P(VariantTest, TernaryMatMulEqualsReference) {
  ThreadPool one(1);
  CheckProducts({{1, 1, 1},
                 {5, 3, 15},
                 {16, 16, 16},
                 {17, 33, 33},
                 {31, 300, 300 * 31},
                 {40, 256, 256},
                 {33, 512, 256},
                 {47, 700, 700},
                 {18, 784, 16},
                 {64, 1000, 64000},
                 {3, 2560, 2560}},
                {1, 2, 3, 5, 8, 9, 17}, one);
}

TEST_P(VariantTest, TernaryMatMulEqualsReferenceWithThreads) {
  ThreadPool three(3);
  CheckProducts({{129, 520, 129 * 520}, {200, 256, 256}, {7, 64, 64}}, {1, 4, 11}, three);
}

TEST_P(VariantTest, OddScaleBlocksFallBackCorrectly) {
  // Scale blocks that are not multiples of 16 columns (here 8) cannot be
  // expressed by the packed kernels; the result must still be the reference.
  ThreadPool one(1);
  CheckProducts({{20, 40, 8}}, {1, 3}, one);
}

TEST_P(VariantTest, WorksWithRowMajorCodesReleased) {
  std::mt19937 rng(5);
  TernaryMatrix w = RandomMatrix(rng, 45, 333, 333);
  const TernaryMatrix keep = w;  // shares the packed form
  PrepareForKernels(w, /*keep_codes=*/false);
  EXPECT_TRUE(w.codes.empty());
  const std::vector<float> x = RandomActs(rng, 3, 333);
  QuantizedActs a;
  QuantizeActs(x.data(), 3, 333, ActQuant::kPerToken, &a);
  std::vector<float> want(3 * 45), got(3 * 45), ref_released(3 * 45);
  TernaryMatMulReference(keep, a, want.data());
  TernaryMatMul(w, a, got.data());
  TernaryMatMulReference(w, a, ref_released.data());  // reads codes via the packed form
  EXPECT_TRUE(SameBits(got, want));
  EXPECT_TRUE(SameBits(ref_released, want));
  EXPECT_LT(w.memory_bytes(), keep.memory_bytes());
}

TEST_P(VariantTest, ExtremeActivationsStayExact) {
  // Activations that all quantize to +-127/-128 and codes all +1 or all -1:
  // the largest integer sums the kernels can meet.
  ThreadPool one(1);
  for (const int8_t code : {int8_t{1}, int8_t{-1}}) {
    const int64_t rows = 19, cols = 4100;
    std::vector<int8_t> codes(rows * cols, code);
    TernaryMatrix w = PackTernary(rows, cols, codes.data(), {0.75f}, rows * cols);
    for (const float v : {1.0f, -1.0f}) {
      std::vector<float> x(2 * cols, v);
      for (const ActQuant mode : {ActQuant::kPerToken, ActQuant::kQ8K}) {
        QuantizedActs a;
        QuantizeActsReference(x.data(), 2, cols, mode, &a);
        std::vector<float> want(2 * rows), got(2 * rows);
        TernaryMatMulReference(w, a, want.data());
        TernaryMatMul(w, a, got.data(), one);
        EXPECT_TRUE(SameBits(got, want)) << int{code} << " " << v;
      }
    }
  }
}

void ExpectSameActs(const QuantizedActs& got, const QuantizedActs& want, const std::string& what) {
  EXPECT_EQ(got.q, want.q) << what;
  EXPECT_EQ(got.row_sum, want.row_sum) << what;
  ASSERT_EQ(got.scale.size(), want.scale.size()) << what;
  for (size_t k = 0; k < got.scale.size(); ++k) {
    EXPECT_EQ(std::memcmp(&got.scale[k], &want.scale[k], 4), 0)
        << what << " scale " << k << ": " << got.scale[k] << " vs " << want.scale[k];
  }
}

TEST_P(VariantTest, QuantizeActsEqualsReference) {
  std::mt19937 rng(99);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t cols : {1, 7, 16, 17, 255, 256, 257, 300, 1000, 2560, 6912}) {
    for (const int64_t n : {1, 3}) {
      std::vector<std::vector<float>> inputs;
      inputs.push_back(RandomActs(rng, n, cols));
      inputs.push_back(std::vector<float>(n * cols, 0.0f));
      inputs.push_back(std::vector<float>(n * cols, -3.0f));
      std::vector<float> halves(n * cols);  // exact .5 after scaling by 1
      for (int64_t k = 0; k < n * cols; ++k) halves[k] = static_cast<float>(k % 9) - 4.5f;
      halves[0] = 127.0f;
      inputs.push_back(halves);
      std::vector<float> special = RandomActs(rng, n, cols);
      special[special.size() / 2] = nan;
      if (cols > 20) special[3] = -special[1] * 1e-30f;
      inputs.push_back(special);
      std::vector<float> ties = RandomActs(rng, n, cols);  // equal magnitudes, both signs
      ties[cols / 3] = 50.0f;
      ties[cols / 2] = -50.0f;
      inputs.push_back(ties);
      for (size_t in = 0; in < inputs.size(); ++in) {
        for (const ActQuant mode : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
          QuantizedActs got, want;
          QuantizeActsReference(inputs[in].data(), n, cols, mode, &want);
          QuantizeActs(inputs[in].data(), n, cols, mode, &got);
          ExpectSameActs(got, want,
                         std::string(ActQuantName(mode)) + " cols " + std::to_string(cols) +
                             " input " + std::to_string(in));
        }
      }
    }
  }
}

TEST_P(VariantTest, QuantizeNaNAndInfinityAsReference) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {1.0f, std::nanf(""), -2.0f, 0.5f, inf, 3.0f, -inf, 0.0f};
  for (const ActQuant mode : {ActQuant::kPerToken, ActQuant::kQ8K}) {
    QuantizedActs got, want;
    QuantizeActsReference(x.data(), 1, 4, mode, &want);  // NaN only
    QuantizeActs(x.data(), 1, 4, mode, &got);
    ExpectSameActs(got, want, "nan");
    EXPECT_EQ(want.q[1], -128);
    QuantizeActsReference(x.data(), 1, 8, mode, &want);  // with infinities
    QuantizeActs(x.data(), 1, 8, mode, &got);
    ExpectSameActs(got, want, "inf");
  }
}

INSTANTIATE_TEST_SUITE_P(Supported, VariantTest,
                         ::testing::ValuesIn(SupportedKernelVariants()), VariantParamName);

TEST(KernelVariant, NamesAndSelection) {
  for (const KernelVariant v : SupportedKernelVariants()) {
    EXPECT_EQ(KernelVariantFromName(KernelVariantName(v)), v);
  }
  EXPECT_FALSE(KernelVariantFromName("sse9").has_value());
  EXPECT_TRUE(KernelVariantSupported(KernelVariant::kScalar));
  EXPECT_TRUE(KernelVariantSupported(BestKernelVariant()));
#if defined(__x86_64__)
  EXPECT_FALSE(SetKernelVariant(KernelVariant::kNeon));
#endif
}

TEST(ThreadPool, CoversEveryIndexOnceForAnyGrain) {
  ThreadPool pool(3);
  for (const int64_t n : {1, 2, 7, 100, 1000}) {
    for (const int64_t grain : {1, 3, 64, 5000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
        EXPECT_LE(e - b, grain);
        for (int64_t k = b; k < e; ++k) hits[k].fetch_add(1);
      });
      for (int64_t k = 0; k < n; ++k) ASSERT_EQ(hits[k].load(), 1) << n << " " << grain;
    }
  }
}

TEST(ThreadPool, NestedAndConcurrentCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  auto job = [&] {
    for (int rep = 0; rep < 50; ++rep) {
      pool.ParallelFor(64, 4, [&](int64_t b, int64_t e) {
        total.fetch_add(e - b);
        // A nested call runs on the calling thread instead of deadlocking.
        // (Its size follows the outer range, so the total does not depend on
        // whether this caller got the pool or ran everything inline.)
        pool.ParallelFor(e - b, 1, [&](int64_t nb, int64_t ne) { total.fetch_add(ne - nb); });
      });
    }
  };
  std::thread other(job);  // a second caller: it gets the pool or runs inline
  job();
  other.join();
  EXPECT_EQ(total.load(), 2 * 50 * (64 + 64));
}

TEST(ThreadPool, ManySmallJobs) {
  ThreadPool pool(2);
  int64_t sum = 0;
  std::vector<int64_t> parts(8);
  for (int rep = 0; rep < 2000; ++rep) {
    pool.ParallelFor(8, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) parts[k] = k + rep;
    });
    for (int64_t v : parts) sum += v;
  }
  EXPECT_EQ(sum, 2000 * 28 + 8 * (1999 * 2000 / 2));
}

// A stream hint only makes workers prefetch: one that points anywhere, even
// far past the end of its buffer, changes nothing about which chunks run.
TEST(ThreadPool, StreamHintsOnlyPrefetch) {
  ThreadPool pool(3);
  std::vector<uint8_t> input(4096);
  for (const int64_t stride : {int64_t{0}, int64_t{64}, int64_t{1} << 30}) {
    for (const int64_t n : {1, 3, 10, 100}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelChunks(
          n, std::min<int64_t>(n, 3),
          [&](int64_t b, int64_t e) {
            for (int64_t k = b; k < e; ++k) hits[k].fetch_add(1, std::memory_order_relaxed);
          },
          StreamHint{input.data(), stride});
      for (int64_t k = 0; k < n; ++k) ASSERT_EQ(hits[k].load(), 1) << stride << " " << n;
    }
  }
}

// More threads than cores, jobs of every size from one chunk to many per
// thread, and pauses long enough for the workers to fall asleep: every index
// is still covered exactly once, whichever thread ran or stole it.
TEST(ThreadPool, OversubscribedStealingAndSleepingCoverEveryIndexOnce) {
  ThreadPool pool(5);
  std::vector<std::atomic<int>> hits(97);
  uint64_t rng = 12345;
  for (int rep = 0; rep < 3000; ++rep) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    const int64_t n = 1 + static_cast<int64_t>((rng >> 33) % 97);
    const int64_t chunks = 1 + static_cast<int64_t>((rng >> 45) % 13);
    pool.ParallelChunks(n, chunks, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) hits[k].fetch_add(1, std::memory_order_relaxed);
    });
    for (int64_t k = 0; k < 97; ++k) {
      ASSERT_EQ(hits[k].exchange(0), k < n ? 1 : 0) << "rep " << rep << " n " << n;
    }
    if (rep % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
}

}  // namespace
}  // namespace bitnet::kernels
