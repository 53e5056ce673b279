#include "engine/generator.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "tests/test_support.h"
#include "tools/synth_model.h"

namespace bitnet {
namespace {

using testing::TempDir;

// A small synthetic model (2 layers, byte-level vocabulary of 300), written
// once for the whole suite.
class GeneratorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    synth::SynthSpec spec;
    spec.n_vocab = 300;
    spec.n_layer = 2;
    spec.n_ff = 512;
    spec.n_ctx = 128;
    spec.ternary_type = ggml::Type::kF32;
    spec.embd_type = ggml::Type::kF32;
    spec.seed = 99;
    const std::string path = dir_->File("gen.gguf");
    ASSERT_TRUE(synth::WriteSynthModel(spec, path).ok());
    auto file = gguf::File::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = file->release();
    auto w = ModelWeights::Load(*file_);
    ASSERT_TRUE(w.ok()) << w.status();
    weights_ = new std::shared_ptr<const ModelWeights>(*w);
    auto tok = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tok_ = tok->release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete weights_;
    delete file_;
    delete dir_;
  }

  // act_quant none + f32 KV: batched and one-by-one evaluation agree to
  // float rounding, so greedy ids can be compared across them.
  static std::unique_ptr<StageEngine> Engine(int64_t n_ctx = 0) {
    EngineOptions o;
    o.act_quant = kernels::ActQuant::kNone;
    o.kv_type = KvType::kF32;
    o.n_ctx = n_ctx;
    auto e = StageEngine::Create(*weights_, o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  static GenerateOptions Greedy(int32_t n) {
    GenerateOptions g;
    g.sampling = GreedySamplingParams();
    g.max_new_tokens = n;
    return g;
  }

  // A tokenizer like the model's but with `eos` as its end-of-generation id.
  static std::unique_ptr<Tokenizer> TokenizerWithEos(TokenId eos) {
    TokenizerData d;
    d.model = "gpt2";
    d.pre = "gpt-2";
    d.tokens = *file_->GetStringArray("tokenizer.ggml.tokens");
    d.merges = *file_->GetStringArray("tokenizer.ggml.merges");
    d.bos = tok_->bos();
    d.eos = eos;
    auto t = Tokenizer::Create(d);
    EXPECT_TRUE(t.ok()) << t.status();
    return *std::move(t);
  }

  const std::vector<TokenId> prompt_{288, 'T', 'h', 'e', ' ', 'c', 'a', 't'};

  static TempDir* dir_;
  static gguf::File* file_;
  static std::shared_ptr<const ModelWeights>* weights_;
  static Tokenizer* tok_;
};

TempDir* GeneratorTest::dir_ = nullptr;
gguf::File* GeneratorTest::file_ = nullptr;
std::shared_ptr<const ModelWeights>* GeneratorTest::weights_ = nullptr;
Tokenizer* GeneratorTest::tok_ = nullptr;

TEST_F(GeneratorTest, GreedyIdsAreTheArgmaxOfTeacherForcedLogits) {
  auto engine = Engine();
  auto r = Generate(*engine, *tok_, prompt_, Greedy(12));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->ids.size(), 12u);
  EXPECT_EQ(r->finish_reason, FinishReason::kMaxTokens);
  EXPECT_EQ(FinishReasonName(r->finish_reason), "length");

  std::vector<TokenId> all = prompt_;
  all.insert(all.end(), r->ids.begin(), r->ids.end() - 1);
  auto logits = TeacherForcedLogits(*engine, all, /*chunk=*/5);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const int64_t v = engine->config().n_vocab;
  ASSERT_EQ(logits->size(), all.size() * static_cast<size_t>(v));
  for (size_t k = 0; k < r->ids.size(); ++k) {
    const size_t row = prompt_.size() - 1 + k;
    const std::span<const float> l(logits->data() + row * v, static_cast<size_t>(v));
    EXPECT_EQ(ArgMax(l), r->ids[k]) << "step " << k;
  }
  EXPECT_EQ(engine->live_sequences(), 0u);  // the generator frees its sequence
}

TEST_F(GeneratorTest, ChunkedPrefillGivesTheSameTokens) {
  auto engine = Engine();
  auto whole = Generate(*engine, *tok_, prompt_, Greedy(8));
  GenerateOptions chunked = Greedy(8);
  chunked.prefill_chunk = 3;
  auto parts = Generate(*engine, *tok_, prompt_, chunked);
  ASSERT_TRUE(whole.ok() && parts.ok());
  EXPECT_EQ(whole->ids, parts->ids);
  EXPECT_EQ(whole->text, parts->text);
}

TEST_F(GeneratorTest, TeacherForcedLogitsDoNotDependOnTheChunkSize) {
  auto engine = Engine();
  auto a = TeacherForcedLogits(*engine, prompt_, 512);
  auto b = TeacherForcedLogits(*engine, prompt_, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t i = 0; i < a->size(); ++i) ASSERT_NEAR((*a)[i], (*b)[i], 1e-4) << i;
}

TEST_F(GeneratorTest, TimingsCountTokens) {
  auto engine = Engine();
  auto r = Generate(*engine, *tok_, prompt_, Greedy(5));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->timings.prompt_tokens, static_cast<int64_t>(prompt_.size()));
  EXPECT_EQ(r->timings.generated_tokens, 5);
  EXPECT_EQ(r->timings.decode_steps, 4);  // the first token comes from the prefill
  EXPECT_GT(r->timings.prompt_tokens_per_second(), 0);
  EXPECT_GT(r->timings.generation_tokens_per_second(), 0);
}

