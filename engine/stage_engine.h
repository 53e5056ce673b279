// Runs layers [begin, end) of a model over micro-batches of token rows, with a
// KV cache per sequence. A single-node model is one stage with begin = 0 and
// end = n_layer; the engine does not know where its neighbours are.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kv_cache.h"  // KvType, SeqId
#include "kernels/activation_quant.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"

namespace bitnet {

struct EngineOptions {
  kernels::ActQuant act_quant = kernels::ActQuant::kPerToken;
  KvType kv_type = KvType::kF16;
  int n_threads = 1;
  int64_t n_ctx = 0;  // max positions per sequence; 0 = the model's context length
};

// One row of a micro-batch: `token` at position `pos` of sequence `seq`.
// Rows of one sequence appear in increasing, consecutive positions, and the
// first one continues the sequence's cache (pos == its current length).
struct BatchRow {
  SeqId seq = 0;
  int32_t pos = 0;
  TokenId token = 0;         // used by the first stage only
  bool want_logits = false;  // used by the last stage only
};

// Calls are serialized internally (one micro-batch at a time per engine);
// run several engines for parallel stages.
class StageEngine {
 public:
  static absl::StatusOr<std::unique_ptr<StageEngine>> Create(
      std::shared_ptr<const ModelWeights> weights, EngineOptions options);
  ~StageEngine();

  const ModelConfig& config() const;
  const EngineOptions& options() const;
  int layer_begin() const;
  int layer_end() const;
  bool is_first() const;
  bool is_last() const;
  int64_t n_ctx() const;

  // Runs `rows` through this stage's layers. `hidden` is rows.size() x n_embd:
  // the input (ignored and filled from the tokens on the first stage) and the
  // output. Appends the rows' keys and values to their sequences' caches.
  // INVALID_ARGUMENT on a bad token id, position, or size; OUT_OF_RANGE past n_ctx.
  absl::Status Forward(std::span<const BatchRow> rows, std::vector<float>& hidden);

  // Last stage only: final norm + lm_head for the rows with want_logits, in
  // order; `logits` becomes (count x n_vocab).
  absl::Status Logits(std::span<const BatchRow> rows, const std::vector<float>& hidden,
                      std::vector<float>& logits);

  int64_t SequenceLength(SeqId seq) const;  // 0 for an unknown sequence
  // Drops the last positions of a sequence's cache (keep = new length).
  absl::Status TruncateSequence(SeqId seq, int64_t keep);
  void FreeSequence(SeqId seq);
  size_t live_sequences() const;
  size_t kv_bytes() const;  // bytes of KV cache held by live sequences

 private:
  StageEngine();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet
