// bitnet-convert: Hugging Face checkpoint directory -> GGUF, or GGUF -> GGUF
// repacking between ternary types, with a progress bar on stderr.
//
//   bitnet-convert --input bitnet-b1.58-2B-4T/ --output 2b.gguf --type i2_s
//   bitnet-convert --input bitnet_b1_58-large/ --output large.gguf --type tq2_0 --embedding-type q6_k
//   bitnet-convert --input model-tq2_0.gguf --output model-i2_s.gguf --type i2_s
//
// The output is written to <output>.part and renamed when complete, so a
// failed or interrupted conversion never leaves a truncated model behind.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/hf_checkpoint.h"
#include "tools/cli_args.h"
#include "tools/ternary_repack.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-convert";

struct ConvertFlags {
  std::string input, output, type = "i2_s", embedding_type;
  bool no_tokenizer = false, quiet = false, force = false;
};

// "[ 42%] 12.3 / 29.1 MiB  blk.3.ffn_up.weight" on one rewritten stderr line,
// at most every 200 ms and once at the end.
class ProgressBar {
 public:
  void operator()(const std::string& tensor, uint64_t done, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    const bool end = done >= total;
    if (!end && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double pct = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
    const int width = 30, filled = static_cast<int>(pct / 100.0 * width);
    const bool big = total >= (uint64_t{1} << 30);
    const double unit = big ? 1024.0 * 1024.0 * 1024.0 : 1024.0 * 1024.0;
    std::fprintf(stderr, "\r%s: [%.*s%*s] %3.0f%% %.2f / %.2f %s  %-32.32s", kProgram, filled,
                 "==============================", width - filled, "", pct,
                 static_cast<double>(done) / unit, static_cast<double>(total) / unit,
                 big ? "GiB" : "MiB", tensor.c_str());
    if (end) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point last_{};
};

absl::StatusOr<ggml::Type> TypeFlag(const std::string& flag, const std::string& value) {
  absl::StatusOr<ggml::Type> t = ggml::TypeFromName(value);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown type '", value, "'"));
  return t;
}

absl::Status WriteAtomically(const gguf::Writer& w, const std::string& output) {
  const std::string part = output + ".part";
  absl::Status s = w.WriteFile(part);
  std::error_code ec;
  if (!s.ok()) {
    std::filesystem::remove(part, ec);
    return s;
  }
  std::filesystem::rename(part, output, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", part, " to ", output, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status Run(int argc, char** argv) {
  ConvertFlags f;
  ArgParser a(kProgram,
              "Converts a Hugging Face ternary checkpoint (BitNetForCausalLM, BitnetForCausalLM,\n"
              "LlamaForCausalLM with packed ternary weights) to GGUF, or repacks a GGUF model\n"
              "between the ternary types i2_s, tq1_0 and tq2_0.");
  a.String("-i,--input", &f.input, "Hugging Face model directory or GGUF file (required)", "PATH");
  a.String("-o,--output", &f.output, "GGUF file to write (required)", "FILE");
  a.Choice("--type", &f.type, {"i2_s", "tq1_0", "tq2_0", "f16", "bf16", "f32"},
           "ternary weight type (f16/bf16/f32: code * scale as floats; Hugging Face input only)");
  a.Choice("--embedding-type", &f.embedding_type, {"f32", "f16", "bf16", "q8_0", "q6_k"},
           "token_embd / output type (default: f16 for Hugging Face input, unchanged for GGUF)");
  a.Flag("--no-tokenizer", &f.no_tokenizer, "do not embed tokenizer.json (Hugging Face input)");
  a.Flag("-f,--force", &f.force, "overwrite an existing output file");
  a.Flag("-q,--quiet", &f.quiet, "no progress output");
  if (absl::Status s = a.Parse(argc, argv); !s.ok()) return s;
  if (a.help_requested()) {
    std::fputs(a.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (f.input.empty()) return absl::InvalidArgumentError("--input: required (a model directory or .gguf file)");
  if (f.output.empty()) return absl::InvalidArgumentError("--output: required (the GGUF file to write)");
  std::error_code ec;
  if (std::filesystem::exists(f.output, ec)) {
    if (std::filesystem::exists(f.input, ec) && std::filesystem::equivalent(f.input, f.output, ec)) {
      return absl::InvalidArgumentError("--output: must differ from --input");
    }
    if (!f.force) {
      return absl::AlreadyExistsError(absl::StrCat(f.output, " exists; pass --force to overwrite it"));
    }
  }
  absl::StatusOr<ggml::Type> type = TypeFlag("--type", f.type);
  if (!type.ok()) return type.status();
  std::optional<ggml::Type> embedding;
  if (!f.embedding_type.empty()) {
    absl::StatusOr<ggml::Type> e = TypeFlag("--embedding-type", f.embedding_type);
    if (!e.ok()) return e.status();
    embedding = *e;
  }

  ProgressBar bar;
  std::function<void(const std::string&, uint64_t, uint64_t)> progress;
  if (!f.quiet) progress = [&](const std::string& t, uint64_t d, uint64_t n) { bar(t, d, n); };

  gguf::Writer w;
  if (IsHfCheckpointDir(f.input)) {
    absl::StatusOr<std::unique_ptr<HfCheckpoint>> ck = HfCheckpoint::Open(f.input);
    if (!ck.ok()) return ck.status();
    const ModelConfig& c = (*ck)->config();
    if (!f.quiet) {
      std::fprintf(stderr, "%s: %s (%s -> arch %s), %lld layers, embd %lld, vocab %lld%s -> %s %s\n",
                   kProgram, f.input.c_str(), (*ck)->hf_config().architecture.c_str(),
                   c.arch_name.c_str(), static_cast<long long>(c.n_layer),
                   static_cast<long long>(c.n_embd), static_cast<long long>(c.n_vocab),
                   (*ck)->tokenizer() ? ", tokenizer.json" : ", no tokenizer.json", f.output.c_str(),
                   f.type.c_str());
    }
    HfToGgufOptions o;
    o.ternary_type = *type;
    o.embedding_type = embedding.value_or(ggml::Type::kF16);
    o.include_tokenizer = !f.no_tokenizer;
    o.progress = progress;
    if (absl::Status s = AddHfToGguf(**ck, o, w); !s.ok()) return s;
    return WriteAtomically(w, f.output);
  }
  if (std::filesystem::is_directory(f.input, ec)) {
    return absl::NotFoundError(absl::StrCat(f.input, " is a directory without config.json; point --input at a "
                                            "Hugging Face model directory or a .gguf file"));
  }
  absl::StatusOr<std::unique_ptr<gguf::File>> in = gguf::File::Open(f.input);
  if (!in.ok()) return in.status();
  tools::RepackOptions o;
  o.ternary_type = *type;
  o.embedding_type = embedding;
  o.progress = progress;
  if (!f.quiet) {
    std::fprintf(stderr, "%s: %s (GGUF, %zu tensors) -> %s %s\n", kProgram, f.input.c_str(),
                 (*in)->tensors().size(), f.output.c_str(), f.type.c_str());
  }
  if (absl::Status s = tools::RepackGguf(**in, o, w); !s.ok()) return s;
  return WriteAtomically(w, f.output);
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  absl::Status s = bitnet::cli::Run(argc, argv);
  if (!s.ok()) {
    std::fprintf(stderr, "\n");
    return bitnet::cli::ReportError(bitnet::cli::kProgram, s);
  }
  return 0;
}
