// bitnet-coordinator: the front of a distributed deployment. Reads the
// model's metadata, waits for workers, places layer ranges on them, and
// serves the client API.
//
//   bitnet-coordinator --model m.gguf --listen 0.0.0.0:50051 --workers 3

#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "coordinator/coordinator.h"
#include "serving/grpc_util.h"

ABSL_FLAG(std::string, model, "", "GGUF model file or Hugging Face checkpoint directory (workers open the same path or their own --model)");
ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "address to serve on");
ABSL_FLAG(std::string, name, "", "model name in the API (default: from the file)");
ABSL_FLAG(int, workers, 1, "place the model once this many workers registered");
ABSL_FLAG(bool, rebalance_on_join, false,
          "place the model again when a worker joins (reloads changed stages); default: "
          "newcomers wait on standby and replace lost workers");
ABSL_FLAG(std::string, wire, "int8", "activation wire format: int8, int8-b32, int8-b64, fp16, fp32");
ABSL_FLAG(int64_t, ctx, 0, "context window per sequence (0: the model's)");
ABSL_FLAG(std::string, kv_type, "f16", "KV cache type: f16 or f32");
ABSL_FLAG(std::string, act_quant, "", "activation quantization: per-token, q8k, none (default: engine's)");
ABSL_FLAG(int, max_active, 64, "sequences in the running batch");
ABSL_FLAG(int, max_queue, 256, "requests waiting; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_batch_tokens, 512, "rows per micro-batch");
ABSL_FLAG(int, prefill_chunk, 256, "prompt rows of one sequence per micro-batch");
ABSL_FLAG(int, max_inflight, 0, "micro-batches in the pipeline at once (0: stages + 1)");
ABSL_FLAG(int, max_stages, 0, "use at most this many workers as stages (0: all that help)");
ABSL_FLAG(int, heartbeat_timeout_ms, 6000, "drop a worker after this long without heartbeat");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port to this file once serving starts (for --port 0 / --listen :0)");
ABSL_FLAG(bool, quiet, false, "no progress lines on stderr");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves a model split across workers: bitnet-coordinator --model m.gguf --workers N");
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bitnet::coordinator::CoordinatorOptions o;
  o.model_path = absl::GetFlag(FLAGS_model);
  o.listen = absl::GetFlag(FLAGS_listen);
  o.model_name = absl::GetFlag(FLAGS_name);
  o.min_workers = absl::GetFlag(FLAGS_workers);
  o.rebalance_on_join = absl::GetFlag(FLAGS_rebalance_on_join);
  o.wire = absl::GetFlag(FLAGS_wire);
  o.n_ctx = absl::GetFlag(FLAGS_ctx);
  o.kv_type = absl::GetFlag(FLAGS_kv_type);
  o.act_quant = absl::GetFlag(FLAGS_act_quant);
  o.scheduler.max_active = absl::GetFlag(FLAGS_max_active);
  o.scheduler.max_queue = absl::GetFlag(FLAGS_max_queue);
  o.scheduler.max_batch_tokens = absl::GetFlag(FLAGS_max_batch_tokens);
  o.scheduler.prefill_chunk = absl::GetFlag(FLAGS_prefill_chunk);
  o.scheduler.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  o.max_stages = absl::GetFlag(FLAGS_max_stages);
  o.heartbeat_timeout_ms = static_cast<uint32_t>(absl::GetFlag(FLAGS_heartbeat_timeout_ms));
  o.quiet = absl::GetFlag(FLAGS_quiet);
  if (o.scheduler.max_active < 1 || o.scheduler.max_queue < 0 ||
      o.scheduler.max_batch_tokens < 1 || o.scheduler.prefill_chunk < 1) {
    std::fprintf(stderr, "bitnet-coordinator: --max_active, --max_batch_tokens and "
                         "--prefill_chunk must be >= 1, --max_queue >= 0\n");
    return 2;
  }
  auto coordinator = bitnet::coordinator::Coordinator::Start(o);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "bitnet-coordinator: %s\n",
                 std::string(coordinator.status().message()).c_str());
    return 1;
  }
  if (const std::string pf = absl::GetFlag(FLAGS_port_file); !pf.empty()) {
    if (auto s = bitnet::serving::WritePortFile(pf, (*coordinator)->port()); !s.ok()) {
      std::fprintf(stderr, "bitnet-coordinator: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*coordinator)->Shutdown();
  return 0;
}
