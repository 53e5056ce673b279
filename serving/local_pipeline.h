// A model split into pipeline stages inside one process, with the hidden
// states passing between stages through the activation wire format: the
// distributed pipeline's numerics without the network. bitnet-bench-serve
// uses it to measure the wire format's effect on the logits, and the tests
// use it as the reference a real cluster must reproduce token for token.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/generator.h"
#include "engine/perplexity.h"
#include "engine/sampler.h"
#include "engine/stage_engine.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "serving/activation_codec.h"

namespace bitnet::serving {

// {0, ..., n_layer} for `stages` contiguous ranges of (nearly) equal length,
// as the placement planner gives equal workers; INVALID_ARGUMENT unless
// 1 <= stages <= n_layer.
absl::StatusOr<std::vector<int>> EvenStageBounds(int n_layer, int stages);

class LocalPipeline {
 public:
  // `bounds` = {0, b1, ..., n_layer}: stage i runs layers [bounds[i], bounds[i+1]).
  static absl::StatusOr<std::unique_ptr<LocalPipeline>> Create(const gguf::File& file,
                                                               std::vector<int> bounds,
                                                               const EngineOptions& options,
                                                               WireFormat wire);
  int n_stages() const { return static_cast<int>(stages_.size()); }
  // Switches the wire format (the weights stay loaded).
  void set_wire(WireFormat wire) { wire_ = wire; }
  const ModelConfig& config() const { return stages_.front()->config(); }
  int64_t n_ctx() const { return stages_.front()->n_ctx(); }  // positions per sequence

  // Runs `rows` through every stage; `logits` gets the rows with want_logits
  // (count x n_vocab), as the last stage computes them.
  absl::Status Forward(std::span<const BatchRow> rows, std::vector<float>* logits);
  void Free(SeqId seq);

 private:
  std::vector<std::unique_ptr<StageEngine>> stages_;
  WireFormat wire_;
  std::vector<float> hidden_;
  v1::Activations wire_buf_;
};

struct PipelineRun {
  std::vector<TokenId> tokens;             // generated (an end-of-generation token included)
  std::vector<std::vector<float>> logits;  // per generated token, when kept
};

// Generation as the coordinator schedules one sequence: the prompt in
// chunks of `prefill_chunk` rows, then one row per step; the sampler sees
// every fed token (prompt included) as its history. Stops after an
// end-of-generation token (when `tokenizer` is given) or `max_tokens`.
// With `forced` non-empty the tokens fed back are forced[i] instead of the
// sampled ones (teacher forcing; `tokens` still records what was sampled).
absl::StatusOr<PipelineRun> RunGeneration(LocalPipeline& pipeline, SeqId seq,
                                          std::span<const TokenId> prompt,
                                          const SamplingParams& sampling, int max_tokens,
                                          const Tokenizer* tokenizer, int prefill_chunk,
                                          bool keep_logits,
                                          std::span<const TokenId> forced = {});

// Teacher forcing through the pipeline: `tokens` as a fresh sequence `seq`
// in chunks of `chunk` rows, every position's logits to `on_row` in order
// (as TeacherForce does for one engine); the sequence is freed afterwards.
absl::Status TeacherForce(LocalPipeline& pipeline, std::span<const TokenId> tokens,
                          int64_t chunk, SeqId seq, const LogitsRowCallback& on_row);

// Perplexity through the pipeline (llama.cpp's method, engine/perplexity.h):
// what the cluster computes, wire format included.
absl::StatusOr<PerplexityResult> PipelinePerplexity(LocalPipeline& pipeline,
                                                    const Tokenizer& tokenizer,
                                                    std::span<const TokenId> tokens,
                                                    int64_t window,
                                                    const PerplexityProgress& progress = nullptr);

}  // namespace bitnet::serving
