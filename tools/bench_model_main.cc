// bitnet-bench-model: whole-model decode and prefill speed against this
// machine's two ceilings, measured in the same run.
//
//   bitnet-bench-model                                   # 2B-4T shape, synthesized to a temp file
//   bitnet-bench-model --synth-out /tmp/2b.gguf          # ... and kept for later runs
//   bitnet-bench-model --model /tmp/2b.gguf --threads 1,2 --json
//   bitnet-bench-model --n-layer 4 --prefill 128         # a quick look
//
// Decode: after a short prompt, greedy steps of one token (Forward + Logits)
// on the StageEngine; each repetition is paired with a stream-read probe
// taken just before it. A token must read every ternary weight, the lm_head
// and the sequence's KV cache, so tokens/s <= read bandwidth / those bytes:
// the table shows that ceiling and the fraction reached (median of the
// per-repetition fractions). Prefill: one batch of --prefill tokens; int8
// GOPS of the ternary products (2 ops per weight per token) against the
// int8-peak probe of the active kernel variant.
#include <algorithm>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/stage_engine.h"
#include "kernels/kernel_variant.h"
#include "kernels/packed_ternary.h"
#include "kernels/roofline.h"
#include "kernels/thread_pool.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "nlohmann/json.hpp"
#include "tools/cli_args.h"
#include "tools/synth_model.h"

