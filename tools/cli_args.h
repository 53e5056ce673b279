// A small command-line parser shared by the tools, so every tool spells and
// reports flags the same way: `--flag value` or `--flag=value`, short aliases
// (`-n 5`), repeatable flags, `--help`. Every mistake (unknown flag, missing
// or malformed value, value out of range, stray argument) is an
// INVALID_ARGUMENT whose message starts with the flag's name.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bitnet::cli {

class ArgParser {
 public:
  ArgParser(std::string program, std::string summary);

  // `names` lists a flag's spellings separated by commas, e.g. "-n,--n-predict";
  // the last one is its canonical name in messages. A target keeps its
  // initial value (shown as the default in --help) unless the flag is given.
  void Flag(std::string names, bool* target, std::string help);  // takes no value
  void String(std::string names, std::string* target, std::string help,
              std::string metavar = "TEXT");
  void Strings(std::string names, std::vector<std::string>* target, std::string help,
               std::string metavar = "TEXT");  // repeatable; each use appends
  void Choice(std::string names, std::string* target, std::vector<std::string> choices,
              std::string help);
  void Int(std::string names, int64_t* target, std::string help,
           int64_t min = std::numeric_limits<int64_t>::min(),
           int64_t max = std::numeric_limits<int64_t>::max());
  void Int32(std::string names, int32_t* target, std::string help,
             int32_t min = std::numeric_limits<int32_t>::min(),
             int32_t max = std::numeric_limits<int32_t>::max());
  void Uint64(std::string names, uint64_t* target, std::string help);
  // Finite floats in [min, max].
  void Float(std::string names, float* target, std::string help,
             float min = -std::numeric_limits<float>::max(),
             float max = std::numeric_limits<float>::max());

  absl::Status Parse(int argc, const char* const* argv);
  bool help_requested() const { return help_; }
  // True if the flag (any spelling) appeared on the command line.
  bool Seen(std::string_view name) const;
  std::string Usage() const;
  const std::string& program() const { return program_; }

 private:
  struct Option {
    std::vector<std::string> names;
    std::string help, metavar, default_text;
    bool takes_value = true;
    bool seen = false;
    std::function<absl::Status(absl::string_view value)> set;
  };
  void Add(std::string names, std::string help, std::string metavar, std::string default_text,
           bool takes_value, std::function<absl::Status(absl::string_view)> set);
  Option* Find(std::string_view name);
  const Option* Find(std::string_view name) const;

  std::string program_, summary_;
  std::vector<Option> options_;
  bool help_ = false;
};

// Parses "1,2,3" (spaces allowed around ids) into token ids; `flag` names the
// flag in errors.
absl::StatusOr<std::vector<int32_t>> ParseIdList(std::string_view text, std::string_view flag);

// The whole file at `path` (a --file argument); INVALID_ARGUMENT naming
// `flag` if the path is empty, NOT_FOUND naming it and the path when it
// cannot be read.
absl::StatusOr<std::string> ReadTextFile(const std::string& path, std::string_view flag);

// Prints "program: message" to stderr and returns the exit code: 2 for a usage
// mistake (INVALID_ARGUMENT), 1 for anything else.
int ReportError(std::string_view program, const absl::Status& status);

}  // namespace bitnet::cli
