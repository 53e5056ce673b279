// Perplexity of a token sequence, computed the way llama.cpp's perplexity
// tool does: the tokens are cut into windows of n_ctx; each window starts
// with BOS (replacing its first token, if the model uses BOS) and only its
// second half is scored, so every scored token has at least n_ctx/2 tokens of
// context. A sequence shorter than one window is scored as a single window.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "absl/status/statusor.h"
#include "engine/generator.h"
#include "engine/stage_engine.h"
#include "model/tokenizer.h"

namespace bitnet {

struct PerplexityResult {
  double perplexity = 0;     // exp(mean negative log-likelihood)
  double mean_nll = 0;       // nats per scored token
  int64_t tokens_total = 0;  // tokens of the input
  int64_t tokens_evaluated = 0;  // tokens run through the model
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  double seconds = 0;
  double tokens_per_second() const;  // evaluated tokens per second
};

// Called after each window with (windows done, windows total, running ppl).
using PerplexityProgress = std::function<void(int64_t done, int64_t total, double ppl)>;

// `window` <= the engine's context. INVALID_ARGUMENT for fewer than 2 tokens
// or a window below 2; errors from the engine pass through.
absl::StatusOr<PerplexityResult> ComputePerplexity(StageEngine& engine, const Tokenizer& tokenizer,
                                                   std::span<const TokenId> tokens, int64_t window,
                                                   const PerplexityProgress& progress = nullptr);

// Any model that can be teacher-forced: runs one window of tokens as a fresh
// sequence and hands each position's logits to `on_row` in order (a
// single-node engine, or a pipeline of stages with a wire format between).
using WindowForcer =
    std::function<absl::Status(std::span<const TokenId> window, const LogitsRowCallback& on_row)>;
// The same computation over `force`; `max_window` is its context length.
absl::StatusOr<PerplexityResult> ComputePerplexity(const WindowForcer& force, int64_t max_window,
                                                   const Tokenizer& tokenizer,
                                                   std::span<const TokenId> tokens, int64_t window,
                                                   const PerplexityProgress& progress = nullptr);

}  // namespace bitnet
