// Placement: which worker runs which contiguous range of layers.
//
// Decode is bound by memory bandwidth, so a stage's time per token is about
// (bytes of weights it reads) / (its memory bandwidth). The planner splits the
// layers into contiguous ranges, in worker order, minimizing the slowest
// stage's time (the pipeline's bottleneck) subject to each worker's memory:
// ranges come out proportional to speed where memory allows. The embedding
// lives on the first stage; the final norm, lm_head and sampling on the last.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/stage_engine.h"
#include "model/gguf.h"
#include "model/model_config.h"

namespace bitnet::serving {

// Estimated runtime bytes of a model's parts, from its tensor table only (no
// weight is read): ternary tensors take 2 bits per weight plus scales at
// runtime, float tensors 4 bytes per value.
struct ModelFootprint {
  std::vector<uint64_t> layer_bytes;  // per layer
  uint64_t embedding_bytes = 0;       // first stage: token embedding (as f32)
  uint64_t head_bytes = 0;            // last stage: output norm + lm_head
  uint64_t output_norm_bytes = 0;     // part of head_bytes
  bool head_shares_embedding = false; // tied output: one copy when first == last
  uint64_t kv_bytes_per_token_layer = 0;

  uint64_t total_bytes() const;
};

absl::StatusOr<ModelFootprint> FootprintFromGguf(const gguf::File& file,
                                                 const ModelConfig& config, KvType kv_type);

struct WorkerCapacityInfo {
  std::string name;
  uint64_t memory_bytes = 0;      // 0: unknown (no memory check)
  double bandwidth = 0;           // bytes/s; <= 0: unknown (treated as the median)
};

struct StagePlan {
  int worker = 0;                 // index into the workers passed in
  int layer_begin = 0;
  int layer_end = 0;
  uint64_t memory_bytes = 0;      // estimated: weights + KV reserve
  double seconds_per_token = 0;   // estimated decode time of this stage
};

struct PlacementOptions {
  // KV cache to reserve on each stage, in token positions (all sequences).
  int64_t kv_reserve_tokens = 0;
  // Stages at most (0: as many as useful); workers left over stay on standby.
  int max_stages = 0;
};

// Contiguous ranges covering [0, n_layer), in worker order; workers may be
// skipped (standby) when that does not slow the pipeline. FAILED_PRECONDITION
// with the numbers when the model cannot fit.
absl::StatusOr<std::vector<StagePlan>> PlanPlacement(const ModelFootprint& model,
                                                     const std::vector<WorkerCapacityInfo>& workers,
                                                     const PlacementOptions& options);

// A one-line human summary: "w0 [0,10) 1.2 GB | w1 [10,30) 2.3 GB".
std::string PlacementSummary(const std::vector<StagePlan>& plan,
                             const std::vector<WorkerCapacityInfo>& workers);

}  // namespace bitnet::serving
