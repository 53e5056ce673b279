#include "coordinator/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "serving/log.h"
#include "serving/sampling_params.h"

namespace bitnet::coordinator {

// A running sequence. `tokens` is prompt + generated; the first n_past of
// them are in every stage's KV cache.
struct Scheduler::Seq {
  Seq(std::shared_ptr<Generation> g, const Tokenizer& tok)
      : gen(std::move(g)),
        tokens(gen->spec().prompt),
        detok(tok),
        stop(gen->spec().stop) {}
  std::shared_ptr<Generation> gen;
  std::vector<TokenId> tokens;
  int64_t n_past = 0;
  int32_t generated = 0;
  bool in_flight = false;
  bool start_sent = false;  // the last stage has its sampling params (this epoch)
  bool has_kv = false;      // some stage may hold KV for it (this epoch)
  uint64_t last_batch = 0;  // for round-robin among ready sequences
  StreamingDetokenizer detok;
  StopMatcher stop;
};

struct Scheduler::Inflight {
  struct Entry {
    uint64_t seq = 0;
    int32_t rows = 0;
    bool samples = false;
  };
  std::vector<Entry> entries;
  absl::Time formed;
};

Scheduler::Scheduler(SchedulerOptions options, const Tokenizer* tokenizer, int64_t n_ctx)
    : options_(options), tokenizer_(tokenizer), n_ctx_(n_ctx) {
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

absl::StatusOr<std::shared_ptr<Generation>> Scheduler::Submit(GenerationSpec spec) {
  absl::MutexLock lock(&mu_);
  if (stop_) return absl::UnavailableError("the server is shutting down");
  // Before the first placement there is nothing to wait for; during a
  // re-placement requests queue (and fail after recovery_timeout if it never
  // comes back).
  if (!attached_ && !ever_attached_) {
    return absl::UnavailableError(
        absl::StrCat("the model is not being served yet (", unavailable_reason_,
                     "); retry shortly, or watch grpc.health.v1 for SERVING"));
  }
  if (static_cast<int>(queue_.size()) >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request queue is full (", queue_.size(), " waiting, ", active_.size(),
        " running); retry later or raise --max_queue"));
  }
  auto gen = std::make_shared<Generation>(next_seq_id_++, std::move(spec), absl::Now());
  queue_.push_back(gen);
  dirty_ = true;
  return gen;
}

void Scheduler::Wake() {
  absl::MutexLock lock(&mu_);
  dirty_ = true;
}

void Scheduler::AttachPipeline(uint64_t epoch, int n_stages, SendFn send) {
  absl::MutexLock lock(&mu_);
  attached_ = true;
  ever_attached_ = true;
  epoch_ = epoch;
  n_stages_ = std::max(1, n_stages);
  send_ = std::move(send);
  dirty_ = true;
}

void Scheduler::DetachPipeline(const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  DetachLocked(why);
}

void Scheduler::DetachLocked(const absl::Status& why) {
  if (!attached_) return;
  attached_ = false;
  send_ = nullptr;
  detached_since_ = absl::Now();
  detach_reason_ = why;
  inflight_.clear();
  // A new placement starts with empty caches: nothing to free, and every
  // running sequence is prefilled again (prompt + what it generated so far).
  pending_frees_.clear();
  for (auto& [id, s] : active_) {
    s->n_past = 0;
    s->in_flight = false;
    s->start_sent = false;
    s->has_kv = false;
  }
  if (!active_.empty()) {
    serving::LogLine("scheduler", absl::StrCat("pipeline detached (", why.message(), "); ",
                                               active_.size(),
                                               " running sequences wait for a new placement"));
  }
}

void Scheduler::SetUnavailableReason(std::string reason) {
  absl::MutexLock lock(&mu_);
  unavailable_reason_ = std::move(reason);
}

void Scheduler::OnResult(v1::StageFrame frame) {
  absl::MutexLock lock(&mu_);
  results_.push_back(std::move(frame));
  dirty_ = true;
}

Scheduler::Stats Scheduler::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.queued = static_cast<int>(queue_.size());
  s.active = static_cast<int>(active_.size());
  s.inflight_batches = static_cast<int>(inflight_.size());
  s.tokens_generated = tokens_generated_;
  s.requests_finished = requests_finished_;
  s.batches_completed = batches_completed_;
  s.batch_round_trip_seconds = round_trip_seconds_;
  s.batch_compute_seconds = compute_seconds_;
  s.n_stages = attached_ ? n_stages_ : 0;
  return s;
}

