// Greedy generation on the oracle models must not depend on the kernel
// variant or the thread count: every supported variant is forced with
// BITNET_KERNEL and bitnet-run must produce the oracle's ids, identically.
// (The kernels are bit-exact, so any difference here is a kernel bug.)
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kernel_variant.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

std::string Join(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

TEST(KernelVariantsOnOracle, GreedyIdsIdenticalForEveryVariant) {
  SKIP_WITHOUT_ORACLE();
  const std::string run = testing::BinDir() + "/bitnet-run";
  if (!std::filesystem::exists(run)) {
    GTEST_SKIP() << "bitnet-run is not built in " << testing::BinDir();
  }
  const nlohmann::json expected = nlohmann::json::parse(
      [] {
        const std::vector<uint8_t> b =
            testing::ReadFileBytes(testing::OracleDir() + "/expected.json");
        return std::string(b.begin(), b.end());
      }());
  // The activation quantization each file was made with.
  const std::vector<std::pair<std::string, std::string>> files = {
      {"f32", "none"}, {"i2_s", "per-token"}, {"tq2_0", "q8k"}, {"tq1_0", "q8k"}};
  for (const auto& [file, act] : files) {
    const std::string model = testing::OracleDir() + "/tiny-gqa-" + file + ".gguf";
    for (const auto& prompt : expected["prompts"]) {
      const std::string name = prompt["name"];
      const std::vector<int> want = expected["files"][file]["runs"][name]["generated_ids"];
      for (const kernels::KernelVariant v : kernels::SupportedKernelVariants()) {
        // Two threads for the variant the engine would pick (keeps the test short).
        const std::vector<std::string> thread_counts =
            v == kernels::BestKernelVariant() ? std::vector<std::string>{"1", "2"}
                                              : std::vector<std::string>{"1"};
        for (const std::string& threads : thread_counts) {
          const std::string cmd = "BITNET_KERNEL=" + std::string(kernels::KernelVariantName(v)) +
                                  " " + run + " -m " + model + " --prompt-ids " +
                                  Join(prompt["ids"].get<std::vector<int>>()) +
                                  " -n 32 --temp 0 --json -t " + threads + " --act-quant " + act;
          const testing::CommandResult r = testing::RunCommand(cmd);
          ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.output;
          const size_t brace = r.output.find('{');
          ASSERT_NE(brace, std::string::npos) << r.output;
          const nlohmann::json got = nlohmann::json::parse(r.output.substr(brace));
          EXPECT_EQ(got["generated_ids"].get<std::vector<int>>(), want)
              << file << " " << name << " variant " << kernels::KernelVariantName(v)
              << " threads " << threads;
        }
      }
    }
  }
}

}  // namespace
}  // namespace bitnet
