// bitnet-perplexity: scores a text file with a GGUF model (llama.cpp's
// perplexity method: windows of --ctx-size tokens, second half scored).
//
//   bitnet-perplexity --model m.gguf --file wiki.test.raw --ctx-size 512
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "tools/cli_args.h"
#include "tools/model_session.h"
#include "engine/perplexity.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-perplexity";

absl::Status Run(int argc, char** argv) {
  std::string model, file;
  bool json = false;
  EngineFlags engine;
  engine.ctx_size = 512;
  ArgParser args(kProgram, "Computes the perplexity of a text file (llama.cpp's method).");
  AddModelFlag(args, &model);
  args.String("-f,--file", &file, "text file to score (required)", "FILE");
  AddEngineFlags(args, &engine, "window size in tokens; the second half of each window is scored");
  args.Flag("--json", &json, "print one JSON object instead of text");
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return s;
  if (args.help_requested()) {
    std::fputs(args.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (absl::Status s = RequireModel(model); !s.ok()) return s;
  absl::StatusOr<std::string> text = ReadTextFile(file, "--file");
  if (!text.ok()) return text.status();
  absl::StatusOr<EngineOptions> options = ToEngineOptions(engine);
  if (!options.ok()) return options.status();
  absl::StatusOr<ModelSession> m = LoadModelSession(model, *options);
  if (!m.ok()) return m.status();
  const int64_t window = m->engine->n_ctx();

  const std::vector<TokenId> tokens = m->tokenizer->Encode(*text, /*add_bos=*/true);
  if (!json) {
    std::fprintf(stderr, "%s: %zu tokens, window %lld\n", kProgram, tokens.size(),
                 static_cast<long long>(window));
  }
  PerplexityProgress progress = nullptr;
  if (!json) {
    progress = [](int64_t done, int64_t total, double ppl) {
      std::fprintf(stderr, "\r%s: window %lld/%lld, perplexity so far %.4f", kProgram,
                   static_cast<long long>(done), static_cast<long long>(total), ppl);
      if (done == total) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    };
  }
  absl::StatusOr<PerplexityResult> r =
      ComputePerplexity(*m->engine, *m->tokenizer, tokens, window, progress);
  if (!r.ok()) {
    if (r.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::InvalidArgumentError(absl::StrCat("--file: ", r.status().message()));
    }
    return r.status();
  }
  if (json) {
    nlohmann::json j = {{"perplexity", r->perplexity},
                        {"mean_nll", r->mean_nll},
                        {"tokens", r->tokens_total},
                        {"tokens_evaluated", r->tokens_evaluated},
                        {"tokens_scored", r->tokens_scored},
                        {"windows", r->windows},
                        {"window", window},
                        {"seconds", r->seconds},
                        {"tokens_per_second", r->tokens_per_second()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f over %lld scored tokens (%lld tokens, %lld windows of %lld), "
                "%.2f tokens/s\n",
                r->perplexity, static_cast<long long>(r->tokens_scored),
                static_cast<long long>(r->tokens_total), static_cast<long long>(r->windows),
                static_cast<long long>(window), r->tokens_per_second());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  const absl::Status s = bitnet::cli::Run(argc, argv);
  return s.ok() ? 0 : bitnet::cli::ReportError(bitnet::cli::kProgram, s);
}