void Scheduler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  const absl::Status why = absl::UnavailableError("the server is shutting down");
  for (auto& gen : queue_) gen->Finish(v1::FINISH_REASON_ERROR, "", why, now);
  queue_.clear();
  std::vector<uint64_t> ids;
  for (auto& [id, s] : active_) ids.push_back(id);
  for (uint64_t id : ids) FinishSeq(id, v1::FINISH_REASON_ERROR, why, now);
}

void Scheduler::Loop() {
  while (true) {
    std::vector<v1::StageFrame> out;
    SendFn send;
    uint64_t epoch = 0;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return dirty_ || stop_; };
      // The timeout bounds how late a deadline is noticed.
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Milliseconds(20));
      if (stop_) return;
      dirty_ = false;
      const absl::Time now = absl::Now();
      DrainResults(now);
      Reap(now);
      if (attached_) {
        Admit(now);
        FormFrames(&out);
      }
      send = send_;
      epoch = epoch_;
    }
    // Sending can block on a slow stage; the lock is free meanwhile so
    // results and new requests keep flowing in.
    for (const v1::StageFrame& f : out) {
      absl::Status s = send(f);
      if (!s.ok()) {
        absl::MutexLock lock(&mu_);
        if (attached_ && epoch_ == epoch) DetachLocked(s);
        break;
      }
    }
  }
}

void Scheduler::DrainResults(absl::Time now) {
  while (!results_.empty()) {
    v1::StageFrame frame = std::move(results_.front());
    results_.pop_front();
    HandleResult(frame, now);
  }
}

void Scheduler::HandleResult(const v1::StageFrame& frame, absl::Time now) {
  if (!attached_ || frame.epoch() != epoch_ || frame.batch_id() == 0) return;
  auto it = inflight_.find(frame.batch_id());
  if (it == inflight_.end()) return;
  std::unique_ptr<Inflight> batch = std::move(it->second);
  inflight_.erase(it);
  ++batches_completed_;
  round_trip_seconds_ += absl::ToDoubleSeconds(now - batch->formed);
  for (const v1::StageTiming& t : frame.timings()) compute_seconds_ += t.compute_us() * 1e-6;

  int expected = 0;
  for (const auto& e : batch->entries) expected += e.samples ? 1 : 0;
  absl::Status error;
  if (frame.has_error()) {
    error = absl::Status(static_cast<absl::StatusCode>(frame.error().code()),
                         frame.error().message());
    if (error.ok()) error = absl::InternalError(frame.error().message());
  } else if (frame.sampled_size() != expected) {
    error = absl::InternalError(absl::StrCat("the last stage returned ", frame.sampled_size(),
                                             " tokens for ", expected, " sampled rows"));
  }
  int j = 0;
  for (const auto& e : batch->entries) {
    const TokenId token = (e.samples && error.ok()) ? frame.sampled(j++) : -1;
    auto sit = active_.find(e.seq);
    if (sit == active_.end()) continue;  // finished or cancelled meanwhile
    Seq& s = *sit->second;
    s.in_flight = false;
    if (!error.ok()) {
      FinishSeq(e.seq, v1::FINISH_REASON_ERROR, error, now);
      continue;
    }
    s.n_past += e.rows;
    if (e.samples) AcceptToken(s, token, now);
  }
}

