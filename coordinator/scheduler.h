// The coordinator's scheduler: continuous batching over a pipeline of stages.
//
// - Requests wait in a bounded queue (full: RESOURCE_EXHAUSTED) and join the
//   running batch at step boundaries, up to max_active sequences.
// - The running sequences are split into one micro-batch per stage; up to
//   max_inflight (default stages + 1) micro-batches are in the pipeline at
//   once, so with S stages and at least S sequences every stage has work (a
//   sequence is in at most one micro-batch at a time: its next row needs the
//   token its last one produced).
// - Prefill is chunked: a long prompt enters prefill_chunk rows at a time,
//   and a micro-batch holds at most max_batch_tokens rows, so it never stalls
//   the other sequences' decode steps for long.
// - Cancellation, deadlines and finished sequences free their KV caches on
//   every stage through a `free` list that travels behind their last frame.
// - If the pipeline breaks (a worker is lost), running sequences keep their
//   tokens and are re-prefilled when a new placement is attached.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bitnet/v1/stage.pb.h"
#include "coordinator/generation.h"
#include "model/tokenizer.h"

namespace bitnet::coordinator {

struct SchedulerOptions {
  int max_active = 64;         // sequences in the running batch (KV caches held)
  int max_queue = 256;         // requests waiting; beyond: RESOURCE_EXHAUSTED
  int max_batch_tokens = 512;  // rows per micro-batch
  int prefill_chunk = 256;     // prompt rows of one sequence per micro-batch
  int max_inflight = 0;        // micro-batches in the pipeline; 0: stages + 1
  // How long running sequences wait for a broken pipeline to come back
  // before they fail with UNAVAILABLE.
  absl::Duration recovery_timeout = absl::Seconds(120);
};

class Scheduler {
 public:
  using SendFn = std::function<absl::Status(const v1::StageFrame&)>;

  Scheduler(SchedulerOptions options, const Tokenizer* tokenizer, int64_t n_ctx);
  ~Scheduler();

  // Queues a request. UNAVAILABLE before the first pipeline is attached
  // (during a later re-placement requests queue), RESOURCE_EXHAUSTED when
  // the queue is full.
  absl::StatusOr<std::shared_ptr<Generation>> Submit(GenerationSpec spec);
  // Wakes the scheduler after Generation::RequestCancel().
  void Wake();

  // The pipeline of placement `epoch`: `send` delivers frames to stage 0.
  void AttachPipeline(uint64_t epoch, int n_stages, SendFn send);
  // The pipeline broke or is being replaced; `why` is logged and, after
  // recovery_timeout, given to the requests that could not finish.
  void DetachPipeline(const absl::Status& why);
  // Said to clients while no pipeline is attached ("waiting for 2 workers").
  void SetUnavailableReason(std::string reason);
  // A frame back from the last stage.
  void OnResult(v1::StageFrame frame);

  struct Stats {
    int queued = 0;
    int active = 0;
    int inflight_batches = 0;
    uint64_t tokens_generated = 0;
    uint64_t requests_finished = 0;
    // Micro-batches back from the pipeline, with their summed round-trip
    // time (formed -> result handled) and summed stage compute time: the
    // difference is what the network and the thread hand-offs cost.
    uint64_t batches_completed = 0;
    double batch_round_trip_seconds = 0;
    double batch_compute_seconds = 0;
    int n_stages = 0;
  };
  Stats stats() const;
  int64_t n_ctx() const { return n_ctx_; }

  // Fails everything still queued or running and stops the thread.
  void Shutdown();

 private:
  struct Seq;
  struct Inflight;

  void Loop();
  void DrainResults(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleResult(const v1::StageFrame& frame, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AcceptToken(Seq& s, TokenId token, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishSeq(uint64_t id, v1::FinishReason reason, absl::Status error, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reap(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Admit(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FormFrames(std::vector<v1::StageFrame>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DetachLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerOptions options_;
  const Tokenizer* tokenizer_;
  const int64_t n_ctx_;

  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<Generation>> queue_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::unique_ptr<Seq>> active_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::unique_ptr<Inflight>> inflight_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> pending_frees_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::StageFrame> results_ ABSL_GUARDED_BY(mu_);
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  bool ever_attached_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time detached_since_ ABSL_GUARDED_BY(mu_);
  absl::Status detach_reason_ ABSL_GUARDED_BY(mu_);
  std::string unavailable_reason_ ABSL_GUARDED_BY(mu_) = "no workers have registered yet";
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int n_stages_ ABSL_GUARDED_BY(mu_) = 1;
  SendFn send_ ABSL_GUARDED_BY(mu_);
  uint64_t next_batch_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t tokens_generated_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t requests_finished_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t batches_completed_ ABSL_GUARDED_BY(mu_) = 0;
  double round_trip_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  double compute_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace bitnet::coordinator
