// The command-line tools, run as real processes: argument errors, context
// errors, JSON output, and the oracle's logits through --logits-out.
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"
#include "tools/cli_args.h"
#include "tools/synth_model.h"

namespace bitnet {
namespace {

using testing::BinDir;
using testing::OracleDir;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::TempDir;

// One small synthetic model for the whole file.
class ToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    synth::SynthSpec spec;
    spec.n_vocab = 300;
    spec.n_layer = 2;
    spec.n_ff = 512;
    spec.n_ctx = 64;
    spec.ternary_type = ggml::Type::kTQ2_0;
    ASSERT_TRUE(synth::WriteSynthModel(spec, dir_->File("m.gguf")).ok());
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string Run(const std::string& args) {
    return BinDir() + "/bitnet-run --model " + dir_->File("m.gguf") + " --threads 1 " + args;
  }
  // stdout only (stderr dropped), for JSON.
  static testing::CommandResult Stdout(const std::string& command) {
    return RunCommand("{ " + command + " 2>/dev/null; }");
  }

  static TempDir* dir_;
};
TempDir* ToolsTest::dir_ = nullptr;

void ExpectUsageError(const std::string& command, const std::string& must_mention) {
  const auto r = RunCommand(command);
  EXPECT_NE(r.exit_code, 0) << command;
  EXPECT_LT(r.exit_code, 128) << "crashed: " << command << "\n" << r.output;
  EXPECT_NE(r.output.find(must_mention), std::string::npos)
      << command << "\nshould mention " << must_mention << ":\n" << r.output;
}

TEST_F(ToolsTest, HelpListsTheFlags) {
  for (const char* tool : {"bitnet-run", "bitnet-perplexity", "bitnet-synth"}) {
    const auto r = RunCommand(BinDir() + "/" + tool + " --help");
    EXPECT_EQ(r.exit_code, 0) << tool;
    EXPECT_NE(r.output.find("usage:"), std::string::npos) << r.output;
  }
  const auto r = RunCommand(BinDir() + "/bitnet-run --help");
  for (const char* flag : {"--model", "--prompt", "--prompt-ids", "--n-predict", "--temp", "--top-k",
                           "--top-p", "--min-p", "--repeat-penalty", "--repeat-last-n", "--seed",
                           "--threads", "--act-quant", "--kv-type", "--ctx-size", "--stop",
                           "--json", "--logits-out"}) {
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
  }
}

TEST_F(ToolsTest, BadArgumentsNameTheFlag) {
  const std::string run = BinDir() + "/bitnet-run";
  ExpectUsageError(run + " --prompt hi", "--model");
  ExpectUsageError(run + " --model", "--model");
  ExpectUsageError(Run(""), "--prompt");
  ExpectUsageError(Run("--prompt hi --prompt-ids 1,2"), "--prompt-ids");
  ExpectUsageError(Run("--prompt-ids 1,x,3"), "--prompt-ids");
  ExpectUsageError(Run("--prompt-ids ''"), "--prompt-ids");
  ExpectUsageError(Run("--prompt-ids 1,99999"), "--prompt-ids");
  ExpectUsageError(Run("--prompt hi --temp abc"), "--temp");
  ExpectUsageError(Run("--prompt hi --temp nan"), "--temp");
  ExpectUsageError(Run("--prompt hi --top-p 1.5"), "--top-p");
  ExpectUsageError(Run("--prompt hi --min-p -1"), "--min-p");
  ExpectUsageError(Run("--prompt hi --top-k -3"), "--top-k");
  ExpectUsageError(Run("--prompt hi --repeat-penalty 0"), "--repeat-penalty");
  ExpectUsageError(Run("--prompt hi --repeat-last-n -5"), "--repeat-last-n");
  ExpectUsageError(Run("--prompt hi -n -2"), "--n-predict");
  ExpectUsageError(Run("--prompt hi -n 1e3"), "--n-predict");
  ExpectUsageError(Run("--prompt hi --seed -1"), "--seed");
  ExpectUsageError(Run("--prompt hi --threads 0.5"), "--threads");
  ExpectUsageError(Run("--prompt hi --act-quant int4"), "--act-quant");
  ExpectUsageError(Run("--prompt hi --kv-type q8"), "--kv-type");
  ExpectUsageError(Run("--prompt hi --ctx-size -1"), "--ctx-size");
  ExpectUsageError(Run("--prompt hi --json=yes"), "--json");
  ExpectUsageError(Run("--prompt hi --frobnicate"), "--frobnicate");
  ExpectUsageError(Run("--prompt hi stray"), "stray");
}

TEST_F(ToolsTest, MissingOrCorruptModelIsAClearError) {
  TempDir dir;
  ExpectUsageError(BinDir() + "/bitnet-run --model " + dir.File("nope.gguf") + " --prompt hi",
                   "nope.gguf");
  std::vector<uint8_t> bytes = ReadFileBytes(dir_->File("m.gguf"));
  bytes.resize(bytes.size() / 2);
  testing::WriteFileBytes(dir.File("half.gguf"), bytes);
  ExpectUsageError(BinDir() + "/bitnet-run --model " + dir.File("half.gguf") + " --prompt hi",
                   "half.gguf");
}

TEST_F(ToolsTest, PromptLongerThanTheContextIsAClearError) {
  ExpectUsageError(Run("--prompt 'a long prompt that does not fit' --ctx-size 4"), "context");
  ExpectUsageError(Run("--prompt-ids 1,2,3,4,5 --ctx-size 4 --logits-out /dev/null"), "context");
  // The model's own context (64) applies when --ctx-size is not given.
  std::string ids = "1";
  for (int i = 0; i < 70; ++i) ids += ",2";
  ExpectUsageError(Run("--prompt-ids " + ids), "context");
}

TEST_F(ToolsTest, JsonOutputParses) {
  const auto r = Stdout(Run("--prompt 'The cat' -n 6 --temp 0.7 --seed 3 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.contains("prompt_ids"));
  ASSERT_GT(j["prompt_ids"].size(), 2u);
  EXPECT_EQ(j["prompt_ids"][0], 288);  // BOS
  EXPECT_EQ(j["generated_ids"].size(), 6u);
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["timings"]["prompt_tokens"], j["prompt_ids"].size());
  EXPECT_EQ(j["timings"]["generated_tokens"], 6);
  EXPECT_GT(j["timings"]["prompt_tokens_per_second"].get<double>(), 0);
  EXPECT_GT(j["timings"]["generation_tokens_per_second"].get<double>(), 0);
  // Same seed, same ids.
  const auto again = Stdout(Run("--prompt 'The cat' -n 6 --temp 0.7 --seed 3 --json"));
  EXPECT_EQ(nlohmann::json::parse(again.output)["generated_ids"], j["generated_ids"]);
}

TEST_F(ToolsTest, StreamsTextAndReportsSpeeds) {
  const auto r = RunCommand(Run("--prompt-ids 288,84 -n 5 --temp 0 --kv-type f32 --act-quant q8k"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;
  // The streamed text equals the JSON text of the same run.
  const auto text = Stdout(Run("--prompt-ids 288,84 -n 5 --temp 0 --kv-type f32 --act-quant q8k"));
  const auto json =
      Stdout(Run("--prompt-ids 288,84 -n 5 --temp 0 --kv-type f32 --act-quant q8k --json"));
  EXPECT_EQ(text.output, nlohmann::json::parse(json.output)["text"].get<std::string>() + "\n");
}

TEST_F(ToolsTest, LogitsOutWritesOneRowPerPromptPosition) {
  TempDir dir;
  const std::string out = dir.File("l.bin");
  const auto r = RunCommand(Run("--prompt-ids 288,84,104,101 -n 0 --logits-out " + out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ReadFileBytes(out).size(), 4u * 300 * sizeof(float));
  ExpectUsageError(Run("--prompt-ids 288 -n 0 --logits-out " + dir.File("no/such/dir/l.bin")),
                   "--logits-out");
}

TEST_F(ToolsTest, LogitsOutMatchesTheOracle) {
  SKIP_WITHOUT_ORACLE();
  std::ifstream in(OracleDir() + "/expected.json");
  const auto expected = nlohmann::json::parse(in);
  std::string ids;
  for (const auto& p : expected["prompts"]) {
    if (p["name"] != "p1") continue;
    for (const auto& id : p["ids"]) {
      if (!ids.empty()) ids += ',';
      ids += std::to_string(id.get<int>());
    }
  }
  ASSERT_FALSE(ids.empty());
  TempDir dir;
  const std::string out = dir.File("l.bin");
  const auto r = RunCommand(BinDir() + "/bitnet-run --model " + OracleDir() +
                            "/tiny-gqa-f32.gguf --act-quant none --threads 1 -n 0 --prompt-ids " +
                            ids + " --logits-out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto got_bytes = ReadFileBytes(out);
  const auto want_bytes = ReadFileBytes(OracleDir() + "/logits/tiny-gqa-f32-p1-last-prompt-pos.bin");
  const size_t n_vocab = 290;
  ASSERT_EQ(want_bytes.size(), n_vocab * 4);
  ASSERT_EQ(got_bytes.size() % (n_vocab * 4), 0u);
  ASSERT_EQ(got_bytes.size() / (n_vocab * 4), std::count(ids.begin(), ids.end(), ',') + 1u);
  std::vector<float> got(n_vocab), want(n_vocab);
  std::memcpy(got.data(), got_bytes.data() + got_bytes.size() - n_vocab * 4, n_vocab * 4);
  std::memcpy(want.data(), want_bytes.data(), n_vocab * 4);
  float max_diff = 0;
  for (size_t i = 0; i < n_vocab; ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  EXPECT_LE(max_diff, 1e-3f);

  // And the free-running greedy ids are the oracle's.
  const auto j = Stdout(BinDir() + "/bitnet-run --model " + OracleDir() +
                        "/tiny-gqa-f32.gguf --act-quant none --threads 1 -n 32 --temp 0 --json "
                        "--prompt-ids " + ids);
  ASSERT_EQ(j.exit_code, 0) << j.output;
  EXPECT_EQ(nlohmann::json::parse(j.output)["generated_ids"],
            expected["files"]["f32"]["runs"]["p1"]["generated_ids"]);
}

TEST_F(ToolsTest, StopStringIsHonoured) {
  const auto free_run = Stdout(Run("--prompt-ids 288,84 -n 16 --temp 0 --json"));
  ASSERT_EQ(free_run.exit_code, 0);
  const std::string text = nlohmann::json::parse(free_run.output)["text"];
  // Two ASCII letters or digits after the start of the text (they may come
  // from two tokens); shell-safe.
  std::string stop;
  for (size_t i = 1; i + 1 < text.size() && stop.empty(); ++i) {
    if (std::isalnum(static_cast<unsigned char>(text[i])) &&
        std::isalnum(static_cast<unsigned char>(text[i + 1]))) {
      stop = text.substr(i, 2);
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no two ASCII alphanumerics in the text: " << text;
  const auto r = Stdout(Run("--prompt-ids 288,84 -n 16 --temp 0 --json --stop '" + stop + "'"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["text"], text.substr(0, text.find(stop)));
  EXPECT_EQ(j["finish_reason"], "stop");
}

TEST_F(ToolsTest, PerplexityJsonAndErrors) {
  TempDir dir;
  {
    std::ofstream f(dir.File("t.txt"));
    for (int i = 0; i < 8; ++i) f << "The quick brown fox jumps over the lazy dog. ";
  }
  const std::string ppl = BinDir() + "/bitnet-perplexity --model " + dir_->File("m.gguf") +
                          " --threads 1 ";
  const auto r = Stdout(ppl + "--file " + dir.File("t.txt") + " --ctx-size 32 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  const double p = j["perplexity"];
  EXPECT_TRUE(std::isfinite(p));
  EXPECT_GT(p, 1.0);
  EXPECT_LT(p, 300.0 * 50);  // random weights: near the vocabulary size, not astronomically off
  EXPECT_GT(j["tokens_scored"].get<int>(), 0);
  EXPECT_EQ(j["window"], 32);
  EXPECT_GT(j["windows"].get<int>(), 1);

  const auto text = RunCommand(ppl + "--file " + dir.File("t.txt") + " --ctx-size 32");
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("perplexity"), std::string::npos);
  EXPECT_NE(text.output.find("tokens/s"), std::string::npos);

  ExpectUsageError(ppl + "--ctx-size 32", "--file");
  ExpectUsageError(ppl + "--file " + dir.File("missing.txt"), "missing.txt");
  ExpectUsageError(ppl + "--file " + dir.File("t.txt") + " --ctx-size x", "--ctx-size");
  {
    std::ofstream f(dir.File("empty.txt"));
  }
  ExpectUsageError(ppl + "--file " + dir.File("empty.txt"), "--file");
}

TEST(CliArgsTest, ParsesFormsAndRejectsMistakes) {
  cli::ArgParser a("prog", "test");
  std::string s;
  int32_t n = 5;
  float x = 1;
  bool flag = false;
  std::vector<std::string> many;
  a.String("-s,--str", &s, "a string");
  a.Int32("-n,--num", &n, "a number", 0, 10);
  a.Float("--x", &x, "a float", 0, 2);
  a.Flag("--flag", &flag, "a flag");
  a.Strings("--many", &many, "repeatable");
  const char* argv[] = {"prog", "-s", "hello", "--num=7", "--x", "1.5", "--flag",
                        "--many", "a", "--many", "-b"};
  ASSERT_TRUE(a.Parse(11, argv).ok());
  EXPECT_EQ(s, "hello");
  EXPECT_EQ(n, 7);
  EXPECT_EQ(x, 1.5f);
  EXPECT_TRUE(flag);
  EXPECT_EQ(many, (std::vector<std::string>{"a", "-b"}));
  EXPECT_TRUE(a.Seen("--num"));
  EXPECT_TRUE(a.Seen("-n"));
  EXPECT_FALSE(a.help_requested());

  auto fails = [](std::vector<const char*> args, const std::string& mention) {
    cli::ArgParser p("prog", "test");
    int32_t n = 0;
    float x = 0;
    bool f = false;
    p.Int32("-n,--num", &n, "", 0, 10);
    p.Float("--x", &x, "", 0, 2);
    p.Flag("--flag", &f, "");
    args.insert(args.begin(), "prog");
    const absl::Status s = p.Parse(static_cast<int>(args.size()), args.data());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << mention;
    EXPECT_NE(s.message().find(mention), std::string::npos) << s;
  };
  fails({"--num", "11"}, "--num");
  fails({"-n", "abc"}, "--num");
  fails({"--num"}, "--num");
  fails({"--x", "inf"}, "--x");
  fails({"--x", "3"}, "--x");
  fails({"--flag=1"}, "--flag");
  fails({"--what"}, "--what");
  fails({"loose"}, "loose");

  EXPECT_EQ(*cli::ParseIdList(" 1, 2 ,3", "--ids"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_FALSE(cli::ParseIdList("1,,2", "--ids").ok());
  EXPECT_FALSE(cli::ParseIdList("99999999999", "--ids").ok());
}

}  // namespace
}  // namespace bitnet