void Scheduler::AcceptToken(Seq& s, TokenId token, absl::Time now) {
  const uint64_t id = s.gen->id();
  if (token < 0 || token >= tokenizer_->n_vocab()) {
    FinishSeq(id, v1::FINISH_REASON_ERROR,
              absl::InternalError(absl::StrCat("the last stage sampled token ", token,
                                               " outside the vocabulary")),
              now);
    return;
  }
  const GenerationSpec& spec = s.gen->spec();
  s.tokens.push_back(token);
  ++s.generated;
  ++tokens_generated_;
  const bool eos = !spec.ignore_eos && tokenizer_->IsEndOfGeneration(token);
  std::string text;
  if (!eos) text = s.stop.Push(s.detok.Push(token));
  s.gen->Append(token, text, now);
  if (eos) {
    FinishSeq(id, v1::FINISH_REASON_STOP, absl::OkStatus(), now);
  } else if (s.stop.matched()) {
    FinishSeq(id, v1::FINISH_REASON_STOP_SEQUENCE, absl::OkStatus(), now);
  } else if (s.generated >= spec.max_tokens) {
    FinishSeq(id, v1::FINISH_REASON_LENGTH, absl::OkStatus(), now);
  } else if (static_cast<int64_t>(s.tokens.size()) > n_ctx_) {
    // The next row would sit at position n_ctx: the context is full.
    FinishSeq(id, v1::FINISH_REASON_CONTEXT, absl::OkStatus(), now);
  }
}

void Scheduler::FinishSeq(uint64_t id, v1::FinishReason reason, absl::Status error,
                          absl::Time now) {
  auto it = active_.find(id);
  if (it == active_.end()) return;
  Seq& s = *it->second;
  std::string tail;
  if (!s.stop.matched()) {
    tail = s.stop.Push(s.detok.Flush());
    tail += s.stop.Flush();
  }
  s.gen->Finish(reason, tail, std::move(error), now);
  // The free travels behind any frame of this sequence still in flight.
  if (s.has_kv) pending_frees_.push_back(id);
  active_.erase(it);
  ++requests_finished_;
}

void Scheduler::Reap(absl::Time now) {
  // Cancelled, past their deadline, or waiting on a pipeline that did not
  // come back in time.
  const bool given_up = !attached_ && ever_attached_ &&
                        now - detached_since_ > options_.recovery_timeout;
  const absl::Status gone = absl::UnavailableError(absl::StrCat(
      "the pipeline broke (", detach_reason_.message(), ") and no new placement came in time"));
  for (auto it = queue_.begin(); it != queue_.end();) {
    Generation& g = **it;
    if (g.cancel_requested()) {
      g.Finish(v1::FINISH_REASON_CANCELLED, "", absl::OkStatus(), now);
    } else if (now >= g.spec().deadline) {
      g.Finish(v1::FINISH_REASON_DEADLINE, "",
               absl::DeadlineExceededError("the deadline passed while the request was queued"),
               now);
    } else if (given_up) {
      g.Finish(v1::FINISH_REASON_ERROR, "", gone, now);
    } else {
      ++it;
      continue;
    }
    ++requests_finished_;
    it = queue_.erase(it);
  }
  std::vector<std::pair<uint64_t, v1::FinishReason>> done;
  for (auto& [id, s] : active_) {
    if (s->gen->cancel_requested()) {
      done.emplace_back(id, v1::FINISH_REASON_CANCELLED);
    } else if (now >= s->gen->spec().deadline) {
      done.emplace_back(id, v1::FINISH_REASON_DEADLINE);
    } else if (given_up) {
      done.emplace_back(id, v1::FINISH_REASON_ERROR);
    }
  }
  for (const auto& [id, reason] : done) {
    absl::Status why;
    if (reason == v1::FINISH_REASON_DEADLINE) {
      why = absl::DeadlineExceededError("the deadline passed during generation");
    } else if (reason == v1::FINISH_REASON_ERROR) {
      why = gone;
    }
    FinishSeq(id, reason, why, now);
  }
}

