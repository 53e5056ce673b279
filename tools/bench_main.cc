// bitnet-bench: speed of the ternary matrix kernels on the reference shapes,
// against the two ceilings of this machine measured in the same run (a
// stream-read loop for memory bandwidth, a dot-product loop for int8 peak).
//
//   bitnet-bench                                  # everything (minutes)
//   bitnet-bench --models 2b --batches 1 --threads 1,2
//   bitnet-bench --models 2b,8b --json > bench.json
//   BITNET_KERNEL=avx2 bitnet-bench --models 2b --batches 1,64
//
// Each matrix is timed on fresh random weights in the kernels' packed layout;
// several copies are cycled so batch-1 runs stream from memory rather than
// from the 32 MB cache. Each of the --reps measurements is paired with a
// stream-read probe and an int8-peak probe taken just before it (this
// machine is shared: its ceilings move from second to second); the table
// shows medians of the times, of the probes and of the per-pair fractions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "kernels/activation_quant.h"
#include "kernels/kernel_variant.h"
#include "kernels/matmul.h"
#include "kernels/packed_ternary.h"
#include "kernels/roofline.h"
#include "kernels/ternary_matrix.h"
#include "kernels/ternary_tl.h"
#include "kernels/thread_pool.h"
#include "nlohmann/json.hpp"
#include "tools/bench_shapes.h"
#include "tools/cli_args.h"

