// The coordinator process: reads the model's metadata (never its weights),
// serves the client API (bitnet.v1.Inference), membership and placement
// (bitnet.v1.Cluster) and the result end of the pipeline
// (bitnet.v1.StageService), plus grpc.health.v1 and server reflection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/scheduler.h"

namespace bitnet::coordinator {

struct CoordinatorOptions {
  std::string model_path;
  std::string listen = "0.0.0.0:50051";  // port 0: any free port
  std::string model_name;                // default: general.name, else the file name
  int min_workers = 1;                   // place the model once this many registered
  bool rebalance_on_join = false;        // place again when a worker joins
  std::string wire = "int8";             // activation wire format (see activation_codec.h)
  int64_t n_ctx = 0;                     // 0: the model's training context
  std::string kv_type = "f16";
  std::string act_quant;                 // "" = engine default
  SchedulerOptions scheduler;
  int64_t kv_reserve_tokens = -1;        // KV reserved per stage in placement; -1: n_ctx
  int max_stages = 0;                    // 0: use every worker that helps
  uint32_t heartbeat_timeout_ms = 6000;
  bool quiet = false;
};

class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(CoordinatorOptions options);
  ~Coordinator();

  int port() const;
  bool WaitUntilServing(absl::Duration timeout);
  void Shutdown();
  void Wait();  // until Shutdown

  struct Impl;

 private:
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::coordinator