namespace bitnet::bench {
namespace {

constexpr char kProgram[] = "bitnet-bench-model";

struct Flags {
  std::string model, synth_out, type = "i2_s", embd_type = "f16", threads = "1,2";
  std::string act = "per-token", kv = "f16";
  int64_t n_layer = 0, n_vocab = 0;
  int32_t prompt = 16, decode = 32, prefill = 512, reps = 5, prefill_reps = 3;
  int32_t stream_mb = 1024;
  bool json = false, quiet = false, no_prefill = false, no_decode = false;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double v = -1.0;
  in >> v;
  return v;
}

absl::StatusOr<std::vector<int>> ParseThreads(const std::string& text) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1 || v > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("--threads: '", part, "' is not a thread count like 1,2"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError("--threads: empty list");
  return out;
}

// What one decode token reads, by part.
struct TokenBytes {
  double ternary = 0;  // packed ternary codes + scales
  double dense = 0;    // non-ternary layer weights
  double head = 0;     // lm_head (the tied embedding in its stored form)
  double embd_row = 0;
  double kv_per_pos = 0;  // K and V of one cached position, all layers
  uint64_t ternary_weights = 0;  // rows * cols of the ternary products
};

TokenBytes CountBytes(const ModelWeights& w, KvType kv) {
  TokenBytes b;
  for (const LayerWeights& l : w.layers) {
    for (const Linear* lin : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (const auto* t = std::get_if<kernels::TernaryMatrix>(&lin->w)) {
        b.ternary += t->packed ? static_cast<double>(t->packed->memory_bytes())
                               : static_cast<double>(t->memory_bytes());
        b.ternary_weights += static_cast<uint64_t>(t->rows * t->cols);
      } else {
        b.dense += static_cast<double>(std::get<kernels::DenseMatrix>(lin->w).memory_bytes());
      }
    }
  }
  if (const kernels::DenseMatrix* h = w.head()) b.head = static_cast<double>(h->memory_bytes());
  if (w.token_embd) {
    b.embd_row = static_cast<double>(w.token_embd->memory_bytes()) /
                 static_cast<double>(std::max<int64_t>(w.token_embd->rows, 1));
  }
  const double elem = kv == KvType::kF16 ? 2.0 : 4.0;
  b.kv_per_pos = static_cast<double>(w.layers.size()) * 2.0 *
                 static_cast<double>(w.config.kv_dim()) * elem;
  return b;
}

struct Row {
  int threads = 0;
  // Decode.
  double stream_gbs = 0, bytes_per_token = 0, ceiling_tps = 0, decode_tps = 0, decode_frac = 0;
  double line_us = 0;  // cache-line transfer between two threads (2+ threads)
  // Prefill.
  double peak_gops = 0, prefill_tps = 0, prefill_gops = 0, prefill_frac = 0;
};

TokenId Argmax(const std::vector<float>& v) {
  return static_cast<TokenId>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::vector<TokenId> PromptTokens(int64_t n, int64_t vocab) {
  std::vector<TokenId> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<TokenId>((1 + 7919 * i) % std::min<int64_t>(vocab, 256));
  return t;
}

// Feeds `tokens` to `seq` starting at `pos` in one batch; logits of the last.
absl::Status Feed(StageEngine& e, SeqId seq, int32_t pos, const std::vector<TokenId>& tokens,
                  std::vector<BatchRow>& rows, std::vector<float>& hidden,
                  std::vector<float>& logits) {
  rows.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {
    rows.push_back({seq, pos + static_cast<int32_t>(i), tokens[i], i + 1 == tokens.size()});
  }
  if (absl::Status s = e.Forward(rows, hidden); !s.ok()) return s;
  return e.Logits(rows, hidden, logits);
}

absl::StatusOr<Row> Measure(const std::shared_ptr<const ModelWeights>& w, const Flags& f,
                            int threads, EngineOptions opt, const TokenBytes& bytes,
                            kernels::ReadBandwidthProbe& probe) {
  opt.n_threads = threads;
  absl::StatusOr<std::unique_ptr<StageEngine>> created = StageEngine::Create(w, opt);
  if (!created.ok()) return created.status();
  StageEngine& e = **created;
  kernels::ThreadPool pool(threads);  // for the probes, sized like the engine's
  const int64_t window = (int64_t{f.stream_mb} << 20) / 4;
  const kernels::KernelVariant variant = kernels::ActiveKernelVariant();
  Row r;
  r.threads = threads;
  std::vector<BatchRow> rows;
  std::vector<float> hidden, logits;
  SeqId seq = 1;

  if (!f.no_decode) {
    // KV read per token: the cache up to the middle of the decode window.
    const double mid = f.prompt + 0.5 * f.decode;
    r.bytes_per_token = bytes.ternary + bytes.dense + bytes.head + bytes.embd_row +
                        bytes.kv_per_pos * mid;
    std::vector<double> bw, lines, tps, frac;
    const std::vector<TokenId> prompt = PromptTokens(f.prompt, w->config.n_vocab);
    for (int rep = 0; rep < f.reps; ++rep, ++seq) {
      if (absl::Status s = Feed(e, seq, 0, prompt, rows, hidden, logits); !s.ok()) return s;
      // Where the two vCPUs sit sets the cost of every hand-off (see
      // bitnet-bench's xfer column): record it with each repetition.
      if (threads > 1) lines.push_back(kernels::MeasureLineTransfer(2000));
      bw.push_back(probe.Measure(pool, window));
      TokenId next = Argmax(logits);
      const double t0 = Now();
      for (int k = 0; k < f.decode; ++k) {
        if (absl::Status s = Feed(e, seq, f.prompt + k, {next}, rows, hidden, logits); !s.ok()) {
          return s;
        }
        next = Argmax(logits);
      }
      tps.push_back(f.decode / (Now() - t0));
      frac.push_back(tps.back() / (bw.back() * 1e9 / r.bytes_per_token));
      e.FreeSequence(seq);
      if (!f.quiet) {
        std::fprintf(stderr, "  %d thread(s) decode rep %d: %.2f tok/s, stream %.1f GB/s\n",
                     threads, rep + 1, tps.back(), bw.back());
      }
    }
    r.stream_gbs = Median(bw);
    if (!lines.empty()) r.line_us = Median(lines);
    r.ceiling_tps = r.stream_gbs * 1e9 / r.bytes_per_token;
    r.decode_tps = Median(tps);
    r.decode_frac = Median(frac);
  }

  if (!f.no_prefill) {
    const double ops = 2.0 * static_cast<double>(bytes.ternary_weights) * f.prefill;
    std::vector<double> peak, tps, gops, frac;
    const std::vector<TokenId> prompt = PromptTokens(f.prefill, w->config.n_vocab);
    for (int rep = 0; rep < f.prefill_reps; ++rep, ++seq) {
      peak.push_back(kernels::MeasureInt8Peak(pool, variant, 3));
      const double t0 = Now();
      if (absl::Status s = Feed(e, seq, 0, prompt, rows, hidden, logits); !s.ok()) return s;
      const double dt = Now() - t0;
      e.FreeSequence(seq);
      tps.push_back(f.prefill / dt);
      gops.push_back(ops / dt / 1e9);
      frac.push_back(gops.back() / peak.back());
      if (!f.quiet) {
        std::fprintf(stderr, "  %d thread(s) prefill rep %d: %.1f tok/s, %.0f GOPS (peak %.0f)\n",
                     threads, rep + 1, tps.back(), gops.back(), peak.back());
      }
    }
    r.peak_gops = Median(peak);
    r.prefill_tps = Median(tps);
    r.prefill_gops = Median(gops);
    r.prefill_frac = Median(frac);
  }
  return r;
}

// The model to measure: --model, or a 2B-4T-shaped synthetic one written
// with the project's generator (kept at --synth-out, else removed).
absl::StatusOr<std::string> ModelPath(const Flags& f, bool* temporary) {
  *temporary = false;
  if (!f.model.empty()) return f.model;
  absl::StatusOr<synth::SynthSpec> spec = synth::Preset("2b4t");
  if (!spec.ok()) return spec.status();
  absl::StatusOr<ggml::Type> type = synth::TernaryTypeFromName(f.type);
  if (!type.ok()) return absl::InvalidArgumentError(absl::StrCat("--type: ", type.status().message()));
  absl::StatusOr<ggml::Type> et = synth::EmbdTypeFromName(f.embd_type);
  if (!et.ok()) return absl::InvalidArgumentError(absl::StrCat("--embd-type: ", et.status().message()));
  spec->ternary_type = *type;
  spec->embd_type = *et;
  if (f.n_layer > 0) spec->n_layer = f.n_layer;
  if (f.n_vocab > 0) spec->n_vocab = f.n_vocab;
  std::string path = f.synth_out;
  if (path.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    path = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/bitnet-bench-model-",
                        ::getpid(), ".gguf");
    *temporary = true;
  }
  if (!f.quiet) std::fprintf(stderr, "writing a 2B-4T-shaped %s model to %s ...\n", f.type.c_str(), path.c_str());
  synth::ProgressFn progress = nullptr;
  if (!f.quiet) {
    progress = [last = -1](const synth::Progress& p) mutable {
      const int pct = p.bytes_total ? static_cast<int>(100 * p.bytes_done / p.bytes_total) : 100;
      if (pct / 10 != last / 10) {
        std::fprintf(stderr, "  %d%%\n", pct);
        last = pct;
      }
    };
  }
  if (absl::Status s = synth::WriteSynthModel(*spec, path, progress); !s.ok()) return s;
  return path;
}

void PrintTable(const std::vector<Row>& rows, const ModelWeights& w, const TokenBytes& b,
                const Flags& f, double load_before, double load_after) {
  const ModelConfig& c = w.config;
  std::printf("model: %s, %lld layers, hidden %lld, %lld/%lld heads, FFN %lld, vocab %lld\n",
              c.arch_name.c_str(), static_cast<long long>(c.n_layer),
              static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head),
              static_cast<long long>(c.n_head_kv), static_cast<long long>(c.n_ff),
              static_cast<long long>(c.n_vocab));
  std::printf("kernel variant: %s; activations %s; KV cache %s; load average %.2f -> %.2f\n",
              std::string(kernels::KernelVariantName(kernels::ActiveKernelVariant())).c_str(),
              f.act.c_str(), f.kv.c_str(), load_before, load_after);
  std::printf("bytes per token: ternary %.1f MB + lm_head %.1f MB (%s) + other dense %.1f MB + "
              "KV %.2f MB (at position %.0f)\n",
              b.ternary / 1e6, b.head / 1e6,
              w.head() ? kernels::DenseFormatName(w.head()->format) : "-", b.dense / 1e6,
              b.kv_per_pos * (f.prompt + 0.5 * f.decode) / 1e6, f.prompt + 0.5 * f.decode);
  if (!f.no_decode) {
    std::printf("\ndecode (batch 1, after a %d-token prompt, %d tokens, median of %d)\n",
                f.prompt, f.decode, f.reps);
    std::printf("%7s | %11s | %10s | %13s | %11s | %8s | %7s\n", "threads", "stream GB/s",
                "MB/token", "ceiling tok/s", "tok/s", "fraction", "xfer us");
    for (const Row& r : rows) {
      const std::string xfer =
          r.threads > 1 ? absl::StrFormat("%.2f", r.line_us) : std::string("-");
      std::printf("%7d | %11.1f | %10.1f | %13.1f | %11.2f | %7.1f%% | %7s\n", r.threads,
                  r.stream_gbs, r.bytes_per_token / 1e6, r.ceiling_tps, r.decode_tps,
                  100 * r.decode_frac, xfer.c_str());
    }
    std::printf("(xfer: us for one cache line to pass between two threads, measured with each "
                "repetition)\n");
  }
  if (!f.no_prefill) {
    std::printf("\nprefill (one batch of %d tokens, median of %d; int8 ops = 2 x %.2fG ternary "
                "weights x tokens)\n",
                f.prefill, f.prefill_reps, static_cast<double>(b.ternary_weights) / 1e9);
    std::printf("%7s | %14s | %11s | %11s | %8s\n", "threads", "int8 peak GOPS", "tok/s", "GOPS",
                "fraction");
    for (const Row& r : rows) {
      std::printf("%7d | %14.0f | %11.1f | %11.1f | %7.1f%%\n", r.threads, r.peak_gops,
                  r.prefill_tps, r.prefill_gops, 100 * r.prefill_frac);
    }
  }
}

void PrintJson(const std::vector<Row>& rows, const ModelWeights& w, const TokenBytes& b,
               const Flags& f, double load_before, double load_after) {
  nlohmann::json j;
  const ModelConfig& c = w.config;
  j["model"] = {{"arch", c.arch_name}, {"n_layer", c.n_layer}, {"n_embd", c.n_embd},
                {"n_head", c.n_head}, {"n_head_kv", c.n_head_kv}, {"n_ff", c.n_ff},
                {"n_vocab", c.n_vocab}};
  j["kernel_variant"] = std::string(kernels::KernelVariantName(kernels::ActiveKernelVariant()));
  j["act_quant"] = f.act;
  j["kv_type"] = f.kv;
  j["load_average"] = {load_before, load_after};
  j["bytes"] = {{"ternary", b.ternary}, {"lm_head", b.head}, {"dense", b.dense},
                {"embd_row", b.embd_row}, {"kv_per_position", b.kv_per_pos},
                {"lm_head_format", w.head() ? kernels::DenseFormatName(w.head()->format) : ""}};
  j["ternary_weights"] = b.ternary_weights;
  j["settings"] = {{"prompt", f.prompt}, {"decode", f.decode}, {"prefill", f.prefill},
                   {"reps", f.reps}, {"prefill_reps", f.prefill_reps}};
  for (const Row& r : rows) {
    nlohmann::json o = {{"threads", r.threads}};
    if (!f.no_decode) {
      o["decode"] = {{"stream_gbs", r.stream_gbs}, {"bytes_per_token", r.bytes_per_token},
                     {"ceiling_tokens_per_s", r.ceiling_tps}, {"tokens_per_s", r.decode_tps},
                     {"fraction_of_ceiling", r.decode_frac}, {"line_transfer_us", r.line_us}};
    }
    if (!f.no_prefill) {
      o["prefill"] = {{"int8_peak_gops", r.peak_gops}, {"tokens_per_s", r.prefill_tps},
                      {"gops", r.prefill_gops}, {"fraction_of_peak", r.prefill_frac}};
    }
    j["results"].push_back(o);
  }
  std::printf("%s\n", j.dump(2).c_str());
}

void AddFlags(cli::ArgParser& p, Flags& f) {
  p.String("--model", &f.model, "GGUF model to measure (default: synthesize a 2B-4T shape)", "FILE");
  p.String("--synth-out", &f.synth_out, "keep the synthesized model at FILE (reuse with --model)",
           "FILE");
  p.Choice("--type", &f.type, {"tq1_0", "tq2_0", "i2_s"}, "synthesized ternary type");
  p.Choice("--embd-type", &f.embd_type, {"f32", "f16", "q8_0", "q6_k"},
           "synthesized embedding / lm_head type (2B-4T's GGUF: f16; llama.cpp's TQ files: q6_k)");
  p.Int("--n-layer", &f.n_layer, "synthesize this many layers instead of 30", 0, 1000);
  p.Int("--n-vocab", &f.n_vocab, "synthesize this vocabulary instead of 128256", 0, 1 << 20);
  p.String("--threads", &f.threads, "thread counts to measure, e.g. 1,2", "LIST");
  p.Choice("--act", &f.act, {"per-token", "q8k"}, "activation quantization of the ternary products");
  p.Choice("--kv", &f.kv, {"f16", "f32"}, "KV cache type");
  p.Int32("--prompt", &f.prompt, "prompt tokens before the decode steps", 1, 4096);
  p.Int32("--decode", &f.decode, "decode steps per repetition", 1, 4096);
  p.Int32("--prefill", &f.prefill, "prefill batch size", 1, 4096);
  p.Int32("--reps", &f.reps, "decode repetitions", 1, 1000);
  p.Int32("--prefill-reps", &f.prefill_reps, "prefill repetitions", 1, 1000);
  p.Int32("--stream-mb", &f.stream_mb, "stream-read probe buffer (MiB; windows are a quarter)", 64,
          1 << 16);
  p.Flag("--no-prefill", &f.no_prefill, "skip the prefill measurement");
  p.Flag("--no-decode", &f.no_decode, "skip the decode measurement");
  p.Flag("--json", &f.json, "print JSON instead of tables");
  p.Flag("-q,--quiet", &f.quiet, "no progress on stderr");
}

int Run(int argc, char** argv) {
  cli::ArgParser p(kProgram, "Whole-model decode and prefill speed against the measured ceilings.");
  Flags f;
  AddFlags(p, f);
  if (absl::Status s = p.Parse(argc, argv); !s.ok()) return cli::ReportError(kProgram, s);
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return 0;
  }
  absl::StatusOr<std::vector<int>> threads = ParseThreads(f.threads);
  if (!threads.ok()) return cli::ReportError(kProgram, threads.status());
  if (std::string err = kernels::KernelEnvError(); !err.empty()) {
    return cli::ReportError(kProgram, absl::InvalidArgumentError(err));
  }
  absl::StatusOr<kernels::ActQuant> act = kernels::ActQuantFromName(f.act);
  if (!act.ok()) return cli::ReportError(kProgram, act.status());
  absl::StatusOr<KvType> kv = KvTypeFromName(f.kv);
  if (!kv.ok()) return cli::ReportError(kProgram, kv.status());
  if (f.model.empty() && f.n_layer == 0 && f.n_vocab == 0 && f.synth_out.empty() && !f.quiet) {
    std::fprintf(stderr, "(tip: --synth-out FILE keeps the model for later runs with --model)\n");
  }