TEST_F(GeneratorTest, ZeroTokensOnlyPrefills) {
  auto engine = Engine();
  auto r = Generate(*engine, *tok_, prompt_, Greedy(0));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ids.empty());
  EXPECT_EQ(r->finish_reason, FinishReason::kMaxTokens);
}

TEST_F(GeneratorTest, StopsWhenTheContextIsFull) {
  auto engine = Engine(/*n_ctx=*/12);
  auto r = Generate(*engine, *tok_, prompt_, Greedy(-1));
  ASSERT_TRUE(r.ok()) << r.status();
  // Positions 0..11 hold the prompt (8) and 4 generated tokens; a 5th is
  // sampled from the last position's logits.
  EXPECT_EQ(r->ids.size(), 5u);
  EXPECT_EQ(r->finish_reason, FinishReason::kContextFull);
  EXPECT_EQ(FinishReasonName(r->finish_reason), "length");
  // A prompt that fills the context exactly still gives one token.
  auto engine8 = Engine(/*n_ctx=*/8);
  auto full = Generate(*engine8, *tok_, prompt_, Greedy(10));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->ids.size(), 1u);
  EXPECT_EQ(full->finish_reason, FinishReason::kContextFull);
}

TEST_F(GeneratorTest, BadInputsAreClearErrors) {
  auto engine = Engine(/*n_ctx=*/6);
  auto too_long = Generate(*engine, *tok_, prompt_, Greedy(4));
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(too_long.status().message().find("context"), std::string::npos) << too_long.status();
  EXPECT_EQ(TeacherForcedLogits(*engine, prompt_).status().code(), absl::StatusCode::kOutOfRange);

  auto empty = Generate(*engine, *tok_, {}, Greedy(4));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);

  const std::vector<TokenId> bad_id{288, 300};
  auto out_of_vocab = Generate(*engine, *tok_, bad_id, Greedy(4));
  EXPECT_EQ(out_of_vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out_of_vocab.status().message().find("300"), std::string::npos);

  GenerateOptions bad_sampling = Greedy(4);
  bad_sampling.sampling.top_p = 2.f;
  auto bs = Generate(*engine, *tok_, std::vector<TokenId>{288}, bad_sampling);
  EXPECT_EQ(bs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bs.status().message().find("top_p"), std::string::npos);

  auto bad_n = Generate(*engine, *tok_, std::vector<TokenId>{288}, Greedy(-2));
  EXPECT_EQ(bad_n.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->live_sequences(), 0u);
}

TEST_F(GeneratorTest, RefusesAnEngineThatIsNotTheWholeModel) {
  auto part = ModelWeights::Load(*file_, 0, 1);
  ASSERT_TRUE(part.ok()) << part.status();
  auto engine = StageEngine::Create(*part, EngineOptions{});
  ASSERT_TRUE(engine.ok()) << engine.status();
  auto r = Generate(**engine, *tok_, prompt_, Greedy(2));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("whole model"), std::string::npos) << r.status();
}

TEST_F(GeneratorTest, StopsAtEndOfGenerationAndLeavesItsTextOut) {
  auto engine = Engine();
  auto free_run = Generate(*engine, *tok_, prompt_, Greedy(16));
  ASSERT_TRUE(free_run.ok());
  // Declare the first token that is new at its step the end-of-generation
  // token; generation must stop right there, keeping the id but not its text.
  size_t k = 1;
  while (k < free_run->ids.size() &&
         std::find(free_run->ids.begin(), free_run->ids.begin() + k, free_run->ids[k]) !=
             free_run->ids.begin() + k) {
    ++k;
  }
  if (k == free_run->ids.size()) GTEST_SKIP() << "greedy output repeats one token";
  auto tok = TokenizerWithEos(free_run->ids[k]);
  auto r = Generate(*engine, *tok, prompt_, Greedy(16));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kEndOfGeneration);
  EXPECT_EQ(FinishReasonName(r->finish_reason), "stop");
  EXPECT_EQ(r->ids, std::vector<TokenId>(free_run->ids.begin(), free_run->ids.begin() + k + 1));
  StreamingDetokenizer detok(*tok);
  std::string want;
  for (size_t i = 0; i < k; ++i) want += detok.Push(free_run->ids[i]);
  want += detok.Flush();
  EXPECT_EQ(r->text, want);
  // With stop_at_eog off it keeps going.
  GenerateOptions go_on = Greedy(16);
  go_on.stop_at_eog = false;
  auto r2 = Generate(*engine, *tok, prompt_, go_on);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->ids, free_run->ids);
}

