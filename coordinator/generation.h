// One generation request as its clients see it: the tokens and text produced
// so far, its state, and how it ended. The scheduler appends; any number of
// consumers (a Generate stream, WatchJob streams, GetJob) read it through
// their own cursors, so a slow reader never holds the scheduler up and a late
// watcher replays everything from the start.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <string_view>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bitnet/v1/inference.pb.h"
#include "engine/sampler.h"
#include "model/tokenizer.h"

namespace bitnet::coordinator {

// A validated request, ready for the scheduler.
struct GenerationSpec {
  std::vector<TokenId> prompt;
  SamplingParams sampling;
  int32_t max_tokens = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  absl::Time deadline = absl::InfiniteFuture();
  std::string request_tag;
  std::string job_id;  // empty for a plain Generate call
};

class Generation {
 public:
  Generation(uint64_t id, GenerationSpec spec, absl::Time submitted);

  uint64_t id() const { return id_; }
  const GenerationSpec& spec() const { return spec_; }

  // --- producer side (the scheduler) ---
  void MarkRunning(absl::Time now);
  void Append(TokenId token, std::string_view text, absl::Time now);
  // `error` is OK unless reason is FINISH_REASON_ERROR (then it says why).
  void Finish(v1::FinishReason reason, std::string_view tail_text, absl::Status error,
              absl::Time now);

  // Asks the scheduler to stop this generation (it frees the KV caches).
  void RequestCancel() { cancel_requested_.store(true, std::memory_order_relaxed); }
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_relaxed); }

  // --- consumer side ---
  struct Cursor {
    size_t tokens = 0;
    size_t text = 0;
    bool final_sent = false;
  };
  // Waits up to `timeout` for output past `cursor`, then fills `out` with
  // the new tokens and text (and, once finished, finish reason, usage and
  // timing, setting cursor->final_sent). False when nothing new came.
  bool Next(Cursor* cursor, v1::GenerateResponse* out, absl::Duration timeout);
  // Blocks until the generation finished or `timeout` passed.
  bool WaitFinished(absl::Duration timeout);

  bool finished() const;
  absl::Status error() const;  // OK unless it failed
  v1::JobState state() const;
  void FillJob(v1::Job* job, bool summary_only) const;
  absl::Time created() const { return submitted_; }

 private:
  void FillFinal(v1::GenerateResponse* out) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FillTiming(v1::Timing* t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t id_;
  const GenerationSpec spec_;
  const absl::Time submitted_;
  std::atomic<bool> cancel_requested_{false};

  mutable absl::Mutex mu_;
  std::vector<TokenId> tokens_ ABSL_GUARDED_BY(mu_);
  std::string text_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::FinishReason reason_ ABSL_GUARDED_BY(mu_) = v1::FINISH_REASON_UNSPECIFIED;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  absl::Time admitted_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time first_token_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time finished_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Holds back text that could be the start of a stop sequence, and cuts the
// output where one appears (the stop sequence itself is not emitted).
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Adds newly decoded text; returns what can be released now.
  std::string Push(std::string_view text);
  // At the end of generation: whatever was held back.
  std::string Flush();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace bitnet::coordinator
