// The sampling chain, in llama.cpp's default order. Candidates are kept sorted
// by logit (descending, ties by lower id) once any filter runs, so that every
// filter and the final draw see one deterministic order.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace bitnet {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

absl::Status Invalid(const char* field, const char* rule, double got) {
  return absl::InvalidArgumentError(
      absl::StrCat("sampling parameter ", field, " ", rule, ", got ", got));
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature)) {
    return Invalid("temperature", "must be a finite number (<= 0 means greedy)", p.temperature);
  }
  if (!(p.top_p >= 0.f && p.top_p <= 1.f)) {
    return Invalid("top_p", "must be in [0, 1] (1 turns it off)", p.top_p);
  }
  if (!(p.min_p >= 0.f && p.min_p <= 1.f)) {
    return Invalid("min_p", "must be in [0, 1] (0 turns it off)", p.min_p);
  }
  if (!(p.repeat_penalty > 0.f) || !std::isfinite(p.repeat_penalty)) {
    return Invalid("repeat_penalty", "must be a positive finite number (1 turns it off)",
                   p.repeat_penalty);
  }
  if (p.repeat_last_n < -1) {
    return Invalid("repeat_last_n", "must be >= -1 (0 turns it off, -1 means the whole history)",
                   p.repeat_last_n);
  }
  return absl::OkStatus();
}

SamplingParams GreedySamplingParams() {
  SamplingParams p;
  p.temperature = 0.f;
  p.top_k = 0;
  p.top_p = 1.f;
  p.min_p = 0.f;
  p.repeat_penalty = 1.f;
  return p;
}

TokenId ArgMax(std::span<const float> logits) {
  TokenId best = 0;
  float best_v = kNegInf;
  bool found = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (!found || v > best_v) {
      best = static_cast<TokenId>(i);
      best_v = v;
      found = true;
    }
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

TokenId Sampler::Sample(std::span<const float> logits, std::span<const TokenId> history) {
  if (logits.empty()) return 0;
  cur_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    // NaN is treated as "impossible" so it can never be picked.
    cur_[i] = {static_cast<TokenId>(i), std::isnan(logits[i]) ? kNegInf : logits[i]};
  }
  ApplyRepetitionPenalty(history);
  if (params_.temperature <= 0.f) {
    // Greedy: the first maximum, i.e. the lowest id among ties.
    size_t best = 0;
    for (size_t i = 1; i < cur_.size(); ++i) {
      if (cur_[i].logit > cur_[best].logit) best = i;
    }
    return cur_[best].id;
  }
  TopK();
  TopP();
  MinP();
  return Draw();
}

// llama.cpp's penalty: each distinct token among the last repeat_last_n of the
// history is penalized once, dividing a positive logit and multiplying a
// negative one (so both move towards "less likely").
void Sampler::ApplyRepetitionPenalty(std::span<const TokenId> history) {
  if (params_.repeat_penalty == 1.f || params_.repeat_last_n == 0 || history.empty()) return;
  size_t n = history.size();
  if (params_.repeat_last_n > 0) n = std::min(n, static_cast<size_t>(params_.repeat_last_n));
  penalized_.assign(cur_.size(), 0);
  for (TokenId id : history.subspan(history.size() - n)) {
    if (id < 0 || static_cast<size_t>(id) >= cur_.size() || penalized_[id]) continue;
    penalized_[id] = 1;
    float& l = cur_[id].logit;  // cur_ is still indexed by id here
    l = l > 0.f ? l / params_.repeat_penalty : l * params_.repeat_penalty;
  }
}

namespace {
// Descending logit, ties by lower id: a total order, so results never depend
// on the sort algorithm.
template <typename C>
bool Before(const C& a, const C& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}
}  // namespace

void Sampler::TopK() {
  const auto cmp = [](const Candidate& a, const Candidate& b) { return Before(a, b); };
  const int32_t k = params_.top_k;
  if (k > 0 && static_cast<size_t>(k) < cur_.size()) {
    std::partial_sort(cur_.begin(), cur_.begin() + k, cur_.end(), cmp);
    cur_.resize(static_cast<size_t>(k));
  } else {
    std::sort(cur_.begin(), cur_.end(), cmp);
  }
}

// Softmax of the (sorted) candidates into probs_, in double.
static void Softmax(std::span<const float> logits_desc, double inv_temp, std::vector<double>& p) {
  p.resize(logits_desc.size());
  const double max = logits_desc[0];
  double sum = 0.0;
  for (size_t i = 0; i < logits_desc.size(); ++i) {
    // (l - max) / T rather than l / T - max / T: no overflow for tiny T.
    p[i] = std::isinf(max) ? (i == 0 ? 1.0 : 0.0)
                           : std::exp((static_cast<double>(logits_desc[i]) - max) * inv_temp);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
}

void Sampler::CopyLogits() {
  sorted_logits_.resize(cur_.size());
  for (size_t i = 0; i < cur_.size(); ++i) sorted_logits_[i] = cur_[i].logit;
}

void Sampler::TopP() {
  if (params_.top_p >= 1.f || cur_.size() <= 1) return;
  CopyLogits();
  Softmax(sorted_logits_, 1.0, probs_);
  // Keep the smallest prefix whose mass reaches top_p (at least one token).
  double cum = 0.0;
  size_t keep = cur_.size();
  for (size_t i = 0; i < cur_.size(); ++i) {
    cum += probs_[i];
    if (cum >= params_.top_p) {
      keep = i + 1;
      break;
    }
  }
  cur_.resize(keep);
}

void Sampler::MinP() {
  if (params_.min_p <= 0.f || cur_.size() <= 1) return;
  // p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p).
  const float max = cur_[0].logit;
  if (std::isinf(max)) return;
  const double threshold = static_cast<double>(max) + std::log(static_cast<double>(params_.min_p));
  size_t keep = 1;
  while (keep < cur_.size() && static_cast<double>(cur_[keep].logit) >= threshold) ++keep;
  cur_.resize(keep);
}

double Sampler::NextUniform() {
  // The top 53 bits of one 64-bit draw: exactly representable, in [0, 1).
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

TokenId Sampler::Draw() {
  CopyLogits();
  Softmax(sorted_logits_, 1.0 / static_cast<double>(params_.temperature), probs_);
  const double u = NextUniform();
  double cum = 0.0;
  for (size_t i = 0; i < probs_.size(); ++i) {
    cum += probs_[i];
    if (u < cum) return cur_[i].id;
  }
  // Rounding left the total a hair below 1: the last token with mass wins.
  for (size_t i = probs_.size(); i-- > 0;) {
    if (probs_[i] > 0.0) return cur_[i].id;
  }
  return cur_[0].id;
}

}  // namespace bitnet
