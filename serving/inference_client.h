// A small client of the serving API, shared by bitnet-cli, bitnet-serve's
// --prompt mode, bitnet-bench-serve and the tests: streaming generation with
// per-token arrival times, and waiting for grpc.health.v1 SERVING.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bitnet/v1/cluster.grpc.pb.h"
#include "bitnet/v1/inference.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "serving/grpc_util.h"

namespace bitnet::serving {

struct GenerateResult {
  absl::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  v1::GenerateResponse last;            // finish reason, usage, timing
  std::vector<double> token_arrival_ms; // since the call started, one per token
};

class InferenceClient {
 public:
  explicit InferenceClient(const std::string& address);

  const std::string& address() const { return address_; }
  v1::Inference::Stub& inference() { return *inference_; }
  v1::Cluster::Stub& cluster() { return *cluster_; }

  // Waits for the connection (see WaitForConnection). Call before using the
  // raw stubs: their calls are fail-fast.
  absl::Status Connect(absl::Duration timeout = kConnectTimeout);

  // Streams a generation to the end. `on_chunk` (optional) sees every message
  // as it arrives. `timeout` is the call's gRPC deadline. The connection is
  // awaited first, for at most kConnectTimeout (or `timeout` if shorter).
  GenerateResult Generate(const v1::GenerateRequest& request,
                          const std::function<void(const v1::GenerateResponse&)>& on_chunk = {},
                          absl::Duration timeout = absl::InfiniteDuration());

  // grpc.health.v1 Check of `service` ("" = the whole server).
  absl::StatusOr<bool> IsServing(const std::string& service = "");
  // Polls health until SERVING or `timeout`.
  absl::Status WaitServing(absl::Duration timeout, const std::string& service = "");

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> inference_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace bitnet::serving
