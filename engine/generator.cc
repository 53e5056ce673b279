#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace bitnet {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

absl::Status CheckWholeModel(const StageEngine& engine) {
  if (!engine.is_first() || !engine.is_last()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generation needs an engine holding the whole model, this one runs layers [",
        engine.layer_begin(), ", ", engine.layer_end(), ") of ", engine.config().n_layer));
  }
  return absl::OkStatus();
}

// Empty input, ids outside the vocabulary and a sequence longer than the
// context are the caller's mistakes; say which and what to do.
absl::Status CheckTokens(const StageEngine& engine, std::span<const TokenId> tokens,
                         const char* what) {
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " is empty; give at least one token (for example BOS)"));
  }
  const int64_t n_vocab = engine.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token ", i, " of the ", what, " has id ",
                                                     tokens[i], ", outside the vocabulary [0, ",
                                                     n_vocab, ")"));
    }
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > engine.n_ctx()) {
    return absl::OutOfRangeError(absl::StrCat(
        "the ", what, " has ", n, " tokens but the context holds only ", engine.n_ctx(),
        "; shorten it or raise the context size (the model was trained with ",
        engine.config().n_ctx_train, ")"));
  }
  return absl::OkStatus();
}

// Runs tokens[begin, end) at positions begin.. of `seq`, asking for logits of
// the rows in [logits_from, end).
absl::Status ForwardRange(StageEngine& engine, SeqId seq, std::span<const TokenId> tokens,
                          int64_t begin, int64_t end, int64_t logits_from,
                          std::vector<BatchRow>& rows, std::vector<float>& hidden,
                          std::vector<float>& logits) {
  rows.clear();
  for (int64_t i = begin; i < end; ++i) {
    rows.push_back({seq, static_cast<int32_t>(i), tokens[static_cast<size_t>(i)], i >= logits_from});
  }
  if (absl::Status s = engine.Forward(rows, hidden); !s.ok()) return s;
  if (logits_from >= end) {
    logits.clear();
    return absl::OkStatus();
  }
  return engine.Logits(rows, hidden, logits);
}

}  // namespace

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kEndOfGeneration:
    case FinishReason::kStopString: return "stop";
    case FinishReason::kMaxTokens:
    case FinishReason::kContextFull: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "unknown";
}

double GenerationTimings::prompt_tokens_per_second() const {
  return prompt_seconds > 0 ? static_cast<double>(prompt_tokens) / prompt_seconds : 0.0;
}

double GenerationTimings::generation_tokens_per_second() const {
  return decode_seconds > 0 ? static_cast<double>(decode_steps) / decode_seconds : 0.0;
}

// ---------------------------------------------------------------------------
// Stop strings.

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop) {
  for (std::string& s : stop) {
    if (s.empty()) continue;  // an empty stop string would end every generation at once
    max_len_ = std::max(max_len_, s.size());
    stop_.push_back(std::move(s));
  }
}

