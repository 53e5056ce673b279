// Membership and placement: workers register and heartbeat here; once enough
// are present the manager plans contiguous layer ranges (serving/placement.h),
// has each worker load its range, opens the link to stage 0 and attaches the
// pipeline to the scheduler. A lost worker or a broken link detaches it and
// places the model again on the workers that are left (plus any newcomer).
//
// It is also the coordinator's FrameSink: frames coming back from the last
// stage go to the scheduler.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bitnet/v1/cluster.grpc.pb.h"
#include "coordinator/scheduler.h"
#include "serving/activation_codec.h"
#include "serving/placement.h"
#include "serving/stage_transport.h"

namespace bitnet::coordinator {

struct ClusterOptions {
  std::string model_path;
  // Place the model once this many workers registered. After the first
  // placement a lost worker triggers a new placement on the workers left
  // (if the model fits on them) instead of waiting for this many again.
  int min_workers = 1;
  // Place again when a worker joins a serving cluster, to use it (reloads
  // the stages whose range changes; running sequences are re-prefilled).
  // Off: newcomers stay on standby until a worker is lost.
  bool rebalance_on_join = false;
  serving::WireFormat wire;
  int64_t n_ctx = 0;
  std::string kv_type = "f16";
  std::string act_quant;  // "" = the engine's default
  serving::PlacementOptions placement;
  uint32_t heartbeat_interval_ms = 1000;
  uint32_t heartbeat_timeout_ms = 6000;
  bool quiet = false;
};

class ClusterManager final : public v1::Cluster::Service, public serving::FrameSink {
 public:
  ClusterManager(ClusterOptions options, serving::ModelFootprint footprint, Scheduler* scheduler,
                 serving::StageTransport* transport);
  ~ClusterManager() override;

  // Starts the placement thread; `on_serving` runs whenever serving flips.
  void Start(std::function<void(bool)> on_serving);
  void Shutdown();

  bool serving() const;
  int n_stages() const;
  std::string state() const;

  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* req,
                              v1::RegisterWorkerResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status GetClusterStatus(grpc::ServerContext* context,
                                const v1::GetClusterStatusRequest* req,
                                v1::ClusterStatus* resp) override;

  // Frames from the last stage.
  absl::Status Consume(v1::StageFrame& frame) override;

 private:
  struct WorkerRec {
    std::string id, name, address;
    uint64_t order = 0;  // registration order: placement keeps it
    v1::WorkerCapacity capacity;
    absl::Time last_heartbeat;
    v1::StageStats stats;
    int stage = -1;
    int layer_begin = 0, layer_end = 0;
  };

  void Loop();
  void TryPlace();
  // Detaches the pipeline; returns the old stage-0 link, which the caller
  // drops after unlocking (its teardown may wait on a callback that locks).
  std::shared_ptr<serving::StageSender> Unplace(const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestReplan(uint64_t epoch, std::string why);
  void SetState(std::string state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(absl::string_view message) const;

  const ClusterOptions options_;
  const serving::ModelFootprint footprint_;
  const int n_layer_;
  Scheduler* const scheduler_;
  serving::StageTransport* const transport_;
  std::function<void(bool)> on_serving_;

  mutable absl::Mutex mu_;
  std::map<std::string, WorkerRec> workers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_worker_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  int n_stages_ ABSL_GUARDED_BY(mu_) = 0;
  std::string state_ ABSL_GUARDED_BY(mu_);
  std::string replan_reason_ ABSL_GUARDED_BY(mu_);  // non-empty: place again
  bool membership_changed_ ABSL_GUARDED_BY(mu_) = false;
  bool placed_once_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::shared_ptr<serving::StageSender> stage0_ ABSL_GUARDED_BY(mu_);
  std::vector<grpc::ClientContext*> loading_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bitnet::coordinator
