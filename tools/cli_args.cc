#include "tools/cli_args.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bitnet::cli {
namespace {

absl::Status Bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", what));
}

std::string FloatText(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

}  // namespace

ArgParser::ArgParser(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void ArgParser::Add(std::string names, std::string help, std::string metavar,
                    std::string default_text, bool takes_value,
                    std::function<absl::Status(absl::string_view)> set) {
  Option o;
  o.names = absl::StrSplit(names, ',', absl::SkipEmpty());
  o.help = std::move(help);
  o.metavar = std::move(metavar);
  o.default_text = std::move(default_text);
  o.takes_value = takes_value;
  o.set = std::move(set);
  options_.push_back(std::move(o));
}

void ArgParser::Flag(std::string names, bool* target, std::string help) {
  Add(std::move(names), std::move(help), "", "", false, [target](absl::string_view) {
    *target = true;
    return absl::OkStatus();
  });
}

void ArgParser::String(std::string names, std::string* target, std::string help,
                       std::string metavar) {
  Add(std::move(names), std::move(help), std::move(metavar), *target, true,
      [target](absl::string_view v) {
        *target = std::string(v);
        return absl::OkStatus();
      });
}

void ArgParser::Strings(std::string names, std::vector<std::string>* target, std::string help,
                        std::string metavar) {
  Add(std::move(names), std::move(help) + " (repeatable)", std::move(metavar), "", true,
      [target](absl::string_view v) {
        target->emplace_back(v);
        return absl::OkStatus();
      });
}

void ArgParser::Choice(std::string names, std::string* target, std::vector<std::string> choices,
                       std::string help) {
  const std::string flag = names.substr(names.rfind(',') + 1);
  std::string metavar = absl::StrJoin(choices, "|");
  Add(std::move(names), std::move(help), std::move(metavar), *target, true,
      [target, choices, flag](absl::string_view v) {
        for (const std::string& c : choices) {
          if (v == c) {
            *target = c;
            return absl::OkStatus();
          }
        }
        return Bad(flag, absl::StrCat("expected one of ", absl::StrJoin(choices, ", "), "; got '",
                                      v, "'"));
      });
}

void ArgParser::Int(std::string names, int64_t* target, std::string help, int64_t min,
                    int64_t max) {
  const std::string flag = names.substr(names.rfind(',') + 1);
  Add(std::move(names), std::move(help), "N", absl::StrCat(*target), true,
      [target, flag, min, max](absl::string_view v) {
        int64_t x;
        if (!absl::SimpleAtoi(v, &x)) return Bad(flag, absl::StrCat("expected an integer, got '", v, "'"));
        if (x < min || x > max) {
          return Bad(flag, absl::StrCat("must be in [", min, ", ", max, "], got ", x));
        }
        *target = x;
        return absl::OkStatus();
      });
}

void ArgParser::Int32(std::string names, int32_t* target, std::string help, int32_t min,
                      int32_t max) {
  const std::string flag = names.substr(names.rfind(',') + 1);
  Add(std::move(names), std::move(help), "N", absl::StrCat(*target), true,
      [target, flag, min, max](absl::string_view v) {
        int64_t x;
        if (!absl::SimpleAtoi(v, &x)) return Bad(flag, absl::StrCat("expected an integer, got '", v, "'"));
        if (x < min || x > max) {
          return Bad(flag, absl::StrCat("must be in [", min, ", ", max, "], got ", x));
        }
        *target = static_cast<int32_t>(x);
        return absl::OkStatus();
      });
}

void ArgParser::Uint64(std::string names, uint64_t* target, std::string help) {
  const std::string flag = names.substr(names.rfind(',') + 1);
  Add(std::move(names), std::move(help), "N", absl::StrCat(*target), true,
      [target, flag](absl::string_view v) {
        uint64_t x;
        if (!absl::SimpleAtoi(v, &x)) {
          return Bad(flag, absl::StrCat("expected a non-negative integer, got '", v, "'"));
        }
        *target = x;
        return absl::OkStatus();
      });
}

void ArgParser::Float(std::string names, float* target, std::string help, float min, float max) {
  const std::string flag = names.substr(names.rfind(',') + 1);
  Add(std::move(names), std::move(help), "X", FloatText(*target), true,
      [target, flag, min, max](absl::string_view v) {
        float x;
        if (!absl::SimpleAtof(v, &x) || !std::isfinite(x)) {
          return Bad(flag, absl::StrCat("expected a finite number, got '", v, "'"));
        }
        if (x < min || x > max) {
          return Bad(flag, absl::StrCat("must be in [", FloatText(min), ", ", FloatText(max),
                                        "], got ", FloatText(x)));
        }
        *target = x;
        return absl::OkStatus();
      });
}

ArgParser::Option* ArgParser::Find(std::string_view name) {
  for (Option& o : options_) {
    for (const std::string& n : o.names) {
      if (n == name) return &o;
    }
  }
  return nullptr;
}

const ArgParser::Option* ArgParser::Find(std::string_view name) const {
  return const_cast<ArgParser*>(this)->Find(name);
}

bool ArgParser::Seen(std::string_view name) const {
  const Option* o = Find(name);
  return o != nullptr && o->seen;
}

absl::Status ArgParser::Parse(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", arg, "'; every input is given with a flag (see --help)"));
    }
    absl::string_view name = arg, value;
    bool has_inline_value = false;
    if (size_t eq = arg.find('='); arg.substr(0, 2) == "--" && eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_inline_value = true;
    }
    Option* o = Find(std::string_view(name.data(), name.size()));
    if (o == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag '", name, "' (see ", program_, " --help)"));
    }
    const std::string& canonical = o->names.back();
    if (!o->takes_value) {
      if (has_inline_value) return Bad(canonical, "takes no value");
    } else if (!has_inline_value) {
      if (i + 1 >= argc) return Bad(canonical, absl::StrCat("needs a value (", o->metavar, ")"));
      value = argv[++i];
    }
    if (absl::Status s = o->set(value); !s.ok()) return s;
    o->seen = true;
  }
  return absl::OkStatus();
}

std::string ArgParser::Usage() const {
  std::string out = absl::StrCat("usage: ", program_, " [flags]\n", summary_, "\n\nflags:\n");
  for (const Option& o : options_) {
    std::string left = absl::StrCat("  ", absl::StrJoin(o.names, ", "));
    if (o.takes_value) absl::StrAppend(&left, " ", o.metavar);
    if (left.size() < 30) left.resize(30, ' ');
    else absl::StrAppend(&left, "\n", std::string(30, ' '));
    absl::StrAppend(&out, left, o.help);
    if (!o.default_text.empty()) absl::StrAppend(&out, " [default: ", o.default_text, "]");
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "  -h, --help                  show this help\n");
  return out;
}

absl::StatusOr<std::vector<int32_t>> ParseIdList(std::string_view text, std::string_view flag) {
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    piece = absl::StripAsciiWhitespace(piece);
    int32_t id;
    if (piece.empty() || !absl::SimpleAtoi(piece, &id)) {
      return Bad(absl::string_view(flag.data(), flag.size()), absl::StrCat("'", piece, "' is not a token id; expected a comma-separated "
                                    "list such as 1,2,3"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path, std::string_view flag) {
  const absl::string_view name(flag.data(), flag.size());
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": required"));
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(name, ": cannot open '", path, "'"));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int ReportError(std::string_view program, const absl::Status& status) {
  std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(program.size()), program.data(),
               static_cast<int>(status.message().size()), status.message().data());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

}  // namespace bitnet::cli
