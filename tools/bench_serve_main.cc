// bitnet-bench-serve: load and accuracy benchmarks of the serving path.
//
// Load (against a running server, or self-hosted with in-process workers):
//   bitnet-bench-serve --server host:port --streams 1,2,8,16
//   bitnet-bench-serve --model m.gguf --stages 1,2 --threads 1 --streams 1,2,8,16
// prints, per (stages, streams): time to first token, inter-token latency
// p50/p99 and aggregate tokens/s, then the derived numbers: per-hop overhead
// ((ITL(k stages) - ITL(1 stage)) / (k - 1) for a lone stream), k-stage vs
// 1-node single-stream speed, and N streams vs 1 on the same pipeline. ITL
// mean is the per-token time of a stream (tokens arriving in one message
// count as zero gaps in the percentiles).
//
// Wire accuracy (in process, no network): the effect of the activation wire
// format on the logits, against fp32:
//   bitnet-bench-serve --model m.gguf --wire_accuracy --stages 2 --tokens 256
// prints the max |logit difference| under teacher forcing and how long greedy
// generations agree.
//
// --json prints one JSON document instead of the tables.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "coordinator/coordinator.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"
#include "serving/inference_client.h"
#include "serving/local_pipeline.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, server, "", "benchmark this running server (host:port)");
ABSL_FLAG(std::string, model, "", "self-host this model (in-process coordinator + workers)");
ABSL_FLAG(std::string, stages, "1,2", "self-host: pipeline stage counts to compare");
ABSL_FLAG(int, threads, 1, "self-host: compute threads per stage");
ABSL_FLAG(std::string, streams, "1,2,8,16", "concurrent streaming clients to try");
ABSL_FLAG(int, max_tokens, 64, "tokens each request generates (EOS ignored)");
ABSL_FLAG(int, prompt_len, 16, "prompt tokens per request");
ABSL_FLAG(int, rounds, 2, "requests per client per measurement");
ABSL_FLAG(std::string, wire, "int8", "self-host: activation wire format");
ABSL_FLAG(bool, wire_accuracy, false, "measure wire formats against fp32 instead of load");
ABSL_FLAG(int, tokens, 128, "wire accuracy: generated tokens per prompt");
ABSL_FLAG(int, prompts, 4, "wire accuracy: prompts (random token ids, seeded)");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");

namespace {

using bitnet::serving::InferenceClient;

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(idx));
  const size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

struct LoadPoint {
  int stages = 0;
  int streams = 0;
  double ttft_p50_ms = 0, itl_p50_ms = 0, itl_p99_ms = 0, itl_mean_ms = 0, tokens_per_s = 0;
  // From the coordinator's counters: mean micro-batch round trip, its
  // compute part, and the average cost of one hop.
  double batch_rtt_ms = 0, batch_compute_ms = 0, hop_ms = 0;
  int64_t tokens = 0;
};

std::vector<int32_t> RandomPrompt(int len, int64_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, static_cast<int32_t>(std::min<int64_t>(n_vocab, 250)) - 1);
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = dist(rng);
  return p;
}

bitnet::v1::ClusterStatus ClusterCounters(const std::string& address) {
  InferenceClient client(address);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  bitnet::v1::ClusterStatus status;
  (void)client.Connect();  // else the call says why
  (void)client.cluster().GetClusterStatus(&ctx, bitnet::v1::GetClusterStatusRequest(), &status);
  return status;
}

