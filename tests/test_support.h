// Helpers shared by the tests: where the oracle data and binaries are, and
// scratch files that clean up after themselves.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bitnet::testing {

// The shared oracle folder ($BITNET_ORACLE_DIR overrides the build-time path).
std::string OracleDir();
// True if the oracle folder is present; tests that need it GTEST_SKIP otherwise.
bool HaveOracle();
std::string BinDir();     // build/bin
std::string SourceDir();  // repository root

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);

// Runs a shell command, returns its exit status and captures stdout+stderr.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

}  // namespace bitnet::testing

#define SKIP_WITHOUT_ORACLE()                                              \
  do {                                                                     \
    if (!::bitnet::testing::HaveOracle())                                  \
      GTEST_SKIP() << "oracle folder not found: " << ::bitnet::testing::OracleDir(); \
  } while (0)

// Skips the test when the binary at `path` (a std::string) was not built.
#define SKIP_WITHOUT_BINARY(path)                                          \
  do {                                                                     \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << (path) << " is not built"; \
  } while (0)
