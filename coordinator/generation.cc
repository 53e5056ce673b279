#include "coordinator/generation.h"

#include <algorithm>

namespace bitnet::coordinator {

Generation::Generation(uint64_t id, GenerationSpec spec, absl::Time submitted)
    : id_(id), spec_(std::move(spec)), submitted_(submitted) {}

void Generation::MarkRunning(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (!running_) admitted_ = now;
  running_ = true;
}

void Generation::Append(TokenId token, std::string_view text, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (tokens_.empty()) first_token_ = now;
  tokens_.push_back(token);
  text_.append(text);
}

void Generation::Finish(v1::FinishReason reason, std::string_view tail_text, absl::Status error,
                        absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  text_.append(tail_text);
  finished_ = true;
  reason_ = reason;
  error_ = std::move(error);
  finished_at_ = now;
}

bool Generation::Next(Cursor* cursor, v1::GenerateResponse* out, absl::Duration timeout) {
  auto has_news = [this, cursor]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return tokens_.size() > cursor->tokens || text_.size() > cursor->text ||
           (finished_ && !cursor->final_sent);
  };
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&has_news), timeout);
  if (!has_news()) return false;
  out->set_request_tag(spec_.request_tag);
  out->set_job_id(spec_.job_id);
  for (size_t i = cursor->tokens; i < tokens_.size(); ++i) out->add_token_ids(tokens_[i]);
  out->set_text(text_.substr(cursor->text));
  cursor->tokens = tokens_.size();
  cursor->text = text_.size();
  if (finished_) {
    FillFinal(out);
    cursor->final_sent = true;
  }
  return true;
}

bool Generation::WaitFinished(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&finished_), timeout);
}

bool Generation::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

absl::Status Generation::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

v1::JobState Generation::state() const {
  absl::MutexLock lock(&mu_);
  if (!finished_) return running_ ? v1::JOB_STATE_RUNNING : v1::JOB_STATE_QUEUED;
  switch (reason_) {
    case v1::FINISH_REASON_CANCELLED: return v1::JOB_STATE_CANCELLED;
    case v1::FINISH_REASON_ERROR:
    case v1::FINISH_REASON_DEADLINE: return v1::JOB_STATE_FAILED;
    default: return v1::JOB_STATE_SUCCEEDED;
  }
}

void Generation::FillFinal(v1::GenerateResponse* out) const {
  out->set_finish_reason(reason_);
  out->mutable_usage()->set_prompt_tokens(static_cast<int32_t>(spec_.prompt.size()));
  out->mutable_usage()->set_completion_tokens(static_cast<int32_t>(tokens_.size()));
  FillTiming(out->mutable_timing());
  if (!error_.ok()) out->set_error(std::string(error_.message()));
}

void Generation::FillTiming(v1::Timing* t) const {
  auto ms = [](absl::Duration d) { return absl::ToDoubleMilliseconds(d); };
  if (admitted_ != absl::InfinitePast()) t->set_queue_ms(ms(admitted_ - submitted_));
  if (first_token_ != absl::InfinitePast()) {
    t->set_time_to_first_token_ms(ms(first_token_ - submitted_));
  }
  if (finished_) {
    t->set_total_ms(ms(finished_at_ - submitted_));
    if (tokens_.size() > 1 && first_token_ != absl::InfinitePast()) {
      const double secs = absl::ToDoubleSeconds(finished_at_ - first_token_);
      if (secs > 0) t->set_decode_tokens_per_s(static_cast<double>(tokens_.size() - 1) / secs);
    }
  }
}

void Generation::FillJob(v1::Job* job, bool summary_only) const {
  const v1::JobState st = state();
  absl::MutexLock lock(&mu_);
  job->set_id(spec_.job_id);
  job->set_state(st);
  job->set_request_tag(spec_.request_tag);
  job->set_created_unix_ms(absl::ToUnixMillis(submitted_));
  if (!summary_only) {
    for (TokenId t : tokens_) job->add_token_ids(t);
    job->set_text(text_);
  }
  job->mutable_usage()->set_prompt_tokens(static_cast<int32_t>(spec_.prompt.size()));
  job->mutable_usage()->set_completion_tokens(static_cast<int32_t>(tokens_.size()));
  FillTiming(job->mutable_timing());
  if (finished_) job->set_finish_reason(reason_);
  if (!error_.ok()) job->set_error(std::string(error_.message()));
}

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string StopMatcher::Push(std::string_view text) {
  if (matched_) return "";
  if (stops_.empty()) return std::string(text);
  held_.append(text);
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    matched_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest tail that some stop sequence starts with.
  size_t keep = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(held_.size(), s.size() - 1); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(held_);
  return matched_ ? std::string() : out;
}

}  // namespace bitnet::coordinator
