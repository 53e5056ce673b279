// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty,
// seeded and reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "model/tokenizer.h"

namespace bitnet {

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy (argmax of the raw logits)
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off (llama.cpp's rule: divide positive, multiply negative)
  int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the field when a parameter is out of range.
absl::Status ValidateSamplingParams(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from one row of logits; `history` feeds the repetition penalty.
  TokenId Sample(std::span<const float> logits, std::span<const TokenId> history);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace bitnet
