// The quality harness's guard: perplexity of the bundled trained model on
// its held-out text, through pipelines of 2 and 4 stages with the serving
// default (int8 wire, per-token int8 activations, f16 KV cache), must stay
// within 1% of the single-node reference; fp32 on the wire must reproduce the
// reference exactly. The pipelines are serving::LocalPipeline, the cluster's
// stage engines and wire encoding in one process (serving_int8_test checks
// that a real cluster gives the same tokens). docs/PERFORMANCE.md has the
// full table (bitnet-quality).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/perplexity.h"
#include "engine/stage_engine.h"
#include "gtest/gtest.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "serving/activation_codec.h"
#include "serving/local_pipeline.h"
#include "tests/test_support.h"
#include "tools/cli_args.h"

namespace bitnet {
namespace {

constexpr int64_t kWindow = 256;  // the model's training context
constexpr double kMaxDrift = 0.01;

class QualityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string root = testing::SourceDir();
    auto file = gguf::File::Open(root + "/models/austen-4m.gguf");
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = *std::move(file);
    auto tok = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
    auto text = cli::ReadTextFile(root + "/models/austen-heldout.txt", "held-out text");
    ASSERT_TRUE(text.ok()) << text.status();
    tokens_ = tokenizer_->Encode(*text, /*add_bos=*/true);
    ASSERT_GT(tokens_.size(), 4 * static_cast<size_t>(kWindow));
    options_.n_threads = 2;  // defaults otherwise: per-token activations, f16 KV

    auto weights = ModelWeights::Load(*file_);
    ASSERT_TRUE(weights.ok()) << weights.status();
    auto engine = StageEngine::Create(*weights, options_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    auto ref = ComputePerplexity(**engine, *tokenizer_, tokens_, kWindow);
    ASSERT_TRUE(ref.ok()) << ref.status();
    reference_ = ref->perplexity;
  }

  double PipelinePerplexity(int stages, const char* wire) {
    auto bounds = serving::EvenStageBounds(4, stages);
    EXPECT_TRUE(bounds.ok()) << bounds.status();
    auto format = serving::ParseWireFormat(wire);
    EXPECT_TRUE(format.ok()) << format.status();
    auto pipe = serving::LocalPipeline::Create(*file_, *bounds, options_, *format);
    EXPECT_TRUE(pipe.ok()) << pipe.status();
    if (!pipe.ok()) return NAN;
    auto r = serving::PipelinePerplexity(**pipe, *tokenizer_, tokens_, kWindow);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->perplexity : NAN;
  }

  std::unique_ptr<gguf::File> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<TokenId> tokens_;
  EngineOptions options_;
  double reference_ = 0;
};

TEST_F(QualityTest, DefaultWireStaysWithinOnePercentOfTheSingleNode) {
  // The reference itself is the model's known quality (docs/TRAINING.md).
  EXPECT_NEAR(reference_, 81.71, 0.01 * 81.71);
  for (int stages : {2, 4}) {
    const double ppl = PipelinePerplexity(stages, "int8");
    EXPECT_LE(std::fabs(ppl - reference_) / reference_, kMaxDrift)
        << stages << " stages, int8 wire: perplexity " << ppl << " vs single node " << reference_;
  }
}

TEST_F(QualityTest, Fp32WireReproducesTheSingleNode) {
  EXPECT_NEAR(PipelinePerplexity(4, "fp32"), reference_, 1e-9 * reference_);
}

TEST(EvenStageBounds, SplitsEvenlyAndChecksTheCount) {
  EXPECT_EQ(*serving::EvenStageBounds(4, 2), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(*serving::EvenStageBounds(30, 4), (std::vector<int>{0, 7, 15, 22, 30}));
  EXPECT_FALSE(serving::EvenStageBounds(4, 5).ok());
  EXPECT_FALSE(serving::EvenStageBounds(4, 0).ok());
}

}  // namespace
}  // namespace bitnet
