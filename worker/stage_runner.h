// One pipeline stage's work on a frame: decode the incoming activations, run
// this stage's layers, and rewrite the frame for the next hop (encoded
// activations, or on the last stage the sampled token ids). Knows nothing
// about the network: the worker feeds it frames from whatever transport.
#pragma once

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "bitnet/v1/cluster.pb.h"
#include "bitnet/v1/stage.pb.h"
#include "engine/sampler.h"
#include "engine/stage_engine.h"
#include "serving/activation_codec.h"

namespace bitnet::worker {

class StageRunner {
 public:
  StageRunner(std::unique_ptr<StageEngine> engine, serving::WireFormat wire, int stage_index);
  ~StageRunner();

  // Processes `frame` in place. A failure does not stop the frame: it is
  // recorded in frame.error and the frame travels on without activations, so
  // the coordinator learns which sequences failed and every stage still
  // applies the frame's frees.
  void Process(v1::StageFrame& frame);

  // Drops one sequence's (or every) KV cache and sampler.
  void Free(SeqId seq);
  void FreeAll();

  const StageEngine& engine() const { return *engine_; }
  // Fills the counters of `stats` (not the placement fields).
  void FillStats(v1::StageStats* stats) const;

 private:
  struct SeqSampler;
  absl::Status Run(v1::StageFrame& frame);
  absl::Status Sample(v1::StageFrame& frame);

  std::unique_ptr<StageEngine> engine_;
  const serving::WireFormat wire_;
  const int stage_index_;
  // Last stage: per-sequence sampler with its recent-token history.
  absl::flat_hash_map<SeqId, std::unique_ptr<SeqSampler>> samplers_;
  // Every sequence this stage has seen and not freed (the engine has no
  // "free all").
  absl::flat_hash_set<SeqId> live_;
  // Reused buffers.
  std::vector<BatchRow> rows_;
  std::vector<float> hidden_;
  std::vector<float> logits_;
  // Counters.
  uint64_t frames_ = 0;
  uint64_t rows_done_ = 0;
  uint64_t bytes_out_ = 0;
  double busy_seconds_ = 0;
};

}  // namespace bitnet::worker
