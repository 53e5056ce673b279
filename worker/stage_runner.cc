#include "worker/stage_runner.h"

#include <algorithm>
#include <chrono>
#include <span>

#include "absl/strings/str_cat.h"
#include "serving/sampling_params.h"

namespace bitnet::worker {

struct StageRunner::SeqSampler {
  explicit SeqSampler(const SamplingParams& p)
      : sampler(p),
        keep(p.repeat_last_n < 0 ? SIZE_MAX : static_cast<size_t>(p.repeat_last_n)) {}
  // Every token fed to the sequence, most recent last, bounded by `keep`
  // (what the repetition penalty looks at; SIZE_MAX: everything).
  void Push(TokenId t) {
    if (keep == 0) return;
    history.push_back(t);
    if (keep != SIZE_MAX && history.size() > 2 * keep) {
      history.erase(history.begin(), history.end() - static_cast<std::ptrdiff_t>(keep));
    }
  }
  std::span<const TokenId> Recent() const {
    const size_t n = std::min(history.size(), keep);
    return std::span<const TokenId>(history).subspan(history.size() - n);
  }
  Sampler sampler;
  size_t keep;
  std::vector<TokenId> history;
};

StageRunner::StageRunner(std::unique_ptr<StageEngine> engine, serving::WireFormat wire,
                         int stage_index)
    : engine_(std::move(engine)), wire_(wire), stage_index_(stage_index) {}

StageRunner::~StageRunner() = default;

void StageRunner::Process(v1::StageFrame& frame) {
  const auto start = std::chrono::steady_clock::now();
  if (!frame.has_error() && frame.seq_ids_size() > 0) {
    absl::Status s = Run(frame);
    if (!s.ok()) {
      frame.clear_hidden();
      frame.clear_sampled();
      v1::StageError* e = frame.mutable_error();
      e->set_code(static_cast<int>(s.code()));
      e->set_message(absl::StrCat("stage ", stage_index_, ": ", s.message()));
      e->set_stage_index(stage_index_);
    }
  } else if (frame.has_error()) {
    frame.clear_hidden();
  }
  for (uint64_t seq : frame.free()) Free(seq);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  busy_seconds_ += secs;
  ++frames_;
  rows_done_ += static_cast<uint64_t>(frame.seq_ids_size());
  if (frame.has_hidden()) bytes_out_ += frame.hidden().data().size();
  v1::StageTiming* t = frame.add_timings();
  t->set_stage_index(stage_index_);
  t->set_compute_us(static_cast<uint32_t>(secs * 1e6));
}

absl::Status StageRunner::Run(v1::StageFrame& frame) {
  const int n = frame.seq_ids_size();
  if (frame.positions_size() != n || frame.tokens_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame ", frame.batch_id(), " has ", n, " seq_ids but ", frame.positions_size(),
        " positions and ", frame.tokens_size(), " tokens"));
  }
  rows_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    rows_[i] = BatchRow{frame.seq_ids(i), frame.positions(i), frame.tokens(i), false};
  }
  for (uint32_t r : frame.sample_rows()) {
    if (r >= static_cast<uint32_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("frame ", frame.batch_id(), ": sample row ", r, " of ", n, " rows"));
    }
    rows_[r].want_logits = true;
  }
  const int64_t n_embd = engine_->config().n_embd;
  if (engine_->is_first()) {
    if (frame.has_hidden()) {
      return absl::InvalidArgumentError("the first stage got activations; it embeds tokens");
    }
    hidden_.assign(static_cast<size_t>(n) * static_cast<size_t>(n_embd), 0.f);
  } else {
    if (!frame.has_hidden()) {
      return absl::InvalidArgumentError(
          absl::StrCat("stage ", stage_index_, " got a frame without activations"));
    }
    if (auto s = serving::DecodeActivations(frame.hidden(), n_embd, &hidden_); !s.ok()) return s;
    if (frame.hidden().rows() != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "frame ", frame.batch_id(), " has ", n, " rows but ", frame.hidden().rows(),
          " activation rows"));
    }
  }
  for (const BatchRow& r : rows_) live_.insert(r.seq);
  if (auto s = engine_->Forward(rows_, hidden_); !s.ok()) return s;
  if (engine_->is_last()) {
    frame.clear_hidden();
    return Sample(frame);
  }
  serving::EncodeActivations(hidden_.data(), n, n_embd, wire_, frame.mutable_hidden());
  return absl::OkStatus();
}

absl::Status StageRunner::Sample(v1::StageFrame& frame) {
  for (const v1::SequenceStart& start : frame.starts()) {
    auto params = serving::SamplingFromProto(&start.sampling());
    if (!params.ok()) return params.status();
    samplers_[start.seq_id()] = std::make_unique<SeqSampler>(*params);
  }
  // The history sees every fed token in order, the sampled row's own token
  // included, as a single-node generator would.
  // sampled[j] answers the j-th wanted row in row order (the coordinator
  // lists sample_rows in increasing order).
  size_t next_sample = 0;
  if (auto s = engine_->Logits(rows_, hidden_, logits_); !s.ok()) return s;
  const int64_t n_vocab = engine_->config().n_vocab;
  frame.clear_sampled();
  for (size_t i = 0; i < rows_.size(); ++i) {
    auto it = samplers_.find(rows_[i].seq);
    if (it == samplers_.end()) {
      if (!rows_[i].want_logits) continue;
      return absl::FailedPreconditionError(absl::StrCat(
          "sequence ", rows_[i].seq, " has no sampling parameters on the last stage"));
    }
    it->second->Push(rows_[i].token);
    if (!rows_[i].want_logits) continue;
    std::span<const float> row(logits_.data() + next_sample * static_cast<size_t>(n_vocab),
                               static_cast<size_t>(n_vocab));
    ++next_sample;
    frame.add_sampled(it->second->sampler.Sample(row, it->second->Recent()));
  }
  return absl::OkStatus();
}

void StageRunner::Free(SeqId seq) {
  engine_->FreeSequence(seq);
  samplers_.erase(seq);
  live_.erase(seq);
}

void StageRunner::FreeAll() {
  for (SeqId seq : live_) engine_->FreeSequence(seq);
  live_.clear();
  samplers_.clear();
}

void StageRunner::FillStats(v1::StageStats* stats) const {
  stats->set_live_sequences(engine_->live_sequences());
  stats->set_kv_bytes(engine_->kv_bytes());
  stats->set_frames(frames_);
  stats->set_rows(rows_done_);
  stats->set_busy_seconds(busy_seconds_);
  stats->set_bytes_out(bytes_out_);
}

}  // namespace bitnet::worker
