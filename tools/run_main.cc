// bitnet-run: generate text from a prompt with a GGUF model on this machine.
//
//   bitnet-run --model m.gguf --prompt "Once upon a time" -n 64
//   bitnet-run --model m.gguf --prompt-ids 288,72,101 -n 8 --temp 0 --json
//   bitnet-run --model m.gguf --prompt-ids 288,72 -n 0 --logits-out l.bin
//
// Text streams to stdout as it is generated; speeds go to stderr. With --json
// stdout holds one JSON object instead.
#include <bit>
#include <cstdint>
#include <cstdio>
#include <span>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/generator.h"
#include "engine/sampler.h"
#include "nlohmann/json.hpp"
#include "tools/cli_args.h"
#include "tools/model_session.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-run";

struct RunFlags {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int32_t n_predict = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool json = false;
  bool ignore_eos = false;
  std::string logits_out;
  EngineFlags engine;
};

void AddFlags(ArgParser& a, RunFlags& f) {
  AddModelFlag(a, &f.model);
  a.String("-p,--prompt", &f.prompt, "prompt text (BOS is added if the model wants it)");
  a.String("--prompt-ids", &f.prompt_ids, "prompt as token ids instead of text, used as given",
           "1,2,3");
  a.Int32("-n,--n-predict", &f.n_predict, "tokens to generate (-1: until the context is full)", -1);
  a.Float("--temp", &f.sampling.temperature, "temperature (<= 0: greedy)");
  a.Int32("--top-k", &f.sampling.top_k, "top-k (0: off)", 0);
  a.Float("--top-p", &f.sampling.top_p, "top-p (1: off)", 0.f, 1.f);
  a.Float("--min-p", &f.sampling.min_p, "min-p (0: off)", 0.f, 1.f);
  a.Float("--repeat-penalty", &f.sampling.repeat_penalty, "repetition penalty (1: off)", 1e-6f);
  a.Int32("--repeat-last-n", &f.sampling.repeat_last_n,
          "tokens the repetition penalty looks at (0: off, -1: all)", -1);
  a.Uint64("-s,--seed", &f.sampling.seed, "random seed of the sampler");
  a.Strings("--stop", &f.stop, "stop when the generated text contains this string");
  a.Flag("--ignore-eos", &f.ignore_eos, "keep generating after an end-of-generation token");
  AddEngineFlags(a, &f.engine, "context size in tokens (0: the model's)");
  a.String("--logits-out", &f.logits_out,
           "write the teacher-forced logits of every prompt position to FILE "
           "(little-endian float32, one row of n_vocab per position)",
           "FILE");
  a.Flag("--json", &f.json, "print one JSON object (ids, text, finish reason, timings) instead");
}

absl::StatusOr<std::vector<TokenId>> PromptIds(const RunFlags& f, const ArgParser& a,
                                               const ModelSession& m) {
  const bool text = a.Seen("--prompt"), ids = a.Seen("--prompt-ids");
  if (text == ids) {
    return absl::InvalidArgumentError(
        text ? "--prompt and --prompt-ids: give only one of them"
             : "--prompt: give the prompt as --prompt TEXT or --prompt-ids 1,2,3");
  }
  if (text) return m.tokenizer->Encode(f.prompt, /*add_bos=*/true);
  absl::StatusOr<std::vector<int32_t>> parsed = ParseIdList(f.prompt_ids, "--prompt-ids");
  if (!parsed.ok()) return parsed.status();
  const int64_t n_vocab = m.engine->config().n_vocab;
  for (int32_t id : *parsed) {
    if (id < 0 || id >= n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: id ", id,
                                                     " is outside the vocabulary [0, ", n_vocab,
                                                     ")"));
    }
  }
  return std::vector<TokenId>(parsed->begin(), parsed->end());
}

