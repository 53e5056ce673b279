// bitnet-bench-model end to end on a cut-down 2B-4T shape (one layer, a
// small vocabulary): the JSON report has the decode and prefill numbers,
// ceilings and fractions for each thread count; bad flags are usage errors.
#include <filesystem>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using testing::BinDir;
using testing::RunCommand;

std::string Tool() { return BinDir() + "/bitnet-bench-model"; }

#define SKIP_WITHOUT_TOOL() SKIP_WITHOUT_BINARY(Tool())

TEST(BenchModelTest, JsonReport) {
  SKIP_WITHOUT_TOOL();
  testing::TempDir dir;
  const std::string model = dir.File("m.gguf");
  const std::string cmd = Tool() + " --synth-out " + model +
                          " --n-layer 1 --n-vocab 1024 --prompt 3 --decode 2 --prefill 8 --reps 1"
                          " --prefill-reps 1 --stream-mb 64 --threads 1,2 --json -q 2>&1";
  const testing::CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  EXPECT_EQ(j["model"]["n_layer"], 1);
  EXPECT_EQ(j["model"]["n_embd"], 2560);
  EXPECT_EQ(j["model"]["n_vocab"], 1024);
  EXPECT_EQ(j["bytes"]["lm_head_format"], "f16");
  EXPECT_EQ(j["bytes"]["lm_head"].get<double>(), 1024.0 * 2560 * 2);  // held as F16
  ASSERT_EQ(j["results"].size(), 2u);
  for (const auto& row : j["results"]) {
    const auto& d = row["decode"];
    EXPECT_GT(d["tokens_per_s"].get<double>(), 0) << row;
    EXPECT_GT(d["stream_gbs"].get<double>(), 0) << row;
    EXPECT_NEAR(d["ceiling_tokens_per_s"].get<double>(),
                d["stream_gbs"].get<double>() * 1e9 / d["bytes_per_token"].get<double>(), 1e-6)
        << row;
    EXPECT_GT(d["fraction_of_ceiling"].get<double>(), 0) << row;
    const double xfer = d["line_transfer_us"].get<double>();
    if (row["threads"] == 1 || std::thread::hardware_concurrency() < 2) {
      EXPECT_EQ(xfer, 0) << row;  // nothing crosses between threads
    } else {
      EXPECT_GT(xfer, 0) << row;
    }
    const auto& p = row["prefill"];
    EXPECT_GT(p["tokens_per_s"].get<double>(), 0) << row;
    EXPECT_GT(p["int8_peak_gops"].get<double>(), 0) << row;
    EXPECT_GT(p["fraction_of_peak"].get<double>(), 0) << row;
  }
  // The kept model loads with --model; the table form names the ceilings.
  const testing::CommandResult t = RunCommand(
      Tool() + " --model " + model +
      " --prompt 2 --decode 1 --prefill 4 --reps 1 --prefill-reps 1 --stream-mb 64 --threads 1 -q");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("ceiling tok/s"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("int8 peak GOPS"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("xfer us"), std::string::npos) << t.output;
}

TEST(BenchModelTest, UsageErrors) {
  SKIP_WITHOUT_TOOL();
  for (const char* args : {"--threads 0", "--threads x", "--act none", "--model /nonexistent.gguf"}) {
    const testing::CommandResult r = RunCommand(Tool() + " " + args + " -q 2>&1");
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << args << "\n" << r.output;
    EXPECT_NE(r.output.find("bitnet-bench-model"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace bitnet