std::string StopStringMatcher::Push(std::string_view text) {
  if (stopped_) return {};
  text_.append(text);
  // A stop string cannot start before emitted_: text there was released only
  // because no stop string could begin in it.
  size_t first = std::string::npos;
  for (const std::string& s : stop_) first = std::min(first, text_.find(s, emitted_));
  if (first != std::string::npos) {
    std::string out = text_.substr(emitted_, first - emitted_);
    text_.resize(first);
    emitted_ = first;
    stopped_ = true;
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of a stop string.
  size_t hold = 0;
  const size_t open = text_.size() - emitted_;
  for (const std::string& s : stop_) {
    for (size_t k = std::min(s.size() - 1, open); k > hold; --k) {
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  const size_t end = text_.size() - hold;
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return out;
}

std::string StopStringMatcher::Flush() {
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

// ---------------------------------------------------------------------------
// Generation.

absl::StatusOr<GenerationResult> Generate(StageEngine& engine, const Tokenizer& tokenizer,
                                          std::span<const TokenId> prompt,
                                          const GenerateOptions& options,
                                          const TokenCallback& on_token) {
  if (absl::Status s = CheckWholeModel(engine); !s.ok()) return s;
  if (absl::Status s = CheckTokens(engine, prompt, "prompt"); !s.ok()) return s;
  if (absl::Status s = ValidateSamplingParams(options.sampling); !s.ok()) return s;
  if (options.max_new_tokens < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_new_tokens must be >= 0, or -1 for 'until the context is full'; got ",
        options.max_new_tokens));
  }
  if (options.prefill_chunk <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefill_chunk must be positive, got ", options.prefill_chunk));
  }

  const SeqId seq = options.seq;
  engine.FreeSequence(seq);
  absl::Cleanup free_seq = [&] { engine.FreeSequence(seq); };

  GenerationResult result;
  GenerationTimings& t = result.timings;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t n_ctx = engine.n_ctx();
  std::vector<BatchRow> rows;
  std::vector<float> hidden, logits;

  // Prefill: the whole prompt, in chunks, with logits for its last position.
  const Clock::time_point t_prompt = Clock::now();
  for (int64_t b = 0; b < n_prompt; b += options.prefill_chunk) {
    const int64_t e = std::min(n_prompt, b + options.prefill_chunk);
    if (absl::Status s = ForwardRange(engine, seq, prompt, b, e, n_prompt - 1, rows, hidden, logits);
        !s.ok()) {
      return s;
    }
  }
  t.prompt_tokens = n_prompt;
  t.prompt_seconds = SecondsSince(t_prompt);

  Sampler sampler(options.sampling);
  StreamingDetokenizer detok(tokenizer);
  StopStringMatcher matcher(options.stop);
  std::vector<TokenId> history(prompt.begin(), prompt.end());  // the penalty sees the prompt too
  const Clock::time_point t_decode = Clock::now();
  std::optional<FinishReason> reason;
  if (options.max_new_tokens == 0) reason = FinishReason::kMaxTokens;
  while (!reason) {
    const TokenId tok = sampler.Sample(logits, history);
    result.ids.push_back(tok);
    history.push_back(tok);
    const int64_t n_gen = static_cast<int64_t>(result.ids.size());
    const int64_t next_pos = n_prompt + n_gen - 1;  // where `tok` would be fed

    // An end-of-generation token ends the text; its own text (if any) is not
    // part of it.
    const bool eog = options.stop_at_eog && tokenizer.IsEndOfGeneration(tok);
    std::string piece = eog ? std::string() : matcher.Push(detok.Push(tok));
    if (matcher.stopped()) {
      reason = FinishReason::kStopString;
    } else if (eog) {
      reason = FinishReason::kEndOfGeneration;
    } else if (options.max_new_tokens >= 0 && n_gen >= options.max_new_tokens) {
      reason = FinishReason::kMaxTokens;
    } else if (next_pos >= n_ctx) {
      reason = FinishReason::kContextFull;
    }
    if (reason && *reason != FinishReason::kStopString) {
      // Last token: release what was held back (incomplete UTF-8 as U+FFFD);
      // a stop string may still complete in it.
      piece += matcher.Push(detok.Flush());
      if (matcher.stopped()) {
        reason = FinishReason::kStopString;
      } else {
        piece += matcher.Flush();
      }
    }
    result.text += piece;
    if (on_token && !on_token(tok, piece) && !reason) reason = FinishReason::kCancelled;
    if (reason) break;

    rows.assign(1, BatchRow{seq, static_cast<int32_t>(next_pos), tok, true});
    if (absl::Status s = engine.Forward(rows, hidden); !s.ok()) return s;
    if (absl::Status s = engine.Logits(rows, hidden, logits); !s.ok()) return s;
    ++t.decode_steps;
  }
  t.generated_tokens = static_cast<int64_t>(result.ids.size());
  t.decode_seconds = SecondsSince(t_decode);
  result.finish_reason = *reason;
  return result;
}

absl::Status TeacherForce(StageEngine& engine, std::span<const TokenId> tokens, int64_t chunk,
                          SeqId seq, const LogitsRowCallback& on_row) {
  if (absl::Status s = CheckWholeModel(engine); !s.ok()) return s;
  if (absl::Status s = CheckTokens(engine, tokens, "token sequence"); !s.ok()) return s;
  engine.FreeSequence(seq);
  absl::Cleanup free_seq = [&] { engine.FreeSequence(seq); };
  std::vector<BatchRow> rows;
  std::vector<float> hidden;
  const ChunkForward forward = [&](int64_t b, int64_t e, std::vector<float>* logits) {
    return ForwardRange(engine, seq, tokens, b, e, b, rows, hidden, *logits);
  };
  return ForceInChunks(static_cast<int64_t>(tokens.size()), chunk, engine.config().n_vocab,
                       forward, on_row);
}

absl::Status ForceInChunks(int64_t n_tokens, int64_t chunk, int64_t n_vocab,
                           const ChunkForward& forward, const LogitsRowCallback& on_row) {
  if (chunk <= 0) return absl::InvalidArgumentError(absl::StrCat("chunk must be positive, got ", chunk));
  std::vector<float> logits;
  for (int64_t b = 0; b < n_tokens; b += chunk) {
    const int64_t e = std::min(n_tokens, b + chunk);
    if (absl::Status s = forward(b, e, &logits); !s.ok()) return s;
    for (int64_t i = b; i < e; ++i) {
      const std::span<const float> row(logits.data() + (i - b) * n_vocab,
                                       static_cast<size_t>(n_vocab));
      if (absl::Status s = on_row(i, row); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> TeacherForcedLogits(StageEngine& engine,
                                                       std::span<const TokenId> tokens,
                                                       int64_t chunk, SeqId seq) {
  std::vector<float> all;
  absl::Status s = TeacherForce(engine, tokens, chunk, seq,
                                [&](int64_t, std::span<const float> row) {
                                  all.insert(all.end(), row.begin(), row.end());
                                  return absl::OkStatus();
                                });
  if (!s.ok()) return s;
  return all;
}

}  // namespace bitnet
