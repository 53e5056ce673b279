// bitnet-serve: the whole service in one command. Starts a coordinator and N
// local workers (a pipeline of N stages over loopback gRPC: the same code
// path as a multi-machine deployment), then either serves clients or, with
// --prompt, generates once, streams the text to stdout and exits.
//
//   bitnet-serve --model m.gguf --prompt "Once upon a time"
//   bitnet-serve --model m.gguf --workers 2 --port 50051   # then: bitnet-cli
#include <csignal>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "coordinator/coordinator.h"
#include "serving/grpc_util.h"
#include "serving/inference_client.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, model, "", "GGUF model file or Hugging Face checkpoint directory");
ABSL_FLAG(int, workers, 1, "pipeline stages (local worker processes' worth of threads)");
ABSL_FLAG(int, threads, 0, "compute threads per worker (0: cores / workers)");
ABSL_FLAG(std::string, host, "0.0.0.0", "address to serve clients on");
ABSL_FLAG(int, port, 50051, "port to serve clients on (0: any free port)");
ABSL_FLAG(std::string, wire, "int8", "activation wire format: int8, int8-b32, int8-b64, fp16, fp32");
ABSL_FLAG(int64_t, ctx, 0, "context window per sequence (0: the model's)");
ABSL_FLAG(std::string, kv_type, "f16", "KV cache type: f16 or f32");
ABSL_FLAG(int, max_active, 64, "sequences in the running batch");
ABSL_FLAG(int, max_queue, 256, "requests waiting; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, prefill_chunk, 256, "prompt rows of one sequence per micro-batch");
ABSL_FLAG(std::string, prompt, "", "generate once from this prompt, print, and exit");
ABSL_FLAG(int, max_tokens, 128, "with --prompt: tokens to generate");
ABSL_FLAG(double, temperature, 0.8, "with --prompt: sampling temperature (0: greedy)");
ABSL_FLAG(int, top_k, 40, "with --prompt: top-k (0: off)");
ABSL_FLAG(double, top_p, 0.95, "with --prompt: top-p (1: off)");
ABSL_FLAG(double, min_p, 0.05, "with --prompt: min-p (0: off)");
ABSL_FLAG(double, repeat_penalty, 1.0, "with --prompt: repetition penalty (1: off)");
ABSL_FLAG(uint64_t, seed, 0, "with --prompt: sampling seed");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port to this file once serving starts (for --port 0 / --listen :0)");
ABSL_FLAG(bool, verbose, false, "log coordinator and worker events to stderr");

namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "bitnet-serve: %s\n", std::string(s.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves a model with N local pipeline stages: bitnet-serve --model m.gguf "
      "[--workers N] [--port P] [--prompt TEXT]");
  absl::ParseCommandLine(argc, argv);
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  const bool one_shot = !prompt.empty();
  const bool quiet = !absl::GetFlag(FLAGS_verbose);
  const int n_workers = absl::GetFlag(FLAGS_workers);
  if (n_workers < 1) return Fail(absl::InvalidArgumentError("--workers must be >= 1"));

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bitnet::coordinator::CoordinatorOptions co;
  co.model_path = absl::GetFlag(FLAGS_model);
  // A one-shot run needs no fixed port and should not collide with a server.
  co.listen = one_shot ? std::string("127.0.0.1:0")
                       : absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  co.min_workers = n_workers;
  co.wire = absl::GetFlag(FLAGS_wire);
  co.n_ctx = absl::GetFlag(FLAGS_ctx);
  co.kv_type = absl::GetFlag(FLAGS_kv_type);
  co.scheduler.max_active = absl::GetFlag(FLAGS_max_active);
  co.scheduler.max_queue = absl::GetFlag(FLAGS_max_queue);
  co.scheduler.prefill_chunk = std::max(1, absl::GetFlag(FLAGS_prefill_chunk));
  co.quiet = quiet;
  auto coordinator = bitnet::coordinator::Coordinator::Start(co);
  if (!coordinator.ok()) return Fail(coordinator.status());
  const std::string address = absl::StrCat("127.0.0.1:", (*coordinator)->port());

  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n_workers);
  }
  std::vector<std::unique_ptr<bitnet::worker::Worker>> workers;
  for (int i = 0; i < n_workers; ++i) {
    bitnet::worker::WorkerOptions wo;
    wo.coordinator = address;
    wo.listen = "127.0.0.1:0";
    wo.name = absl::StrCat("local-", i);
    wo.threads = threads;
    wo.quiet = quiet;
    // Local stages share one machine: advertise equal speed so the layers
    // split evenly instead of by a noisy measurement.
    wo.bandwidth = 1e10;
    auto w = bitnet::worker::Worker::Start(wo);
    if (!w.ok()) return Fail(w.status());
    workers.push_back(std::move(*w));
  }
  if (!(*coordinator)->WaitUntilServing(absl::Minutes(30))) {
    return Fail(absl::DeadlineExceededError("the model did not load within 30 minutes"));
  }

  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    if (auto s = bitnet::serving::WritePortFile(pf, (*coordinator)->port()); !s.ok()) {
      return Fail(s);
    }
  }
  int rc = 0;
  if (one_shot) {
    bitnet::serving::InferenceClient client(address);
    bitnet::v1::GenerateRequest req;
    req.set_prompt(prompt);
    req.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
    bitnet::v1::SamplingParams* s = req.mutable_sampling();
    s->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
    s->set_top_k(absl::GetFlag(FLAGS_top_k));
    s->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
    s->set_min_p(static_cast<float>(absl::GetFlag(FLAGS_min_p)));
    s->set_repeat_penalty(static_cast<float>(absl::GetFlag(FLAGS_repeat_penalty)));
    s->set_seed(absl::GetFlag(FLAGS_seed));
    std::fputs(prompt.c_str(), stdout);
    auto result = client.Generate(req, [](const bitnet::v1::GenerateResponse& chunk) {
      std::fputs(chunk.text().c_str(), stdout);
      std::fflush(stdout);
    });
    std::fputs("\n", stdout);
    std::fflush(stdout);  // the stats line on stderr goes after the text
    if (!result.status.ok()) {
      rc = Fail(result.status);
    } else {
      const auto& t = result.last.timing();
      std::fprintf(stderr,
                   "[%d prompt + %d generated tokens, %s; first token %.1f ms, %.1f tokens/s, "
                   "%d stage(s), wire %s]\n",
                   result.last.usage().prompt_tokens(), result.last.usage().completion_tokens(),
                   bitnet::v1::FinishReason_Name(result.last.finish_reason()).c_str(),
                   t.time_to_first_token_ms(), t.decode_tokens_per_s(), n_workers,
                   co.wire.c_str());
    }
  } else {
    std::fprintf(stderr,
                 "bitnet-serve: serving %s on %s:%d with %d stage(s); try\n"
                 "  bitnet-cli --server 127.0.0.1:%d generate --prompt \"Hello\"\n",
                 co.model_path.c_str(), absl::GetFlag(FLAGS_host).c_str(),
                 (*coordinator)->port(), n_workers, (*coordinator)->port());
    int sig = 0;
    sigwait(&signals, &sig);
  }
  (*coordinator)->Shutdown();
  for (auto& w : workers) w->Shutdown();
  return rc;
}
