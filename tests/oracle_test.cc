// The acceptance check against llama.cpp / bitnet.cpp (see the oracle
// folder's README): for each oracle model file and prompt, with the settings
// that reproduce that peer,
//  1. teacher-forced logits (prompt in one batch, then the oracle's tokens one
//     at a time) stay within the README's limits of the oracle's logits;
//  2. free-running greedy ids equal the oracle's: all of them for f32; for
//     the quantized files every step before the first near-tie, i.e. the
//     first step whose oracle top1-top2 logit gap is below twice the logit
//     error we measured, where a legitimate rounding difference may flip
//     the choice;
//  3. the default per-token activation mode is reported against each oracle.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/stage_engine.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using kernels::ActQuant;
using nlohmann::json;

constexpr TokenId kEos = 289;

struct OracleCase {
  const char* type;
  ActQuant act;   // the peer's activation numerics
  float limit;    // teacher-forced max |logit diff| (the README's limits)
};

// f32 is held to 2e-4, tighter than the README's 1e-3: we measure ~4e-5
// (llama.cpp against itself: 3e-5), and the smallest real bug moves 0.07.
// The quantized files keep the README's limits: there the difference is
// dominated by int8 rounding flips (llama.cpp moves 0.017-0.020 by itself).
const OracleCase kCases[] = {
    {"f32", ActQuant::kNone, 2e-4f},
    {"tq2_0", ActQuant::kQ8K, 0.05f},
    {"tq1_0", ActQuant::kQ8K, 0.05f},
    {"i2_s", ActQuant::kPerToken, 0.06f},
};

const json& Expected() {
  static const json* j = [] {
    std::ifstream in(testing::OracleDir() + "/expected.json");
    return new json(json::parse(in));
  }();
  return *j;
}