// Teacher-forced logits of every prompt position, streamed to `path` row by
// row (a long prompt times a 128k vocabulary would not fit in memory).
absl::Status WriteLogits(StageEngine& engine, std::span<const TokenId> prompt,
                         const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  auto cannot_write = [&] {
    return absl::PermissionDeniedError(absl::StrCat(
        "--logits-out: cannot write '", path, "'; check that the folder exists and is writable"));
  };
  if (!out) return cannot_write();
  std::vector<float> row;
  absl::Status s = TeacherForce(engine, prompt, /*chunk=*/512, /*seq=*/0,
                                [&](int64_t, std::span<const float> logits) {
                                  row.assign(logits.begin(), logits.end());
                                  if constexpr (std::endian::native == std::endian::big) {
                                    for (float& x : row) {
                                      x = std::bit_cast<float>(
                                          __builtin_bswap32(std::bit_cast<uint32_t>(x)));
                                    }
                                  }
                                  out.write(reinterpret_cast<const char*>(row.data()),
                                            static_cast<std::streamsize>(row.size() * sizeof(float)));
                                  return out ? absl::OkStatus() : cannot_write();
                                });
  out.close();
  if (s.ok() && !out) s = cannot_write();
  if (!s.ok()) std::remove(path.c_str());  // no partial file left behind
  return s;
}

absl::Status Run(int argc, char** argv) {
  RunFlags f;
  f.engine.ctx_size = 0;
  ArgParser args(kProgram, "Generates text from a prompt with a BitNet / ternary GGUF model.");
  AddFlags(args, f);
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return s;
  if (args.help_requested()) {
    std::fputs(args.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (absl::Status s = RequireModel(f.model); !s.ok()) return s;
  if (absl::Status s = ValidateSamplingParams(f.sampling); !s.ok()) return s;
  absl::StatusOr<EngineOptions> options = ToEngineOptions(f.engine);
  if (!options.ok()) return options.status();

  absl::StatusOr<ModelSession> m = LoadModelSession(f.model, *options);
  if (!m.ok()) return m.status();
  absl::StatusOr<std::vector<TokenId>> prompt = PromptIds(f, args, *m);
  if (!prompt.ok()) return prompt.status();
  if (!f.json) {
    std::fprintf(stderr, "%s: loaded %s (%s, %lld layers) in %.2f s; prompt: %zu tokens\n",
                 kProgram, f.model.c_str(), m->engine->config().arch_name.c_str(),
                 static_cast<long long>(m->engine->config().n_layer), m->load_seconds,
                 prompt->size());
  }

  if (!f.logits_out.empty()) {
    if (absl::Status s = WriteLogits(*m->engine, *prompt, f.logits_out); !s.ok()) return s;
  }

  GenerateOptions g;
  g.sampling = f.sampling;
  g.max_new_tokens = f.n_predict;
  g.stop = f.stop;
  g.stop_at_eog = !f.ignore_eos;
  TokenCallback print = nullptr;
  if (!f.json) {
    print = [](TokenId, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  absl::StatusOr<GenerationResult> r = Generate(*m->engine, *m->tokenizer, *prompt, g, print);
  if (!r.ok()) return r.status();
  const GenerationTimings& t = r->timings;
  if (f.json) {
    nlohmann::json j;
    j["prompt_ids"] = *prompt;
    j["generated_ids"] = r->ids;
    j["text"] = r->text;
    j["finish_reason"] = std::string(FinishReasonName(r->finish_reason));
    j["seed"] = f.sampling.seed;
    j["timings"] = {{"load_seconds", m->load_seconds},
                    {"prompt_tokens", t.prompt_tokens},
                    {"prompt_seconds", t.prompt_seconds},
                    {"prompt_tokens_per_second", t.prompt_tokens_per_second()},
                    {"generated_tokens", t.generated_tokens},
                    {"decode_steps", t.decode_steps},
                    {"generation_seconds", t.decode_seconds},
                    {"generation_tokens_per_second", t.generation_tokens_per_second()}};
    const std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr,
                 "%s: prompt %lld tokens in %.3f s (%.2f tokens/s); generation %lld tokens, "
                 "%.2f tokens/s; finish: %s\n",
                 kProgram, static_cast<long long>(t.prompt_tokens), t.prompt_seconds,
                 t.prompt_tokens_per_second(), static_cast<long long>(t.generated_tokens),
                 t.generation_tokens_per_second(),
                 std::string(FinishReasonName(r->finish_reason)).c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  const absl::Status s = bitnet::cli::Run(argc, argv);
  return s.ok() ? 0 : bitnet::cli::ReportError(bitnet::cli::kProgram, s);
}
