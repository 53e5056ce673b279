// A pipeline worker: serves bitnet.v1.Worker (placement, stats) and
// bitnet.v1.StageService (frames from the previous stage), registers with the
// coordinator and keeps heartbeating, loads the layer range it is given, and
// forwards its output straight to the next stage.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace bitnet::worker {

struct WorkerOptions {
  std::string coordinator;           // host:port of the coordinator
  std::string listen = "0.0.0.0:0";  // port 0: any free port
  // host:port the coordinator and the previous stage use to reach this
  // worker; default: 127.0.0.1 when listening on a wildcard address for a
  // local coordinator, else the hostname, with the bound port.
  std::string advertise;
  std::string name;                  // default: hostname:port
  std::string model_path;            // overrides the path the coordinator sends
  int threads = 1;
  uint64_t memory_bytes = 0;         // 0: measure
  double bandwidth = 0;              // bytes/s; 0: measure
  bool quiet = false;                // no progress logging on stderr
};

class Worker {
 public:
  // Starts serving and registering (in the background); returns once the
  // server listens.
  static absl::StatusOr<std::unique_ptr<Worker>> Start(WorkerOptions options);
  ~Worker();

  const std::string& address() const;  // as advertised
  void Shutdown();
  void Wait();  // until Shutdown

  struct Impl;

 private:
  explicit Worker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::worker