void Scheduler::Admit(absl::Time now) {
  while (static_cast<int>(active_.size()) < options_.max_active && !queue_.empty()) {
    std::shared_ptr<Generation> gen = std::move(queue_.front());
    queue_.pop_front();
    gen->MarkRunning(now);
    const uint64_t id = gen->id();
    active_.emplace(id, std::make_unique<Seq>(std::move(gen), *tokenizer_));
  }
}

void Scheduler::FormFrames(std::vector<v1::StageFrame>* out) {
  const int max_inflight = options_.max_inflight > 0 ? options_.max_inflight : n_stages_ + 1;
  int slots = max_inflight - static_cast<int>(inflight_.size());

  // Ready: not in flight. Decoding sequences first (one row each, latency
  // matters), then prefills; least recently scheduled first within each.
  std::vector<Seq*> ready;
  for (auto& [id, s] : active_) {
    if (!s->in_flight) ready.push_back(s.get());
  }
  std::stable_sort(ready.begin(), ready.end(), [](const Seq* a, const Seq* b) {
    const bool a_prefill = a->tokens.size() - a->n_past > 1;
    const bool b_prefill = b->tokens.size() - b->n_past > 1;
    if (a_prefill != b_prefill) return !a_prefill;
    return a->last_batch < b->last_batch;
  });
  // One micro-batch per stage: the running sequences are spread over
  // n_stages groups so every stage has one to work on, and no more (on one
  // stage, two half batches in a row cost more than one full batch). The
  // extra in-flight slot lets a group that came back leave again before the
  // slowest group returns.
  const size_t stages = static_cast<size_t>(std::max(1, n_stages_));
  const size_t group = std::max<size_t>(1, (active_.size() + stages - 1) / stages);

  size_t i = 0;
  while (slots > 0 && i < ready.size()) {
    // The extra slot is for a full group only: when every stage already has
    // a micro-batch, a partial group waits to merge with the next one that
    // comes back (else on one stage two streams alternate in batches of one
    // and read the weights twice per step).
    const bool pipeline_full = inflight_.size() >= stages;
    if (pipeline_full && ready.size() - i < group) break;
    v1::StageFrame frame;
    const uint64_t batch_id = next_batch_id_++;
    frame.set_epoch(epoch_);
    frame.set_batch_id(batch_id);
    auto batch = std::make_unique<Inflight>();
    batch->formed = absl::Now();
    int tokens = 0;
    size_t seqs = 0;
    while (i < ready.size() && seqs < group && tokens < options_.max_batch_tokens) {
      Seq& s = *ready[i++];
      const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.n_past;
      const int rows = static_cast<int>(std::min<int64_t>(
          {remaining, options_.prefill_chunk, options_.max_batch_tokens - tokens}));
      const uint64_t id = s.gen->id();
      for (int k = 0; k < rows; ++k) {
        frame.add_seq_ids(id);
        frame.add_positions(static_cast<int32_t>(s.n_past + k));
        frame.add_tokens(s.tokens[static_cast<size_t>(s.n_past + k)]);
      }
      const bool samples = s.n_past + rows == static_cast<int64_t>(s.tokens.size());
      if (samples) frame.add_sample_rows(static_cast<uint32_t>(frame.seq_ids_size() - 1));
      if (!s.start_sent) {
        v1::SequenceStart* start = frame.add_starts();
        start->set_seq_id(id);
        serving::SamplingToProto(s.gen->spec().sampling, start->mutable_sampling());
        s.start_sent = true;
      }
      s.in_flight = true;
      s.has_kv = true;
      s.last_batch = batch_id;
      batch->entries.push_back({id, rows, samples});
      tokens += rows;
      ++seqs;
    }
    inflight_[batch_id] = std::move(batch);
    out->push_back(std::move(frame));
    --slots;
  }
  if (!pending_frees_.empty()) {
    if (out->empty()) {
      v1::StageFrame control;  // batch_id 0: frees only
      control.set_epoch(epoch_);
      out->push_back(std::move(control));
    }
    for (uint64_t id : pending_frees_) out->back().add_free(id);
    pending_frees_.clear();
  }
}

}  // namespace bitnet::coordinator
