// bitnet-bench end to end on one small reference matrix: the JSON report has
// the time, ceilings and fractions of every (batch, threads) cell, and the
// cache-line transfer measured before each multi-thread timing; bad flags are
// usage errors.
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using testing::BinDir;
using testing::RunCommand;

std::string Tool() { return BinDir() + "/bitnet-bench"; }

#define SKIP_WITHOUT_TOOL() SKIP_WITHOUT_BINARY(Tool())

TEST(BenchTest, JsonReport) {
  SKIP_WITHOUT_TOOL();
  const testing::CommandResult r =
      RunCommand(Tool() + " --models 2b --matrices 2b.attn_k --batches 1,8 --threads 1,2"
                          " --reps 1 --min-time 0.001 --rotate-mb 4 --stream-mb 128 --json 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  ASSERT_EQ(j["ceilings"].size(), 2u);
  ASSERT_EQ(j["results"].size(), 4u);  // 2 batches x 2 thread counts
  const bool two_cpus = std::thread::hardware_concurrency() >= 2;
  for (const auto& row : j["results"]) {
    EXPECT_EQ(row["matrix"], "attn_k/v") << row;
    EXPECT_EQ(row["rows"], 640) << row;
    EXPECT_EQ(row["cols"], 2560) << row;
    const double seconds = row["seconds"].get<double>();
    ASSERT_GT(seconds, 0) << row;
    EXPECT_EQ(row["weight_bytes"], 640 * 2560 / 4) << row;  // 2 bits a weight
    EXPECT_NEAR(row["weight_gbs"].get<double>(), 640.0 * 2560 / 4 / seconds / 1e9, 1e-6) << row;
    EXPECT_GT(row["stream_read_gbs"].get<double>(), 0) << row;
    EXPECT_GT(row["fraction_of_stream_read"].get<double>(), 0) << row;
    EXPECT_GT(row["fraction_of_int8_peak"].get<double>(), 0) << row;
    const double xfer = row["line_transfer_us"].get<double>();
    if (row["threads"] == 1 || !two_cpus) {
      EXPECT_EQ(xfer, 0) << row;  // nothing crosses between threads
    } else {
      EXPECT_GT(xfer, 0) << row;
      EXPECT_LT(xfer, 1000) << row;
    }
  }
  // The table names the transfer column.
  const testing::CommandResult t =
      RunCommand(Tool() + " --models 2b --matrices 2b.attn_k --batches 1 --threads 2 --reps 1"
                          " --min-time 0.001 --rotate-mb 4 --stream-mb 128 2>&1");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("xfer"), std::string::npos) << t.output;
}

TEST(BenchTest, UsageErrors) {
  SKIP_WITHOUT_TOOL();
  for (const char* args : {"--threads 0", "--batches x", "--models 3b", "--act none",
                           "--family tl --threads 2"}) {
    const testing::CommandResult r = RunCommand(Tool() + " " + args + " 2>&1");
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_LT(r.exit_code, 128) << "crashed: " << args << "\n" << r.output;
    EXPECT_NE(r.output.find("bitnet-bench"), std::string::npos) << args << "\n" << r.output;
  }
}

}  // namespace
}  // namespace bitnet
