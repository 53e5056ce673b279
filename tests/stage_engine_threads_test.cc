// StageEngine on several threads: the logits of a prefill and of decode steps
// are bit-identical for 1, 2 and 3 threads (products, attention, norms and
// element-wise passes all run on the engine's pool), for every KV type and
// activation mode, and for batches of interleaved sequences. And a decode
// step allocates no memory once the engine's buffers have grown.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/stage_engine.h"
#include "gtest/gtest.h"
#include "tests/test_support.h"
#include "tests/tiny_model.h"

// Counts heap allocations while enabled (this test binary's operator new;
// malloc/free underneath on both sides, which GCC cannot see through).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace bitnet {
namespace {

using kernels::ActQuant;

// Prefill of `prompt` (all rows want logits) on sequences 1 and 2
// interleaved, then `steps` decode steps of both; every logit, concatenated.
std::vector<float> Run(const std::shared_ptr<const ModelWeights>& w, EngineOptions opt,
                       const std::vector<TokenId>& prompt, int steps) {
  auto e = StageEngine::Create(w, opt);
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return {};
  std::vector<BatchRow> rows;
  for (size_t i = 0; i < prompt.size(); ++i) {
    rows.push_back({1, static_cast<int32_t>(i), prompt[i], true});
    if (i % 3 == 0) rows.push_back({2, static_cast<int32_t>(i / 3), prompt[i], true});
  }
  std::vector<float> hidden, logits, all;
  EXPECT_TRUE((*e)->Forward(rows, hidden).ok());
  EXPECT_TRUE((*e)->Logits(rows, hidden, logits).ok());
  all = logits;
  const int32_t len1 = static_cast<int32_t>(prompt.size());
  const int32_t len2 = static_cast<int32_t>((prompt.size() + 2) / 3);
  for (int k = 0; k < steps; ++k) {
    const TokenId t = static_cast<TokenId>((7 * k + 3) % 200);
    rows = {{1, len1 + k, t, true}, {2, len2 + k, t, true}};
    EXPECT_TRUE((*e)->Forward(rows, hidden).ok());
    EXPECT_TRUE((*e)->Logits(rows, hidden, logits).ok());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

::testing::AssertionResult SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.empty() || a.size() != b.size()) {
    return ::testing::AssertionFailure() << "sizes " << a.size() << " vs " << b.size();
  }
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::memcmp(&a[k], &b[k], sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "logit " << k << ": " << a[k] << " vs " << b[k];
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectThreadCountsAgree(const std::shared_ptr<const ModelWeights>& w, EngineOptions opt,
                             const std::vector<TokenId>& prompt, const std::string& what) {
  opt.n_threads = 1;
  const std::vector<float> one = Run(w, opt, prompt, 3);
  for (int threads : {2, 3}) {
    opt.n_threads = threads;
    EXPECT_TRUE(SameBits(Run(w, opt, prompt, 3), one)) << what << ", " << threads << " threads";
  }
}

std::vector<TokenId> Prompt(size_t n, int vocab) {
  std::vector<TokenId> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<TokenId>((31 * i + 5) % vocab);
  return p;
}

TEST(StageEngineThreadsTest, TinyModelAllModes) {
  testing::TinyModel m = testing::MakeTinyModel({});
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  for (ActQuant q : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
    for (KvType kv : {KvType::kF16, KvType::kF32}) {
      EngineOptions opt;
      opt.act_quant = q;
      opt.kv_type = kv;
      ExpectThreadCountsAgree(*w, opt, Prompt(20, 48),
                              std::string(kernels::ActQuantName(q)) + "/" +
                                  std::string(KvTypeName(kv)));
    }
  }
}

// Large enough batches (160 + 54 rows of 256..768 values) that the norms and
// element-wise passes are split over threads too; compact Q6_K and F16
// output heads.
TEST(StageEngineThreadsTest, OracleModelsLongPrompt) {
  SKIP_WITHOUT_ORACLE();
  for (const char* type : {"tq2_0", "i2_s"}) {
    auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-" + type + ".gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    auto w = ModelWeights::Load(**f);
    ASSERT_TRUE(w.ok()) << w.status();
    EngineOptions opt;
    opt.act_quant = std::string(type) == "i2_s" ? ActQuant::kPerToken : ActQuant::kQ8K;
    ExpectThreadCountsAgree(*w, opt, Prompt(160, 290), type);
  }
}

TEST(StageEngineThreadsTest, ThreadCountIsChecked) {
  testing::TinyModel m = testing::MakeTinyModel({});
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  for (int bad : {0, -3, 100000}) {
    EngineOptions opt;
    opt.n_threads = bad;
    auto e = StageEngine::Create(*w, opt);
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(e.status().message().find("n_threads"), std::string::npos) << e.status();
  }
}

// After a prefill and a few steps (buffers grown, KV capacity 32 reached),
// further decode steps of two sequences allocate nothing.
TEST(StageEngineThreadsTest, DecodeStepsDoNotAllocate) {
  testing::TinyModel m = testing::MakeTinyModel({});
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  for (KvType kv : {KvType::kF16, KvType::kF32}) {
    EngineOptions opt;
    opt.kv_type = kv;
    auto e = StageEngine::Create(*w, opt);
    ASSERT_TRUE(e.ok()) << e.status();
    std::vector<BatchRow> rows;
    for (int32_t i = 0; i < 20; ++i) {
      rows.push_back({1, i, static_cast<TokenId>(i % 40), false});
      rows.push_back({2, i, static_cast<TokenId>((i + 3) % 40), i == 19});
    }
    std::vector<float> hidden, logits;
    g_allocations.store(0);
    g_counting.store(true);  // the first batch does allocate: the counter works
    ASSERT_TRUE((*e)->Forward(rows, hidden).ok());
    g_counting.store(false);
    EXPECT_GT(g_allocations.load(), 0);
    ASSERT_TRUE((*e)->Logits(rows, hidden, logits).ok());
    rows.resize(2);
    int64_t during = 0;
    for (int32_t pos = 20; pos < 28; ++pos) {
      rows[0] = {1, pos, 5, true};
      rows[1] = {2, pos, 7, true};
      if (pos == 22) {
        g_allocations.store(0);
        g_counting.store(true);
      }
      const absl::Status f = (*e)->Forward(rows, hidden);
      const absl::Status l = (*e)->Logits(rows, hidden, logits);
      if (pos >= 22) during = g_allocations.load();
      g_counting.store(false);
      ASSERT_TRUE(f.ok() && l.ok()) << f << " " << l;
      if (pos >= 22) g_counting.store(true);
    }
    g_counting.store(false);
    EXPECT_EQ(during, 0) << KvTypeName(kv) << ": allocations in 6 decode steps";
  }
}

}  // namespace
}  // namespace bitnet
