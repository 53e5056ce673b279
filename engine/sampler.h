// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty,
// seeded and reproducible.
//
// The chain follows llama.cpp's default order: repetition penalty -> top-k ->
// top-p -> min-p -> temperature -> seeded draw. The draw uses std::mt19937_64
// (whose output sequence the standard fixes) and turns its raw 64-bit output
// into a double itself, so a seed gives the same tokens on every platform and
// standard library.
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
  int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at (0: off, -1: all)
  uint64_t seed = 0;
};

// INVALID_ARGUMENT naming the field when a parameter is out of range.
absl::Status ValidateSamplingParams(const SamplingParams& p);

// Sampling parameters that pick the argmax of the raw logits.
SamplingParams GreedySamplingParams();

// Index of the largest value; ties go to the lowest index, NaN never wins
// (0 for an empty or all-NaN row).
TokenId ArgMax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks a token from one row of logits; `history` feeds the repetition penalty.
  // Greedy (temperature <= 0) still applies the repetition penalty, as
  // llama.cpp's chain does; with the default penalty of 1 it is the plain
  // argmax. Returns 0 for an empty row.
  TokenId Sample(std::span<const float> logits, std::span<const TokenId> history);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    TokenId id;
    float logit;
  };
  void ApplyRepetitionPenalty(std::span<const TokenId> history);
  void TopK();
  void TopP();
  void MinP();
  TokenId Draw();
  void CopyLogits();
  double NextUniform();  // in [0, 1), 53 random bits

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<Candidate> cur_;    // surviving candidates, sorted by logit once filtered
  std::vector<double> probs_;     // scratch for softmax
  std::vector<float> sorted_logits_;  // scratch: cur_'s logits, for softmax
  std::vector<uint8_t> penalized_;  // scratch: vocab-sized flags
};

}  // namespace bitnet