std::vector<float> ReadLogits(const std::string& path) {
  std::vector<uint8_t> bytes = testing::ReadFileBytes(path);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

TokenId Argmax(const std::vector<float>& v) {
  return static_cast<TokenId>(std::max_element(v.begin(), v.end()) - v.begin());
}

class Runner {
 public:
  Runner(std::shared_ptr<const ModelWeights> w, ActQuant act) {
    EngineOptions opt;
    opt.act_quant = act;
    opt.kv_type = KvType::kF16;  // llama.cpp's default, used for every oracle run
    auto e = StageEngine::Create(std::move(w), opt);
    EXPECT_TRUE(e.ok()) << e.status();
    if (e.ok()) engine_ = std::move(*e);
  }
  bool ok() const { return engine_ != nullptr; }

  // Feeds tokens (one batch) to `seq` and returns the last position's logits.
  std::vector<float> Feed(SeqId seq, const std::vector<TokenId>& tokens) {
    std::vector<BatchRow> rows;
    const int32_t start = static_cast<int32_t>(engine_->SequenceLength(seq));
    for (size_t i = 0; i < tokens.size(); ++i) {
      rows.push_back({seq, start + static_cast<int32_t>(i), tokens[i], i + 1 == tokens.size()});
    }
    std::vector<float> hidden, logits;
    absl::Status st = engine_->Forward(rows, hidden);
    EXPECT_TRUE(st.ok()) << st;
    st = engine_->Logits(rows, hidden, logits);
    EXPECT_TRUE(st.ok()) << st;
    return logits;
  }

  // Teacher forcing: max |ours - oracle| over all rows of the logits file.
  float TeacherForced(SeqId seq, const std::vector<TokenId>& prompt,
                      const std::vector<TokenId>& generated, const std::vector<float>& oracle,
                      int64_t n_vocab) {
    float max_diff = 0.f;
    const size_t steps = oracle.size() / static_cast<size_t>(n_vocab);
    for (size_t k = 0; k < steps; ++k) {
      std::vector<float> ours = k == 0 ? Feed(seq, prompt) : Feed(seq, {generated[k - 1]});
      if (ours.size() != static_cast<size_t>(n_vocab)) {
        ADD_FAILURE() << "no logits at step " << k;
        return INFINITY;
      }
      for (int64_t i = 0; i < n_vocab; ++i) {
        max_diff = std::max(max_diff, std::fabs(ours[i] - oracle[k * n_vocab + i]));
      }
    }
    engine_->FreeSequence(seq);
    return max_diff;
  }

  // Greedy decoding of up to n tokens (stops after EOS).
  std::vector<TokenId> Greedy(SeqId seq, const std::vector<TokenId>& prompt, size_t n) {
    std::vector<TokenId> out;
    std::vector<float> logits = Feed(seq, prompt);
    while (out.size() < n && !logits.empty()) {
      out.push_back(Argmax(logits));
      if (out.back() == kEos || out.size() == n) break;
      logits = Feed(seq, {out.back()});
    }
    engine_->FreeSequence(seq);
    return out;
  }

 private:
  std::unique_ptr<StageEngine> engine_;
};

class OracleTest : public ::testing::TestWithParam<OracleCase> {};

TEST_P(OracleTest, MatchesPeer) {
  SKIP_WITHOUT_ORACLE();
  const OracleCase& c = GetParam();
  const json& file_info = Expected()["files"][c.type];
  auto file = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-" + c.type + ".gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto weights = ModelWeights::Load(**file);
  ASSERT_TRUE(weights.ok()) << weights.status();
  const int64_t n_vocab = (*weights)->config.n_vocab;
  Runner peer(*weights, c.act), per_token(*weights, ActQuant::kPerToken);
  ASSERT_TRUE(peer.ok() && per_token.ok());

  std::printf("\n%-6s %-3s | %-24s | %-22s | %s\n", "file", "p", "teacher-forced max|diff|",
              "greedy ids (checked)", "per-token max|diff|");
  for (const auto& [prompt_name, run] : file_info["runs"].items()) {
    const std::vector<TokenId> prompt = run["prompt_ids"].get<std::vector<TokenId>>();
    const std::vector<TokenId> gen = run["generated_ids"].get<std::vector<TokenId>>();
    const std::vector<float> oracle =
        ReadLogits(testing::OracleDir() + "/logits/tiny-gqa-" + c.type + "-" + prompt_name + ".bin");
    ASSERT_EQ(oracle.size(), gen.size() * static_cast<size_t>(n_vocab)) << prompt_name;

    // 1. Teacher-forced logits.
    const float diff = peer.TeacherForced(1, prompt, gen, oracle, n_vocab);
    EXPECT_LE(diff, c.limit) << c.type << " " << prompt_name;

    // 2. Free-running greedy ids, up to the first near-tie for quantized files.
    size_t checked = gen.size();
    if (std::string(c.type) != "f32") {
      const json& steps = run["steps"];
      for (size_t k = 0; k < steps.size() && k < checked; ++k) {
        if (steps[k]["top1_top2_logit_gap"].get<double>() < 2.0 * diff) checked = k;
      }
    }
    const std::vector<TokenId> ours = peer.Greedy(2, prompt, gen.size());
    size_t same = 0;
    while (same < ours.size() && same < gen.size() && ours[same] == gen[same]) ++same;
    EXPECT_GE(same, checked) << c.type << " " << prompt_name << ": greedy ids differ at step "
                             << same << " before the first near-tie at step " << checked;

    // 3. The default per-token mode, reported.
    const float pt = per_token.TeacherForced(3, prompt, gen, oracle, n_vocab);
    EXPECT_LT(pt, 0.5f) << c.type << " " << prompt_name;

    char ids[64];
    std::snprintf(ids, sizeof ids, "%zu/%zu equal (%zu)", same, gen.size(), checked);
    std::printf("%-6s %-3s | %10.3g (limit %-8.3g) | %-22s | %.3g\n", c.type,
                prompt_name.c_str(), diff, c.limit, ids, pt);
  }
  std::fflush(stdout);
}

INSTANTIATE_TEST_SUITE_P(Files, OracleTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<OracleCase>& info) {
                           return std::string(info.param.type);
                         });

}  // namespace
}  // namespace bitnet
