// bitnet-synth: writes a synthetic ternary model (random weights, real
// shapes) as GGUF, for tests and benchmarks.
//
//   bitnet-synth --out tiny.gguf                       # the oracle's tiny shape, TQ2_0
//   bitnet-synth --preset 2b4t --type i2_s --out 2b.gguf
//   bitnet-synth --arch llama --n-embd 512 --n-layer 2 --type tq1_0 --out l.gguf
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/cli_args.h"
#include "tools/vocab_pack.h"
#include "tools/synth_model.h"

namespace bitnet::cli {
namespace {

constexpr char kProgram[] = "bitnet-synth";

struct SynthFlags {
  std::string out, preset = "tiny", arch, name, type = "tq2_0", embd_type, activation;
  std::string tokenizer = "gpt2", vocab;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0,
          n_ctx = 0;
  float rope_base = 0, rms_eps = 0;
  bool tied = false, untied = false, quiet = false;
  uint64_t seed = 1234;
  int32_t threads = 0;
};

void AddFlags(ArgParser& a, SynthFlags& f) {
  a.String("-o,--out", &f.out, "output GGUF file (required)", "FILE");
  a.Choice("--preset", &f.preset, synth::PresetNames(),
           "base shape: tiny (oracle tiny-gqa), 2b4t (BitNet 2B-4T), 8b (Llama-3-8B), 70b, 100b");
  a.Choice("--arch", &f.arch, {"bitnet", "bitnet-b1.58", "bitnet-25", "llama"},
           "architecture (default: the preset's)");
  a.Choice("--type", &f.type, {"tq1_0", "tq2_0", "i2_s", "f32", "f16"}, "linear weight type");
  a.Choice("--embd-type", &f.embd_type, {"f32", "f16", "q8_0", "q6_k"},
           "token_embd / output type (default: f32 with --type f32, else f16)");
  a.String("--name", &f.name, "general.name (default: synthetic-<preset>)");
  a.Int("--n-vocab", &f.n_vocab, "vocabulary size (>= 258)", 0);
  a.Int("--n-embd", &f.n_embd, "hidden size", 0);
  a.Int("--n-layer", &f.n_layer, "number of layers", 0);
  a.Int("--n-head", &f.n_head, "attention heads", 0);
  a.Int("--n-head-kv", &f.n_head_kv, "key/value heads", 0);
  a.Int("--head-dim", &f.head_dim, "head size (default n_embd / n_head)", 0);
  a.Int("--n-ff", &f.n_ff, "feed-forward size", 0);
  a.Int("--n-ctx", &f.n_ctx, "training context length", 0);
  a.Float("--rope-base", &f.rope_base, "RoPE frequency base", 0.f);
  a.Float("--rms-eps", &f.rms_eps, "RMSNorm epsilon", 0.f);
  a.Choice("--activation", &f.activation, {"silu", "relu2"},
           "FFN activation, written as {arch}.hidden_activation (default: the arch's; upstream "
           "llama.cpp ignores the key and uses SiLU for bitnet)");
  a.Choice("--tokenizer", &f.tokenizer, {"gpt2", "spm"},
           "synthetic vocabulary: gpt2 (byte-level BPE) or spm (SentencePiece, as LLaMA-2 / "
           "1bitLLM models)");
  a.String("--vocab", &f.vocab,
           "embed this real vocabulary instead (a vocabulary pack such as "
           "tests/data/llama3_tokenizer.bin, LLaMA-3's 128256 tokens); --n-vocab defaults to its size",
           "FILE");
  a.Flag("--tied", &f.tied, "output projection shares token_embd (no output.weight)");
  a.Flag("--untied", &f.untied,
         "write a separate output.weight (llama.cpp accepts it for arch llama only)");
  a.Uint64("--seed", &f.seed, "random seed (same seed, same weights in every type)");
  a.Int32("-t,--threads", &f.threads, "threads generating weights (0: all; the output is the same)",
          0, 1024);
  a.Flag("-q,--quiet", &f.quiet, "no progress output");
}

absl::StatusOr<synth::SynthSpec> SpecFromFlags(const SynthFlags& f, const ArgParser& a) {
  absl::StatusOr<synth::SynthSpec> spec = synth::Preset(f.preset);
  if (!spec.ok()) return spec.status();
  synth::SynthSpec& s = *spec;
  if (!f.arch.empty()) {
    s.arch = f.arch;
    // llama.cpp's bitnet graphs always use token_embd as the output (an
    // output.weight would be an unexpected tensor there).
    if (s.arch != "llama") s.tied = true;
  }
  if (!f.name.empty()) s.name = f.name;
  absl::StatusOr<ggml::Type> type = synth::TernaryTypeFromName(f.type);
  if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat("--type: ", type.status().message()));
  s.ternary_type = *type;
  const std::string embd = !f.embd_type.empty() ? f.embd_type : (f.type == "f32" ? "f32" : "f16");
  absl::StatusOr<ggml::Type> et = synth::EmbdTypeFromName(embd);
  if (!et.ok()) return absl::InvalidArgumentError(absl::StrCat("--embd-type: ", et.status().message()));
  s.embd_type = *et;
  auto set = [&](const char* flag, int64_t v, int64_t& field) {
    if (a.Seen(flag)) field = v;
  };
  set("--n-vocab", f.n_vocab, s.n_vocab);
  s.tokenizer = f.tokenizer;
  if (!f.vocab.empty()) {
    if (a.Seen("--tokenizer")) return absl::InvalidArgumentError("--tokenizer and --vocab: give only one");
    absl::StatusOr<TokenizerData> vocab = tools::ReadVocabPack(f.vocab);
    if (!vocab.ok()) return absl::InvalidArgumentError(absl::StrCat("--vocab: ", vocab.status().message()));
    if (!a.Seen("--n-vocab")) s.n_vocab = static_cast<int64_t>(vocab->tokens.size());
    s.vocab = *std::move(vocab);
  }
  set("--n-embd", f.n_embd, s.n_embd);
  set("--n-layer", f.n_layer, s.n_layer);
  set("--n-head", f.n_head, s.n_head);
  set("--n-head-kv", f.n_head_kv, s.n_head_kv);
  set("--head-dim", f.head_dim, s.head_dim);
  set("--n-ff", f.n_ff, s.n_ff);
  set("--n-ctx", f.n_ctx, s.n_ctx);
  // Changing the head count without a head size keeps KV heads consistent.
  if (a.Seen("--n-head") && !a.Seen("--n-head-kv") && s.n_head % s.n_head_kv != 0) {
    s.n_head_kv = s.n_head;
  }
  if (a.Seen("--rope-base")) s.rope_base = f.rope_base;
  if (a.Seen("--rms-eps")) s.rms_eps = f.rms_eps;
  if (!f.activation.empty()) s.activation = f.activation;
  if (f.tied && f.untied) return absl::InvalidArgumentError("--tied and --untied: give only one");
  if (f.tied) s.tied = true;
  if (f.untied) s.tied = false;
  s.seed = f.seed;
  if (absl::Status st = synth::ValidateSpec(s); !st.ok()) return st;
  return s;
}

// Prints "[ 42%] 1.2 / 2.9 GiB  tensor 17/363 blk.1.ffn_up.weight" at most
// every half second (and at the end), on one rewritten stderr line.
class ProgressPrinter {
 public:
  void operator()(const synth::Progress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.bytes_done == p.bytes_total && p.tensors_done == p.tensors_total;
    if (!done && now - last_ < std::chrono::milliseconds(500)) return;
    last_ = now;
    // GiB for big models, MiB for small ones.
    const bool big = p.bytes_total >= (uint64_t{1} << 30);
    const double unit = big ? 1024.0 * 1024.0 * 1024.0 : 1024.0 * 1024.0;
    const double pct = p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) /
                                           static_cast<double>(p.bytes_total)
                                     : 100.0;
    std::fprintf(stderr, "\r%s: [%3.0f%%] %.2f / %.2f %s  tensor %zu/%zu %-28.*s", kProgram, pct,
                 static_cast<double>(p.bytes_done) / unit, static_cast<double>(p.bytes_total) / unit,
                 big ? "GiB" : "MiB", std::min(p.tensors_done + 1, p.tensors_total), p.tensors_total,
                 static_cast<int>(p.tensor.size()), p.tensor.data());
    if (done) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point last_{};
};

absl::Status Run(int argc, char** argv) {
  SynthFlags f;
  ArgParser args(kProgram,
                 "Writes a synthetic ternary model (random weights, real shapes) as GGUF.\n"
                 "Presets: " + absl::StrJoin(synth::PresetNames(), ", ") +
                     "; every hyperparameter flag overrides the preset.");
  AddFlags(args, f);
  if (absl::Status s = args.Parse(argc, argv); !s.ok()) return s;
  if (args.help_requested()) {
    std::fputs(args.Usage().c_str(), stdout);
    return absl::OkStatus();
  }
  if (f.out.empty()) return absl::InvalidArgumentError("--out: required (the GGUF file to write)");
  absl::StatusOr<synth::SynthSpec> spec = SpecFromFlags(f, args);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<uint64_t> bytes = synth::TensorDataBytes(*spec);
  if (!bytes.ok()) return bytes.status();
  if (!f.quiet) {
    std::fprintf(stderr,
                 "%s: %s arch=%s vocab=%lld embd=%lld layers=%lld heads=%lld/%lld ff=%lld "
                 "ctx=%lld type=%s embd-type=%s %s seed=%llu -> %s (%.3f GiB)\n",
                 kProgram, spec->name.c_str(), spec->arch.c_str(),
                 static_cast<long long>(spec->n_vocab), static_cast<long long>(spec->n_embd),
                 static_cast<long long>(spec->n_layer), static_cast<long long>(spec->n_head),
                 static_cast<long long>(spec->n_head_kv), static_cast<long long>(spec->n_ff),
                 static_cast<long long>(spec->n_ctx),
                 std::string(ggml::Traits(spec->ternary_type).name).c_str(),
                 std::string(ggml::Traits(spec->embd_type).name).c_str(),
                 spec->tied ? "tied" : "untied", static_cast<unsigned long long>(spec->seed),
                 f.out.c_str(), static_cast<double>(*bytes) / (1024.0 * 1024.0 * 1024.0));
  }
  ProgressPrinter printer;
  synth::ProgressFn progress = nullptr;
  if (!f.quiet) progress = [&](const synth::Progress& p) { printer(p); };
  return synth::WriteSynthModel(*spec, f.out, progress, f.threads);
}

}  // namespace
}  // namespace bitnet::cli

int main(int argc, char** argv) {
  const absl::Status s = bitnet::cli::Run(argc, argv);
  return s.ok() ? 0 : bitnet::cli::ReportError(bitnet::cli::kProgram, s);
}
