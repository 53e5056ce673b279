// bitnet-worker: one pipeline stage of a distributed model. Registers with a
// coordinator, loads the layer range it is given, runs micro-batches and
// forwards activations to the next stage.
//
//   bitnet-worker --coordinator coord:50051 --listen 0.0.0.0:50061 --threads 8

#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "worker/capacity.h"
#include "worker/worker.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "coordinator address (host:port)");
ABSL_FLAG(std::string, listen, "0.0.0.0:0", "address to serve on (port 0: any free port)");
ABSL_FLAG(std::string, advertise, "",
          "host:port others use to reach this worker (default: derived from --listen; set it "
          "in Kubernetes, e.g. to the pod's DNS name)");
ABSL_FLAG(std::string, name, "", "worker name for logs and ordering (default: its address)");
ABSL_FLAG(std::string, model, "",
          "model path on this machine (default: the path the coordinator sends)");
ABSL_FLAG(int, threads, 1, "compute threads for this stage");
ABSL_FLAG(std::string, memory, "", "memory this worker offers, e.g. 8G (default: measured)");
ABSL_FLAG(double, bandwidth_gbps, 0,
          "memory bandwidth in GB/s to advertise (default: measured at start)");
ABSL_FLAG(bool, quiet, false, "no progress lines on stderr");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs one pipeline stage: bitnet-worker --coordinator host:port [--threads N]");
  absl::ParseCommandLine(argc, argv);

  // Block SIGINT/SIGTERM in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bitnet::worker::WorkerOptions options;
  options.coordinator = absl::GetFlag(FLAGS_coordinator);
  options.listen = absl::GetFlag(FLAGS_listen);
  options.advertise = absl::GetFlag(FLAGS_advertise);
  options.name = absl::GetFlag(FLAGS_name);
  options.model_path = absl::GetFlag(FLAGS_model);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.bandwidth = absl::GetFlag(FLAGS_bandwidth_gbps) * 1e9;
  options.quiet = absl::GetFlag(FLAGS_quiet);
  if (const std::string mem = absl::GetFlag(FLAGS_memory); !mem.empty()) {
    auto bytes = bitnet::worker::ParseByteSize(mem);
    if (!bytes.ok()) {
      std::fprintf(stderr, "bitnet-worker: --memory: %s\n",
                   std::string(bytes.status().message()).c_str());
      return 2;
    }
    options.memory_bytes = *bytes;
  }
  auto worker = bitnet::worker::Worker::Start(options);
  if (!worker.ok()) {
    std::fprintf(stderr, "bitnet-worker: %s\n", std::string(worker.status().message()).c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*worker)->Shutdown();
  return 0;
}