namespace bitnet::bench {
namespace {

using kernels::ThreadPool;

constexpr char kProgram[] = "bitnet-bench";

struct Flags {
  std::string models = "2b,8b,70b,100b";
  std::string matrices;  // substring filter on "model.name"
  std::string batches = "1,8,64,512";
  std::string threads = "1,2";
  std::string act = "per-token";
  std::string family = "mac";
  // Short measurements, many of them: on a shared machine a short window
  // is often uninterrupted, and the median then shows the kernel's speed.
  float min_time = 0.005f;  // seconds per measurement
  int32_t reps = 15;
  int32_t rotate_mb = 256;
  int32_t stream_mb = 256;
  bool json = false;
};

absl::StatusOr<std::vector<int64_t>> ParseInts(const std::string& text, const char* flag) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", part, "' is not a positive integer list like 1,8,64"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty list"));
  return out;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A rows x cols ternary matrix with random codes, packed only (no row-major
// copy), one per-tensor scale.
kernels::TernaryMatrix RandomPacked(int64_t rows, int64_t cols, uint64_t seed) {
  kernels::TernaryMatrix w;
  w.rows = rows;
  w.cols = cols;
  w.scale_block = cols;
  w.scales = {0.37f};
  auto p = std::make_shared<kernels::PackedTernary>();
  kernels::AllocatePacked(rows, cols, cols, 1, p.get());
  uint64_t s = seed;
  uint64_t* words = reinterpret_cast<uint64_t*>(p->codes.data());
  for (size_t k = 0; k < p->codes.size() / 8; ++k) {
    s += 0x9e3779b97f4a7c15ull;  // splitmix64
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    // Fields 0..2 only: clear the high bit of any field that is 3.
    words[k] = z & ~((z & (z << 1)) & 0xAAAAAAAAAAAAAAAAull);
  }
  float* sc = reinterpret_cast<float*>(p->scales.data());
  for (int64_t k = 0; k < p->tiles * kernels::kTileRows; ++k) sc[k] = 0.37f;
  w.packed = std::move(p);
  return w;
}

struct Result {
  MatrixShape shape;
  int64_t batch = 0;
  int threads = 0;
  double seconds = 0;  // median per call
  double weight_gbs = 0, gops = 0;
  double stream_gbs = 0, peak_gops = 0;  // medians of the paired probes
  double line_us = 0;                     // median paired cache-line transfer (2+ threads)
  double frac_bw = 0, frac_peak = 0;     // medians of the per-pair fractions
  int64_t weight_bytes = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Ceilings measured right before each timing.
struct Probes {
  kernels::ReadBandwidthProbe* stream;
  kernels::KernelVariant variant;
  int64_t window;
};

// Times TernaryMatMul `reps` times (each at least min_time, cycling through
// the copies), each time right after the two probes.
Result TimeCalls(const std::vector<kernels::TernaryMatrix>& copies,
                 const kernels::QuantizedActs& x, std::vector<float>& y, ThreadPool& pool,
                 const Probes& probes, const Flags& f, Result r) {
  size_t next = 0;
  auto call = [&] {
    kernels::TernaryMatMul(copies[next], x, y.data(), pool);
    next = (next + 1) % copies.size();
  };
  call();  // warm-up (scratch buffers, page faults of y)
  const double bytes = static_cast<double>(r.weight_bytes);
  const double ops = 2.0 * static_cast<double>(r.shape.rows * r.shape.cols * r.batch);
  std::vector<double> secs, streams, peaks, lines, fbw, fpk;
  for (int rep = 0; rep < f.reps; ++rep) {
    // Where the threads sit decides a small product's hand-off, and on a VM
    // it changes from minute to minute: record it with every timing.
    if (pool.size() > 1) lines.push_back(kernels::MeasureLineTransfer(2000));
    streams.push_back(probes.stream->Measure(pool, probes.window));
    peaks.push_back(kernels::MeasureInt8Peak(pool, probes.variant, 1, int64_t{1} << 18));
    int calls = 0;
    const double t0 = Now();
    double dt = 0;
    do {
      call();
      ++calls;
      dt = Now() - t0;
    } while (dt < f.min_time);
    secs.push_back(dt / calls);
    fbw.push_back(bytes / secs.back() / 1e9 / streams.back());
    fpk.push_back(ops / secs.back() / 1e9 / peaks.back());
  }
  r.seconds = Median(secs);
  r.weight_gbs = bytes / r.seconds / 1e9;
  r.gops = ops / r.seconds / 1e9;
  r.stream_gbs = Median(streams);
  r.peak_gops = Median(peaks);
  if (!lines.empty()) r.line_us = Median(lines);
  r.frac_bw = Median(fbw);
  r.frac_peak = Median(fpk);
  return r;
}

// A table-lookup (T-MAC style) matrix with random bytes: the speed does not
// depend on the values.
kernels::TlPacked RandomTl(int64_t rows, int64_t cols, uint64_t seed) {
  kernels::TlPacked w;
  w.rows = rows;
  w.cols = cols;
  w.tiles = (rows + 15) / 16;
  w.groups = (cols + 15) / 16;
  w.codes.AllocateWeights(static_cast<size_t>(w.tiles * w.groups * 64));
  std::mt19937_64 rng(seed);
  uint64_t* words = reinterpret_cast<uint64_t*>(w.codes.data());
  for (size_t k = 0; k < w.codes.size() / 8; ++k) words[k] = rng();
  w.scales.assign(static_cast<size_t>(w.tiles * 16), 0.37f);
  return w;
}

// The table-lookup family at batch 1 on the calling thread (the comparison
// with the multiply-accumulate family; see docs/PERFORMANCE.md).
Result TimeTl(const std::vector<kernels::TlPacked>& copies, const kernels::QuantizedActs& x,
              std::vector<float>& y, ThreadPool& pool, const Probes& probes, const Flags& f,
              Result r) {
  std::vector<int16_t> tables;
  size_t next = 0;
  auto call = [&] {
    kernels::TlGemv(copies[next], x, probes.variant, y.data(), &tables);
    next = (next + 1) % copies.size();
  };
  call();
  const double bytes = static_cast<double>(r.weight_bytes);
  const double ops = 2.0 * static_cast<double>(r.shape.rows * r.shape.cols);
  std::vector<double> secs, streams, peaks, fbw, fpk;
  for (int rep = 0; rep < f.reps; ++rep) {
    streams.push_back(probes.stream->Measure(pool, probes.window));
    peaks.push_back(kernels::MeasureInt8Peak(pool, probes.variant, 1, int64_t{1} << 18));
    int calls = 0;
    const double t0 = Now();
    double dt = 0;
    do {
      call();
      ++calls;
      dt = Now() - t0;
    } while (dt < f.min_time);
    secs.push_back(dt / calls);
    fbw.push_back(bytes / secs.back() / 1e9 / streams.back());
    fpk.push_back(ops / secs.back() / 1e9 / peaks.back());
  }
  r.seconds = Median(secs);
  r.weight_gbs = bytes / r.seconds / 1e9;
  r.gops = ops / r.seconds / 1e9;
  r.stream_gbs = Median(streams);
  r.peak_gops = Median(peaks);
  r.frac_bw = Median(fbw);
  r.frac_peak = Median(fpk);
  return r;
}

std::string Human(double seconds) {
  if (seconds < 1e-3) return absl::StrCat(static_cast<int64_t>(seconds * 1e6 + 0.5), " us");
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f ms", seconds * 1e3);
  return buf;
}

int Run(const Flags& f) {
  auto batches = ParseInts(f.batches, "--batches");
  auto threads = ParseInts(f.threads, "--threads");
  if (!batches.ok()) return cli::ReportError(kProgram, batches.status());
  if (!threads.ok()) return cli::ReportError(kProgram, threads.status());
  auto act = kernels::ActQuantFromName(f.act);
  if (!act.ok()) return cli::ReportError(kProgram, act.status());
  const std::string env_error = kernels::KernelEnvError();
  if (!env_error.empty()) return cli::ReportError(kProgram, absl::InvalidArgumentError(env_error));
  std::vector<std::string> models = absl::StrSplit(f.models, ',', absl::SkipEmpty());
  std::vector<MatrixShape> shapes = ReferenceShapes(models);
  if (!f.matrices.empty()) {
    std::erase_if(shapes, [&](const MatrixShape& s) {
      return (s.model + "." + s.name).find(f.matrices) == std::string::npos;
    });
  }
  if (shapes.empty()) {
    return cli::ReportError(kProgram, absl::InvalidArgumentError(absl::StrCat(
        "--models/--matrices select no matrix; models are 2b, 8b, 70b, 100b and names look "
        "like 2b.attn_q, 8b.ffn_down, 2b.lm_head")));
  }
  const kernels::KernelVariant variant = kernels::ActiveKernelVariant();
  const bool tl = f.family == "tl";
  if (tl && (variant != kernels::KernelVariant::kAvx512 &&
             variant != kernels::KernelVariant::kAvx2 &&
             variant != kernels::KernelVariant::kScalar)) {
    return cli::ReportError(kProgram, absl::InvalidArgumentError(
        "--family tl runs with BITNET_KERNEL=scalar, avx2 or avx512 only"));
  }
  if (tl && (*batches != std::vector<int64_t>{1} || *threads != std::vector<int64_t>{1} ||
             *act != kernels::ActQuant::kPerToken)) {
    return cli::ReportError(kProgram, absl::InvalidArgumentError(
        "--family tl measures batch 1, one thread, per-token activations: pass "
        "--batches 1 --threads 1"));
  }

  // Ceilings per thread count: measured now (summary) and again before
  // every timing (the fractions).
  kernels::ReadBandwidthProbe probe(int64_t{f.stream_mb} << 20);
  const Probes probes{&probe, variant, int64_t{f.stream_mb} << 18};  // quarter windows
  std::vector<std::unique_ptr<ThreadPool>> pools;
  std::vector<double> stream, peak, overhead;
  for (int64_t t : *threads) {
    pools.push_back(std::make_unique<ThreadPool>(static_cast<int>(t)));
    std::vector<double> s;
    for (int k = 0; k < 8; ++k) s.push_back(probe.Measure(*pools.back(), probes.window));
    stream.push_back(Median(s));
    peak.push_back(kernels::MeasureInt8Peak(*pools.back(), variant, 7));
    overhead.push_back(kernels::MeasureJobOverhead(*pools.back()));
    if (!f.json) {
      std::printf("threads %lld: stream-read %.1f GB/s, int8 peak (%s) %.0f GOPS, "
                  "empty 10-chunk job %.2f us\n",
                  static_cast<long long>(t), stream.back(),
                  std::string(kernels::KernelVariantName(variant)).c_str(), peak.back(),
                  overhead.back());
    }
  }
  if (!f.json) {
    std::printf("xfer: us for one cache line to pass between two threads, measured before "
                "every multi-thread timing (each call hands its job out and its result back)\n");
    std::printf("\n%-6s %-12s %7s %6s %5s %3s %10s %7s %7s %7s %7s %5s %5s %6s\n", "model",
                "matrix", "rows", "cols", "batch", "thr", "time", "GB/s", "stream", "GOPS",
                "peak", "%bw", "%pk", "xfer");
    std::fflush(stdout);
  }

  std::vector<Result> results;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  for (const MatrixShape& shape : shapes) {
    std::vector<kernels::TernaryMatrix> copies;
    std::vector<kernels::TlPacked> tl_copies;
    int64_t bytes = 0;
    if (tl) {
      tl_copies.push_back(RandomTl(shape.rows, shape.cols, 1));
      bytes = static_cast<int64_t>(tl_copies[0].codes.size());
    } else {
      copies.push_back(RandomPacked(shape.rows, shape.cols, 1));
      bytes = static_cast<int64_t>(copies[0].packed->codes.size());
    }
    const int64_t ncopies =
        std::max<int64_t>(1, ((int64_t{f.rotate_mb} << 20) + bytes - 1) / bytes);
    for (int64_t c = 1; c < ncopies; ++c) {
      if (tl) {
        tl_copies.push_back(RandomTl(shape.rows, shape.cols, c + 1));
      } else {
        copies.push_back(RandomPacked(shape.rows, shape.cols, c + 1));
      }
    }
    for (int64_t batch : *batches) {
      std::vector<float> xf(static_cast<size_t>(batch * shape.cols));
      for (float& v : xf) v = normal(rng);
      kernels::QuantizedActs x;
      kernels::QuantizeActs(xf.data(), batch, shape.cols, *act, &x);
      std::vector<float> y(static_cast<size_t>(batch * shape.rows));
      for (size_t ti = 0; ti < threads->size(); ++ti) {
        Result r;
        r.shape = shape;
        r.batch = batch;
        r.threads = static_cast<int>((*threads)[ti]);
        r.weight_bytes = bytes;
        r = tl ? TimeTl(tl_copies, x, y, *pools[ti], probes, f, r)
               : TimeCalls(copies, x, y, *pools[ti], probes, f, r);
        results.push_back(r);
        if (!f.json) {
          const std::string xfer =
              r.threads > 1 ? absl::StrFormat("%.2f", r.line_us) : std::string("-");
          std::printf("%-6s %-12s %7lld %6lld %5lld %3d %10s %7.1f %7.1f %7.1f %7.0f %4.0f%% %4.0f%% %6s\n",
                      shape.model.c_str(), shape.name.c_str(),
                      static_cast<long long>(shape.rows), static_cast<long long>(shape.cols),
                      static_cast<long long>(batch), r.threads, Human(r.seconds).c_str(),
                      r.weight_gbs, r.stream_gbs, r.gops, r.peak_gops, 100 * r.frac_bw,
                      100 * r.frac_peak, xfer.c_str());
          std::fflush(stdout);
        }
      }
    }
  }
  if (f.json) {
    nlohmann::json j;
    j["variant"] = std::string(kernels::KernelVariantName(variant));
    j["act_quant"] = f.act;
    j["family"] = f.family;
    j["note"] =
        "ceilings: measured at start (below) and before every timing (per result); fractions "
        "are medians of per-pair ratios";
    nlohmann::json ceilings = nlohmann::json::array();
    for (size_t ti = 0; ti < threads->size(); ++ti) {
      ceilings.push_back({{"threads", (*threads)[ti]},
                          {"stream_read_gbs", stream[ti]},
                          {"int8_peak_gops", peak[ti]},
                          {"empty_job_us", overhead[ti]}});
    }
    j["ceilings"] = ceilings;
    nlohmann::json rows = nlohmann::json::array();
    for (const Result& r : results) {
      rows.push_back({{"model", r.shape.model},
                      {"matrix", r.shape.name},
                      {"rows", r.shape.rows},
                      {"cols", r.shape.cols},
                      {"batch", r.batch},
                      {"threads", r.threads},
                      {"seconds", r.seconds},
                      {"weight_bytes", r.weight_bytes},
                      {"weight_gbs", r.weight_gbs},
                      {"int8_gops", r.gops},
                      {"stream_read_gbs", r.stream_gbs},
                      {"int8_peak_gops", r.peak_gops},
                      {"fraction_of_stream_read", r.frac_bw},
                      {"fraction_of_int8_peak", r.frac_peak},
                      {"line_transfer_us", r.line_us}});
    }
    j["results"] = rows;
    std::printf("%s\n", j.dump(1).c_str());
  }
  return 0;
}

}  // namespace
}  // namespace bitnet::bench

int main(int argc, char** argv) {
  using bitnet::bench::Flags;
  Flags f;
  bitnet::cli::ArgParser p(bitnet::bench::kProgram,
                           "Times the ternary matrix kernels on the reference shapes against "
                           "this machine's stream-read bandwidth and int8 peak.");
  p.String("--models", &f.models, "comma-separated models: 2b, 8b, 70b, 100b", "LIST");
  p.String("--matrices", &f.matrices,
           "only matrices whose 'model.name' contains this (e.g. 2b.attn_q, lm_head)");
  p.String("--batches", &f.batches, "comma-separated batch sizes (tokens per call)", "LIST");
  p.String("--threads", &f.threads, "comma-separated thread counts", "LIST");
  p.Choice("--act", &f.act, {"per-token", "q8k"}, "activation quantization");
  p.Choice("--family", &f.family, {"mac", "tl"},
           "kernel family: mac (multiply-accumulate, what the engine uses) or tl (table "
           "lookup, batch 1 only, for comparison)");
  p.Float("--min-time", &f.min_time, "seconds per measurement", 0.001f, 60.0f);
  p.Int32("--reps", &f.reps, "measurements per configuration (median reported)", 1, 1000);
  p.Int32("--rotate-mb", &f.rotate_mb,
          "cycle copies of each matrix until they fill this many MiB (defeats the cache)", 1,
          1 << 16);
  p.Int32("--stream-mb", &f.stream_mb,
          "buffer of the stream-read probe, MiB (each probe reads a quarter of it)", 128,
          1 << 16);
  p.Flag("--json", &f.json, "print one JSON object instead of the table");
  if (absl::Status s = p.Parse(argc, argv); !s.ok()) {
    return bitnet::cli::ReportError(bitnet::bench::kProgram, s);
  }
  if (p.help_requested()) {
    std::printf("%s", p.Usage().c_str());
    return 0;
  }
  return bitnet::bench::Run(f);
}