  const double load_before = LoadAverage();
  bool temporary = false;
  absl::StatusOr<std::string> path = ModelPath(f, &temporary);
  if (!path.ok()) return cli::ReportError(kProgram, path.status());
  absl::StatusOr<std::unique_ptr<gguf::File>> file = gguf::File::Open(*path);
  if (temporary) std::remove(path->c_str());  // the open mapping keeps the data
  if (!file.ok()) return cli::ReportError(kProgram, file.status());
  if (!f.quiet) std::fprintf(stderr, "loading %s ...\n", path->c_str());
  absl::StatusOr<std::shared_ptr<const ModelWeights>> w = ModelWeights::Load(**file);
  if (!w.ok()) return cli::ReportError(kProgram, w.status());
  file->reset();  // weights are converted; drop the mapping
  const int64_t need = std::max(f.prompt + f.decode, f.prefill);
  if (need > (*w)->config.n_ctx_train) {
    return cli::ReportError(kProgram, absl::InvalidArgumentError(absl::StrCat(
        "--prompt + --decode and --prefill must fit the model's context of ",
        (*w)->config.n_ctx_train, " positions")));
  }

  EngineOptions opt;
  opt.act_quant = *act;
  opt.kv_type = *kv;
  const TokenBytes bytes = CountBytes(**w, *kv);
  kernels::ReadBandwidthProbe probe(int64_t{f.stream_mb} << 20);
  std::vector<Row> rows;
  for (int t : *threads) {
    if (!f.quiet) std::fprintf(stderr, "measuring with %d thread(s) ...\n", t);
    absl::StatusOr<Row> r = Measure(*w, f, t, opt, bytes, probe);
    if (!r.ok()) return cli::ReportError(kProgram, r.status());
    rows.push_back(*r);
  }
  const double load_after = LoadAverage();
  if (f.json) {
    PrintJson(rows, **w, bytes, f, load_before, load_after);
  } else {
    PrintTable(rows, **w, bytes, f, load_before, load_after);
  }
  return 0;
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) { return bitnet::bench::Run(argc, argv); }