TEST_F(GeneratorTest, StopStringEndsTheTextAndIsNotIncluded) {
  auto engine = Engine();
  std::vector<std::string> pieces;
  auto free_run = Generate(*engine, *tok_, prompt_, Greedy(24), [&](TokenId, std::string_view t) {
    pieces.emplace_back(t);
    return true;
  });
  ASSERT_TRUE(free_run.ok());
  // Pick a stop string that spans two tokens' text: the last byte of one
  // piece and the first of the next (ASCII, so it is whole UTF-8).
  std::string stop;
  for (size_t i = 1; i + 1 < pieces.size() && stop.empty(); ++i) {
    const std::string& a = pieces[i];
    const std::string& b = pieces[i + 1];
    if (!a.empty() && !b.empty() && static_cast<unsigned char>(a.back()) < 0x80 &&
        static_cast<unsigned char>(b.front()) < 0x80) {
      stop = std::string(1, a.back()) + b.front();
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no two adjacent ASCII pieces in: " << free_run->text;
  const size_t at = free_run->text.find(stop);
  ASSERT_NE(at, std::string::npos);

  std::string streamed;
  GenerateOptions g = Greedy(24);
  g.stop = {"never appears \xff", stop};
  auto r = Generate(*engine, *tok_, prompt_, g, [&](TokenId, std::string_view t) {
    streamed += t;
    return true;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kStopString);
  EXPECT_EQ(r->text, free_run->text.substr(0, at));
  EXPECT_EQ(streamed, r->text);  // the callback never saw the stop string
  EXPECT_LT(r->ids.size(), free_run->ids.size());
}

TEST_F(GeneratorTest, CallbackCanCancel) {
  auto engine = Engine();
  int calls = 0;
  auto r = Generate(*engine, *tok_, prompt_, Greedy(10), [&](TokenId, std::string_view) {
    return ++calls < 3;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r->ids.size(), 3u);
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
}

TEST_F(GeneratorTest, SeededSamplingIsReproducible) {
  auto engine = Engine();
  GenerateOptions g;
  g.max_new_tokens = 10;
  g.sampling.temperature = 1.5f;
  g.sampling.top_k = 0;
  g.sampling.top_p = 1.f;
  g.sampling.min_p = 0.f;
  g.sampling.seed = 5;
  auto a = Generate(*engine, *tok_, prompt_, g);
  auto b = Generate(*engine, *tok_, prompt_, g);
  g.sampling.seed = 6;
  auto c = Generate(*engine, *tok_, prompt_, g);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->ids, b->ids);
  EXPECT_NE(a->ids, c->ids);
}

TEST(StopStringMatcherTest, HoldsBackPossibleStartsAndCutsAtTheStop) {
  StopStringMatcher m({"END", "xyz"});
  EXPECT_EQ(m.Push("hello E"), "hello ");  // "E" may start "END"
  EXPECT_EQ(m.Push("N"), "");               // "EN" still may
  EXPECT_EQ(m.Push("D and more"), "");      // found: nothing after it
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.Push("later"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringMatcherTest, ReleasesAFalseStart) {
  StopStringMatcher m({"END"});
  EXPECT_EQ(m.Push("a E"), "a ");
  EXPECT_EQ(m.Push("Nx"), "ENx");
  EXPECT_EQ(m.Push("EN"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Flush(), "EN");
}

TEST(StopStringMatcherTest, EarliestStopWinsAndEmptyStopsAreIgnored) {
  StopStringMatcher m({"", "cd", "bcde"});
  EXPECT_EQ(m.Push("abcdef"), "a");  // "bcde" starts before "cd"
  EXPECT_TRUE(m.stopped());
  StopStringMatcher none({});
  EXPECT_EQ(none.Push("abc"), "abc");
  EXPECT_EQ(none.Flush(), "");
}

TEST(StopStringMatcherTest, StopInsideOnePiece) {
  StopStringMatcher m({"\n\n"});
  EXPECT_EQ(m.Push("line\n"), "line");
  EXPECT_EQ(m.Push("\nnext"), "");
  EXPECT_TRUE(m.stopped());
}

}  // namespace
}  // namespace bitnet
