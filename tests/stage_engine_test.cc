// StageEngine: pipeline splits equal one stage bit for bit, batching does not
// change results, KV cache bookkeeping, and argument errors.
#include "engine/stage_engine.h"

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_support.h"
#include "tests/tiny_model.h"

namespace bitnet {
namespace {

using kernels::ActQuant;
using testing::MakeTinyModel;
using testing::TinyModelSpec;

std::unique_ptr<StageEngine> MakeEngine(const gguf::File& file, int begin, int end,
                                        EngineOptions opt = {}) {
  auto w = ModelWeights::Load(file, begin, end);
  EXPECT_TRUE(w.ok()) << w.status();
  if (!w.ok()) return nullptr;
  auto e = StageEngine::Create(*w, opt);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(*e) : nullptr;
}

std::vector<BatchRow> Rows(SeqId seq, int32_t start, const std::vector<TokenId>& tokens) {
  std::vector<BatchRow> rows;
  for (size_t i = 0; i < tokens.size(); ++i) {
    rows.push_back({seq, start + static_cast<int32_t>(i), tokens[i], i + 1 == tokens.size()});
  }
  return rows;
}

// Runs rows through a pipeline of stages (the last one produces logits).
std::vector<float> RunPipeline(const std::vector<StageEngine*>& stages,
                               const std::vector<BatchRow>& rows) {
  std::vector<float> hidden;
  for (StageEngine* s : stages) {
    absl::Status st = s->Forward(rows, hidden);
    EXPECT_TRUE(st.ok()) << st;
  }
  std::vector<float> logits;
  absl::Status st = stages.back()->Logits(rows, hidden, logits);
  EXPECT_TRUE(st.ok()) << st;
  return logits;
}

// Prefill + a few decode steps; returns every step's logits, concatenated.
std::vector<float> Generate(const std::vector<StageEngine*>& stages, SeqId seq,
                            const std::vector<TokenId>& prompt, const std::vector<TokenId>& next) {
  std::vector<float> all = RunPipeline(stages, Rows(seq, 0, prompt));
  int32_t pos = static_cast<int32_t>(prompt.size());
  for (TokenId t : next) {
    std::vector<float> l = RunPipeline(stages, Rows(seq, pos++, {t}));
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

const std::vector<TokenId> kPrompt = {1, 5, 9, 2, 33, 47, 0, 12};
const std::vector<TokenId> kNext = {3, 8, 40};

void ExpectSplitsMatch(const gguf::File& file, int n_layer, EngineOptions opt) {
  auto one = MakeEngine(file, 0, -1, opt);
  ASSERT_NE(one, nullptr);
  const std::vector<float> ref = Generate({one.get()}, 1, kPrompt, kNext);
  ASSERT_FALSE(ref.empty());
  const std::vector<std::vector<int>> splits = {{0, 1, n_layer}, {0, n_layer - 1, n_layer},
                                                {0, 1, 2, n_layer}};
  for (const std::vector<int>& cut : splits) {
    std::vector<std::unique_ptr<StageEngine>> owned;
    std::vector<StageEngine*> stages;
    for (size_t i = 0; i + 1 < cut.size(); ++i) {
      owned.push_back(MakeEngine(file, cut[i], cut[i + 1], opt));
      ASSERT_NE(owned.back(), nullptr);
      stages.push_back(owned.back().get());
    }
    // Bit-identical: the stages compute the very same operations.
    EXPECT_EQ(Generate(stages, 1, kPrompt, kNext), ref) << "split of " << cut.size() - 1;
  }
}

TEST(StageEngineTest, PipelineSplitsAreBitIdentical) {
  testing::TinyModel m = MakeTinyModel({});
  for (ActQuant q : {ActQuant::kPerToken, ActQuant::kQ8K, ActQuant::kNone}) {
    EngineOptions opt;
    opt.act_quant = q;
    ExpectSplitsMatch(*m.file, 3, opt);
  }
}

TEST(StageEngineTest, PipelineSplitsAreBitIdenticalOnOracleModel) {
  SKIP_WITHOUT_ORACLE();
  auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EngineOptions opt;
  opt.act_quant = ActQuant::kQ8K;
  ExpectSplitsMatch(**f, 4, opt);
}

// Two sequences prefilled in one interleaved batch, then decoded together,
// give the logits they give when run alone.
TEST(StageEngineTest, BatchedInterleavedEqualsSeparate) {
  testing::TinyModel m = MakeTinyModel({});
  for (KvType kv : {KvType::kF16, KvType::kF32}) {
    EngineOptions opt;
    opt.kv_type = kv;
    const std::vector<TokenId> a = {4, 7, 1, 30, 22};
    const std::vector<TokenId> b = {9, 2, 11};

    auto solo = MakeEngine(*m.file, 0, -1, opt);
    ASSERT_NE(solo, nullptr);
    std::vector<float> la = RunPipeline({solo.get()}, Rows(10, 0, a));
    std::vector<float> lb = RunPipeline({solo.get()}, Rows(20, 0, b));
    std::vector<float> la2 = RunPipeline({solo.get()}, Rows(10, 5, {6}));
    std::vector<float> lb2 = RunPipeline({solo.get()}, Rows(20, 3, {17}));

    auto batched = MakeEngine(*m.file, 0, -1, opt);
    ASSERT_NE(batched, nullptr);
    std::vector<BatchRow> rows;
    for (size_t i = 0; i < a.size(); ++i) {
      rows.push_back({10, static_cast<int32_t>(i), a[i], i + 1 == a.size()});
      if (i < b.size()) rows.push_back({20, static_cast<int32_t>(i), b[i], i + 1 == b.size()});
    }
    std::vector<float> l = RunPipeline({batched.get()}, rows);
    const size_t v = 48;
    ASSERT_EQ(l.size(), 2 * v);
    // Logit rows come in batch order: b's last row precedes a's.
    std::vector<float> got_b(l.begin(), l.begin() + v), got_a(l.begin() + v, l.end());
    std::vector<float> decode = RunPipeline(
        {batched.get()}, {{20, 3, 17, true}, {10, 5, 6, true}});
    ASSERT_EQ(decode.size(), 2 * v);
    std::vector<float> got_b2(decode.begin(), decode.begin() + v),
        got_a2(decode.begin() + v, decode.end());
    for (size_t i = 0; i < v; ++i) {
      EXPECT_NEAR(got_a[i], la[i], 1e-5f);
      EXPECT_NEAR(got_b[i], lb[i], 1e-5f);
      EXPECT_NEAR(got_a2[i], la2[i], 1e-5f);
      EXPECT_NEAR(got_b2[i], lb2[i], 1e-5f);
    }
    EXPECT_EQ(batched->SequenceLength(10), 6);
    EXPECT_EQ(batched->SequenceLength(20), 4);
  }
}

TEST(StageEngineTest, ContextLimit) {
  testing::TinyModel m = MakeTinyModel({});
  EngineOptions opt;
  opt.n_ctx = 8;
  auto e = MakeEngine(*m.file, 0, -1, opt);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->n_ctx(), 8);
  std::vector<float> hidden;
  std::vector<TokenId> nine(9, 3);
  absl::Status st = e->Forward(Rows(1, 0, nine), hidden);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  EXPECT_NE(st.message().find("context"), std::string::npos) << st;
  EXPECT_EQ(e->SequenceLength(1), 0);

  ASSERT_TRUE(e->Forward(Rows(1, 0, std::vector<TokenId>(8, 3)), hidden).ok());
  st = e->Forward(Rows(1, 8, {3}), hidden);
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange) << st;
  EXPECT_EQ(e->SequenceLength(1), 8);

  // The model's own context length is the default.
  auto d = MakeEngine(*m.file, 0, -1);
  EXPECT_EQ(d->n_ctx(), 64);
}

TEST(StageEngineTest, BadTokenLeavesCacheUntouched) {
  testing::TinyModel m = MakeTinyModel({});
  auto e = MakeEngine(*m.file, 0, -1);
  ASSERT_NE(e, nullptr);
  std::vector<float> hidden;
  for (TokenId bad : {-1, 48, 1 << 30}) {
    absl::Status st = e->Forward(Rows(1, 0, {1, 2, bad}), hidden);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find("token id"), std::string::npos) << st;
  }
  EXPECT_EQ(e->SequenceLength(1), 0);
  EXPECT_EQ(e->live_sequences(), 0u);
}

TEST(StageEngineTest, PositionsMustContinueTheSequence) {
  testing::TinyModel m = MakeTinyModel({});
  auto e = MakeEngine(*m.file, 0, -1);
  ASSERT_NE(e, nullptr);
  std::vector<float> hidden;
  // Must start at 0.
  EXPECT_EQ(e->Forward(Rows(1, 1, {1, 2}), hidden).code(), absl::StatusCode::kInvalidArgument);
  // No gaps or repeats inside a batch.
  EXPECT_EQ(e->Forward(std::vector<BatchRow>{{1, 0, 1}, {1, 2, 2}}, hidden).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Forward(std::vector<BatchRow>{{1, 0, 1}, {1, 0, 2}}, hidden).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(e->Forward(Rows(1, 0, {1, 2, 3}), hidden).ok());
  // Must continue at the cached length.
  EXPECT_EQ(e->Forward(Rows(1, 2, {4}), hidden).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Forward(Rows(1, 4, {4}), hidden).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Forward(Rows(1, -1, {4}), hidden).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(e->Forward(Rows(1, 3, {4}), hidden).ok());
  EXPECT_EQ(e->SequenceLength(1), 4);
}

TEST(StageEngineTest, StageArgumentErrors) {
  testing::TinyModel m = MakeTinyModel({});
  auto first = MakeEngine(*m.file, 0, 1);
  auto last = MakeEngine(*m.file, 1, 3);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(last, nullptr);
  std::vector<float> hidden(5, 0.f);  // wrong size for 1 row of 64
  std::vector<float> logits;
  EXPECT_EQ(last->Forward(Rows(1, 0, {1}), hidden).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(first->Logits(Rows(1, 0, {1}), hidden, logits).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(last->Logits(Rows(1, 0, {1}), hidden, logits).code(),
            absl::StatusCode::kInvalidArgument);

  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok());
  EngineOptions bad;
  bad.n_ctx = -1;
  EXPECT_EQ(StageEngine::Create(*w, bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = {};
  bad.n_threads = 0;
  EXPECT_EQ(StageEngine::Create(*w, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StageEngine::Create(nullptr, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StageEngineTest, FreeAndTruncateSequences) {
  testing::TinyModel m = MakeTinyModel({});
  auto e = MakeEngine(*m.file, 0, -1);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->kv_bytes(), 0u);
  std::vector<float> ref = RunPipeline({e.get()}, Rows(1, 0, kPrompt));
  RunPipeline({e.get()}, Rows(2, 0, {5, 6}));
  EXPECT_EQ(e->live_sequences(), 2u);
  const size_t both = e->kv_bytes();
  EXPECT_GT(both, 0u);
  e->FreeSequence(2);
  EXPECT_EQ(e->live_sequences(), 1u);
  EXPECT_LT(e->kv_bytes(), both);
  EXPECT_EQ(e->SequenceLength(2), 0);

  // Truncating and re-feeding the dropped positions gives the same logits.
  ASSERT_TRUE(e->TruncateSequence(1, 5).ok());
  EXPECT_EQ(e->SequenceLength(1), 5);
  std::vector<TokenId> tail(kPrompt.begin() + 5, kPrompt.end());
  EXPECT_EQ(RunPipeline({e.get()}, Rows(1, 5, tail)), ref);
  EXPECT_EQ(e->TruncateSequence(1, 99).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->TruncateSequence(7, 1).code(), absl::StatusCode::kNotFound);

  e->FreeSequence(1);
  EXPECT_EQ(e->live_sequences(), 0u);
  EXPECT_EQ(e->kv_bytes(), 0u);
  // A freed id starts over at position 0.
  EXPECT_EQ(RunPipeline({e.get()}, Rows(1, 0, kPrompt)), ref);
}

TEST(StageEngineTest, KvTypesAgreeAndF16IsHalfTheSize) {
  testing::TinyModel m = MakeTinyModel({});
  EngineOptions f16, f32;
  f16.kv_type = KvType::kF16;
  f32.kv_type = KvType::kF32;
  f16.act_quant = f32.act_quant = ActQuant::kNone;  // no int8 rounding flips
  auto a = MakeEngine(*m.file, 0, -1, f16);
  auto b = MakeEngine(*m.file, 0, -1, f32);
  std::vector<float> la = RunPipeline({a.get()}, Rows(1, 0, kPrompt));
  std::vector<float> lb = RunPipeline({b.get()}, Rows(1, 0, kPrompt));
  ASSERT_EQ(la.size(), lb.size());
  float max_diff = 0.f;
  for (size_t i = 0; i < la.size(); ++i) max_diff = std::max(max_diff, std::fabs(la[i] - lb[i]));
  EXPECT_GT(max_diff, 0.f);  // fp16 rounding is really applied
  EXPECT_LT(max_diff, 1e-2f);
  EXPECT_EQ(2 * a->kv_bytes(), b->kv_bytes());
}

TEST(StageEngineTest, ArchitecturesRun) {
  for (const char* arch : {"bitnet", "bitnet-b1.58", "llama"}) {
    TinyModelSpec s;
    s.arch = arch;
    s.sub_norms = std::string(arch) != "llama";
    s.tied = std::string(arch) != "llama";
    testing::TinyModel m = MakeTinyModel(s);
    auto e = MakeEngine(*m.file, 0, -1);
    ASSERT_NE(e, nullptr) << arch;
    std::vector<float> l = RunPipeline({e.get()}, Rows(1, 0, kPrompt));
    ASSERT_EQ(l.size(), 48u);
    for (float x : l) ASSERT_TRUE(std::isfinite(x)) << arch;
  }
}

}  // namespace
}  // namespace bitnet