// `streams` clients, each sending `rounds` requests back to back.
LoadPoint MeasureLoad(const std::string& address, int stages, int streams, int64_t n_vocab) {
  const bitnet::v1::ClusterStatus before = ClusterCounters(address);
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  std::vector<std::vector<double>> ttft(static_cast<size_t>(streams)), itl(static_cast<size_t>(streams));
  std::vector<int64_t> tokens(static_cast<size_t>(streams), 0);
  std::vector<std::string> errors(static_cast<size_t>(streams));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < streams; ++c) {
    threads.emplace_back([&, c] {
      InferenceClient client(address);
      for (int r = 0; r < rounds; ++r) {
        bitnet::v1::GenerateRequest req;
        for (int32_t t : RandomPrompt(absl::GetFlag(FLAGS_prompt_len), n_vocab,
                                      static_cast<uint32_t>(c * 1000 + r))) {
          req.mutable_prompt_tokens()->add_ids(t);
        }
        req.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
        req.set_ignore_eos(true);
        req.mutable_sampling()->set_temperature(0);
        auto result = client.Generate(req);
        if (!result.status.ok()) {
          errors[static_cast<size_t>(c)] = result.status.ToString();
          return;
        }
        const auto& t = result.token_arrival_ms;
        if (!t.empty()) ttft[static_cast<size_t>(c)].push_back(t[0]);
        for (size_t i = 1; i < t.size(); ++i) itl[static_cast<size_t>(c)].push_back(t[i] - t[i - 1]);
        tokens[static_cast<size_t>(c)] += static_cast<int64_t>(t.size());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& e : errors) {
    if (!e.empty()) std::fprintf(stderr, "bitnet-bench-serve: a request failed: %s\n", e.c_str());
  }
  LoadPoint p;
  p.stages = stages;
  p.streams = streams;
  std::vector<double> all_ttft, all_itl;
  for (int c = 0; c < streams; ++c) {
    all_ttft.insert(all_ttft.end(), ttft[static_cast<size_t>(c)].begin(), ttft[static_cast<size_t>(c)].end());
    all_itl.insert(all_itl.end(), itl[static_cast<size_t>(c)].begin(), itl[static_cast<size_t>(c)].end());
    p.tokens += tokens[static_cast<size_t>(c)];
  }
  p.ttft_p50_ms = Percentile(all_ttft, 0.5);
  p.itl_p50_ms = Percentile(all_itl, 0.5);
  p.itl_p99_ms = Percentile(all_itl, 0.99);
  // Tokens that arrive in one message have a zero gap; the mean is the honest
  // per-token time of a stream.
  p.itl_mean_ms = all_itl.empty() ? 0
                                  : std::accumulate(all_itl.begin(), all_itl.end(), 0.0) /
                                        static_cast<double>(all_itl.size());
  p.tokens_per_s = secs > 0 ? static_cast<double>(p.tokens) / secs : 0;
  const bitnet::v1::ClusterStatus after = ClusterCounters(address);
  const double batches = static_cast<double>(after.batches_completed() - before.batches_completed());
  if (batches > 0) {
    p.batch_rtt_ms =
        1e3 * (after.batch_round_trip_seconds() - before.batch_round_trip_seconds()) / batches;
    p.batch_compute_ms =
        1e3 * (after.batch_compute_seconds() - before.batch_compute_seconds()) / batches;
    p.hop_ms = (p.batch_rtt_ms - p.batch_compute_ms) / (after.n_stages() + 1);
  }
  if (p.stages == 0) p.stages = after.n_stages();
  return p;
}

// In-process coordinator + `stages` workers, as bitnet-serve runs them.
struct SelfHosted {
  std::unique_ptr<bitnet::coordinator::Coordinator> coordinator;
  std::vector<std::unique_ptr<bitnet::worker::Worker>> workers;
  std::string address;
  ~SelfHosted() {
    if (coordinator) coordinator->Shutdown();
    for (auto& w : workers) w->Shutdown();
  }
};

absl::StatusOr<std::unique_ptr<SelfHosted>> StartSelfHosted(const std::string& model, int stages) {
  auto h = std::make_unique<SelfHosted>();
  bitnet::coordinator::CoordinatorOptions co;
  co.model_path = model;
  co.listen = "127.0.0.1:0";
  co.min_workers = stages;
  co.wire = absl::GetFlag(FLAGS_wire);
  co.quiet = true;
  co.scheduler.max_active = 64;
  auto c = bitnet::coordinator::Coordinator::Start(co);
  if (!c.ok()) return c.status();
  h->coordinator = std::move(*c);
  h->address = absl::StrCat("127.0.0.1:", h->coordinator->port());
  for (int i = 0; i < stages; ++i) {
    bitnet::worker::WorkerOptions wo;
    wo.coordinator = h->address;
    wo.listen = "127.0.0.1:0";
    wo.name = absl::StrCat("bench-", i);
    wo.threads = absl::GetFlag(FLAGS_threads);
    wo.bandwidth = 1e10;  // equal shares
    wo.quiet = true;
    auto w = bitnet::worker::Worker::Start(wo);
    if (!w.ok()) return w.status();
    h->workers.push_back(std::move(*w));
  }
  if (!h->coordinator->WaitUntilServing(absl::Minutes(30))) {
    return absl::DeadlineExceededError("the model did not load in time");
  }
  return h;
}

int RunLoad() {
  const std::vector<int> streams = ParseList(absl::GetFlag(FLAGS_streams));
  const bool json = absl::GetFlag(FLAGS_json);
  std::vector<LoadPoint> points;
  int64_t n_vocab = 250;
  auto run_sweep = [&](const std::string& address, int stages) {
    // One warm-up request: connections, first allocations.
    {
      InferenceClient client(address);
      bitnet::v1::GenerateRequest req;
      req.mutable_prompt_tokens()->add_ids(1);
      req.set_max_tokens(4);
      (void)client.Generate(req);
    }
    for (int s : streams) {
      points.push_back(MeasureLoad(address, stages, s, n_vocab));
      const LoadPoint& p = points.back();
      if (!json) {
        std::printf("%6d %7d %10.2f %9.3f %9.3f %9.3f %10.1f %9.3f %9.3f %8.3f\n", p.stages,
                    p.streams, p.ttft_p50_ms, p.itl_mean_ms, p.itl_p50_ms, p.itl_p99_ms,
                    p.tokens_per_s, p.batch_rtt_ms, p.batch_compute_ms, p.hop_ms);
        std::fflush(stdout);
      }
    }
  };
  if (!json) {
    std::printf("%6s %7s %10s %9s %9s %9s %10s %9s %9s %8s\n", "stages", "streams",
                "ttft_p50", "itl_mean", "itl_p50", "itl_p99", "tok/s", "batch_rtt", "compute",
                "per_hop");
    std::printf("%6s %7s %10s %9s %9s %9s %10s %9s %9s %8s\n", "", "", "(ms)", "(ms)", "(ms)",
                "(ms)", "(total)", "(ms)", "(ms)", "(ms)");
  }
  if (!absl::GetFlag(FLAGS_server).empty()) {
    run_sweep(absl::GetFlag(FLAGS_server), 0);
  } else {
    const std::string model = absl::GetFlag(FLAGS_model);
    auto file = bitnet::gguf::File::Open(model);
    if (!file.ok()) {
      std::fprintf(stderr, "bitnet-bench-serve: %s\n", std::string(file.status().message()).c_str());
      return 1;
    }
    auto config = bitnet::ConfigFromGguf(**file);
    if (config.ok()) n_vocab = config->n_vocab;
    for (int stages : ParseList(absl::GetFlag(FLAGS_stages))) {
      auto hosted = StartSelfHosted(model, stages);
      if (!hosted.ok()) {
        std::fprintf(stderr, "bitnet-bench-serve: %s\n",
                     std::string(hosted.status().message()).c_str());
        return 1;
      }
      run_sweep((*hosted)->address, stages);
    }
  }

  // Derived numbers.
  auto find = [&](int stages, int s) -> const LoadPoint* {
    for (const auto& p : points) {
      if (p.stages == stages && p.streams == s) return &p;
    }
    return nullptr;
  };
  nlohmann::json derived = nlohmann::json::object();
  const LoadPoint* one = find(1, 1);
  for (const auto& p : points) {
    if (p.streams != 1 || p.stages <= 1 || one == nullptr) continue;
    // Added latency per added stage for a lone stream (compute is the same).
    const double hop_ms = (p.itl_mean_ms - one->itl_mean_ms) / (p.stages - 1);
    const double ratio = one->tokens_per_s > 0 ? p.tokens_per_s / one->tokens_per_s : 0;
    derived[absl::StrCat("added_latency_per_stage_ms_", p.stages, "_stages")] = hop_ms;
    derived[absl::StrCat("single_stream_", p.stages, "_stages_vs_1_node")] = ratio;
    if (!json) {
      std::printf("latency added per extra stage (%d stages, lone stream): %.3f ms\n", p.stages,
                  hop_ms);
      std::printf("%d-stage vs 1-node, single stream: %.2fx\n", p.stages, ratio);
    }
  }
  for (const auto& p : points) {
    const LoadPoint* base = find(p.stages, 1);
    if (p.streams == 1 || base == nullptr || base->tokens_per_s <= 0) continue;
    const double ratio = p.tokens_per_s / base->tokens_per_s;
    derived[absl::StrCat("streams_", p.streams, "_vs_1_at_", p.stages, "_stages")] = ratio;
    if (!json) {
      std::printf("%d streams vs 1 (%d stage(s)): %.2fx aggregate tokens/s\n", p.streams, p.stages,
                  ratio);
    }
  }
  if (json) {
    nlohmann::json out;
    out["benchmark"] = "serve_load";
    out["max_tokens"] = absl::GetFlag(FLAGS_max_tokens);
    out["prompt_len"] = absl::GetFlag(FLAGS_prompt_len);
    out["threads_per_stage"] = absl::GetFlag(FLAGS_threads);
    out["wire"] = absl::GetFlag(FLAGS_wire);
    for (const auto& p : points) {
      out["points"].push_back({{"stages", p.stages},
                               {"streams", p.streams},
                               {"ttft_p50_ms", p.ttft_p50_ms},
                               {"itl_mean_ms", p.itl_mean_ms},
                               {"itl_p50_ms", p.itl_p50_ms},
                               {"itl_p99_ms", p.itl_p99_ms},
                               {"tokens_per_s", p.tokens_per_s},
                               {"batch_round_trip_ms", p.batch_rtt_ms},
                               {"batch_compute_ms", p.batch_compute_ms},
                               {"per_hop_overhead_ms", p.hop_ms},
                               {"tokens", p.tokens}});
    }
    out["derived"] = derived;
    std::printf("%s\n", out.dump(2).c_str());
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Wire accuracy.

int RunWireAccuracy() {
  const std::string model = absl::GetFlag(FLAGS_model);
  auto file = bitnet::gguf::File::Open(model);
  if (!file.ok()) {
    std::fprintf(stderr, "bitnet-bench-serve: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  auto config = bitnet::ConfigFromGguf(**file);
  if (!config.ok()) {
    std::fprintf(stderr, "bitnet-bench-serve: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  auto tokenizer = bitnet::Tokenizer::FromGguf(**file);
  const int n_layer = static_cast<int>(config->n_layer);
  int stages = 2;
  if (auto list = ParseList(absl::GetFlag(FLAGS_stages)); !list.empty()) stages = list.back();
  if (n_layer < 2) {
    std::fprintf(stderr, "bitnet-bench-serve: --wire_accuracy needs a model of 2 layers or more\n");
    return 2;
  }
  stages = std::clamp(stages, 2, n_layer);
  const std::vector<int> bounds = *bitnet::serving::EvenStageBounds(n_layer, stages);
  bitnet::EngineOptions eo;
  eo.n_threads = absl::GetFlag(FLAGS_threads);
  const int tokens = absl::GetFlag(FLAGS_tokens);
  const int n_prompts = absl::GetFlag(FLAGS_prompts);
  const bool json = absl::GetFlag(FLAGS_json);

  auto reference = bitnet::serving::LocalPipeline::Create(**file, bounds, eo, {bitnet::v1::Activations::FP32, 0});
  if (!reference.ok()) {
    std::fprintf(stderr, "bitnet-bench-serve: %s\n", std::string(reference.status().message()).c_str());
    return 1;
  }
  // fp32 greedy runs: the tokens to force and the logits to compare with.
  std::vector<std::vector<int32_t>> prompts;
  std::vector<bitnet::serving::PipelineRun> ref_runs;
  for (int p = 0; p < n_prompts; ++p) {
    prompts.push_back(RandomPrompt(absl::GetFlag(FLAGS_prompt_len), config->n_vocab, 7000 + p));
    auto run = bitnet::serving::RunGeneration(**reference, 1, prompts.back(),
                                              bitnet::GreedySamplingParams(), tokens, nullptr,
                                              256, true);
    if (!run.ok()) {
      std::fprintf(stderr, "bitnet-bench-serve: %s\n", std::string(run.status().message()).c_str());
      return 1;
    }
    ref_runs.push_back(std::move(*run));
  }
  nlohmann::json out;
  // The scale the differences are read against: the spread of the fp32
  // logits and how close the top two are.
  std::vector<double> stds, gaps;
  for (const auto& run : ref_runs) {
    for (const auto& row : run.logits) {
      double mean = 0, sq = 0;
      for (float v : row) mean += v;
      mean /= static_cast<double>(row.size());
      for (float v : row) sq += (v - mean) * (v - mean);
      stds.push_back(std::sqrt(sq / static_cast<double>(row.size())));
      std::vector<float> top(row.begin(), row.end());
      std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
      gaps.push_back(top[0] - top[1]);
    }
  }
  const double logit_std = Percentile(stds, 0.5), top_gap = Percentile(gaps, 0.5);
  out["fp32_logit_std_median"] = logit_std;
  out["fp32_top1_top2_gap_median"] = top_gap;
  if (!json) {
    std::printf("model %s, %d stages %s, %d prompts x %d greedy tokens (EOS ignored)\n",
                model.c_str(), stages, absl::StrJoin(bounds, ",").c_str(), n_prompts, tokens);
    std::printf("fp32 logits: median std %.3g, median top1-top2 gap %.3g\n", logit_std, top_gap);
    std::printf("%-9s %14s %14s %16s %18s\n", "wire", "max|dlogit|", "mean|dlogit|",
                "argmax agree", "first divergence");
  }
  out["benchmark"] = "wire_accuracy";
  out["model"] = model;
  out["stage_bounds"] = bounds;
  out["tokens"] = tokens;
  out["prompts"] = n_prompts;
  // One set of stages: only the format between them changes.
  auto& pipe = reference;
  for (const char* name : {"fp16", "int8-b32", "int8-b64", "int8"}) {
    (*pipe)->set_wire(*bitnet::serving::ParseWireFormat(name));
    double max_diff = 0, sum_diff = 0;
    int64_t n_diff = 0, agree = 0, steps = 0;
    std::vector<int> first_divergence;
    for (int p = 0; p < n_prompts; ++p) {
      const auto& ref = ref_runs[static_cast<size_t>(p)];
      // Teacher forcing: same history as fp32, compare every step's logits.
      auto forced = bitnet::serving::RunGeneration(**pipe, 1, prompts[static_cast<size_t>(p)],
                                                   bitnet::GreedySamplingParams(), tokens,
                                                   nullptr, 256, true, ref.tokens);
      if (!forced.ok()) return 1;
      for (size_t s = 0; s < forced->logits.size(); ++s) {
        const auto& a = forced->logits[s];
        const auto& b = ref.logits[s];
        for (size_t v = 0; v < a.size(); ++v) {
          const double d = std::fabs(static_cast<double>(a[v]) - b[v]);
          max_diff = std::max(max_diff, d);
          sum_diff += d;
          ++n_diff;
        }
        agree += forced->tokens[s] == ref.tokens[s] ? 1 : 0;
        ++steps;
      }
      // Free running: where does greedy output first differ?
      auto free_run = bitnet::serving::RunGeneration(**pipe, 1, prompts[static_cast<size_t>(p)],
                                                     bitnet::GreedySamplingParams(), tokens,
                                                     nullptr, 256, false);
      if (!free_run.ok()) return 1;
      int div = static_cast<int>(free_run->tokens.size());
      for (size_t s = 0; s < free_run->tokens.size(); ++s) {
        if (free_run->tokens[s] != ref.tokens[s]) {
          div = static_cast<int>(s);
          break;
        }
      }
      first_divergence.push_back(div);
    }
    const double agree_frac = steps > 0 ? static_cast<double>(agree) / steps : 0;
    std::sort(first_divergence.begin(), first_divergence.end());
    if (!json) {
      std::printf("%-9s %14.3e %14.3e %15.2f%% %12s (min %d, of %d)\n", name, max_diff,
                  n_diff ? sum_diff / n_diff : 0.0, 100 * agree_frac,
                  absl::StrCat("median ", first_divergence[first_divergence.size() / 2]).c_str(),
                  first_divergence.front(), tokens);
    }
    out["wires"][name] = {{"max_abs_logit_diff", max_diff},
                          {"mean_abs_logit_diff", n_diff ? sum_diff / n_diff : 0.0},
                          {"teacher_forced_argmax_agreement", agree_frac},
                          {"free_running_first_divergence", first_divergence}};
  }
  if (json) std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serving benchmarks: bitnet-bench-serve (--server host:port | --model m.gguf) "
      "[--stages 1,2] [--streams 1,2,8,16] [--wire_accuracy] [--json]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_server).empty() && absl::GetFlag(FLAGS_model).empty()) {
    std::fprintf(stderr, "bitnet-bench-serve: give --server host:port or --model m.gguf\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_wire_accuracy)) {
    if (absl::GetFlag(FLAGS_model).empty()) {
      std::fprintf(stderr, "bitnet-bench-serve: --wire_accuracy needs --model\n");
      return 2;
    }
    return RunWireAccuracy();
  }
  return RunLoad();
}
