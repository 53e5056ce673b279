#include "engine/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bitnet {

double PerplexityResult::tokens_per_second() const {
  return seconds > 0 ? static_cast<double>(tokens_evaluated) / seconds : 0.0;
}

namespace {

// -log softmax(logits)[target], in double.
double NegLogProb(std::span<const float> logits, TokenId target) {
  double max = -INFINITY;
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  return -(static_cast<double>(logits[static_cast<size_t>(target)]) - max - std::log(sum));
}

}  // namespace

absl::StatusOr<PerplexityResult> ComputePerplexity(StageEngine& engine, const Tokenizer& tokenizer,
                                                   std::span<const TokenId> tokens, int64_t window,
                                                   const PerplexityProgress& progress) {
  const WindowForcer force = [&engine](std::span<const TokenId> w, const LogitsRowCallback& on_row) {
    return TeacherForce(engine, w, /*chunk=*/512, /*seq=*/0, on_row);
  };
  return ComputePerplexity(force, engine.n_ctx(), tokenizer, tokens, window, progress);
}

absl::StatusOr<PerplexityResult> ComputePerplexity(const WindowForcer& force, int64_t max_window,
                                                   const Tokenizer& tokenizer,
                                                   std::span<const TokenId> tokens, int64_t window,
                                                   const PerplexityProgress& progress) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "perplexity needs at least 2 tokens of text, got ", n, "; give a longer text"));
  }
  if (window < 2) {
    return absl::InvalidArgumentError(absl::StrCat("the window must be at least 2 tokens, got ", window));
  }
  if (window > max_window) {
    return absl::InvalidArgumentError(absl::StrCat("the window (", window,
                                                   ") is larger than the engine's context (",
                                                   max_window, ")"));
  }
  const int64_t w = std::min(window, n);
  const int64_t n_windows = n / w;
  const bool use_bos = tokenizer.add_bos() && tokenizer.bos() >= 0;
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityResult r;
  r.tokens_total = n;
  double nll = 0;
  std::vector<TokenId> chunk;
  for (int64_t c = 0; c < n_windows; ++c) {
    chunk.assign(tokens.begin() + c * w, tokens.begin() + (c + 1) * w);
    if (use_bos) chunk[0] = tokenizer.bos();
    // Score positions [first, w - 1): each predicts the next token.
    const int64_t first = std::min(w / 2, w - 2);
    absl::Status s = force(chunk, [&](int64_t pos, std::span<const float> logits) {
      if (pos >= first && pos + 1 < w) {
        nll += NegLogProb(logits, chunk[static_cast<size_t>(pos + 1)]);
        ++r.tokens_scored;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    r.tokens_evaluated += w;
    ++r.windows;
    if (progress) progress(r.windows, n_windows, std::exp(nll / static_cast<double>(r.tokens_scored)));
  }
  r.mean_nll = nll / static_cast<double>(r.tokens_scored);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace bitnet
