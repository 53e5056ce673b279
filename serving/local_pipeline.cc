#include "serving/local_pipeline.h"

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "model/model_weights.h"

namespace bitnet::serving {

absl::StatusOr<std::vector<int>> EvenStageBounds(int n_layer, int stages) {
  if (stages < 1 || stages > n_layer) {
    return absl::InvalidArgumentError(absl::StrCat("stages must be in [1, ", n_layer,
                                                   "] (the model's layers), got ", stages));
  }
  std::vector<int> bounds;
  for (int i = 0; i <= stages; ++i) bounds.push_back(i * n_layer / stages);
  return bounds;
}

absl::StatusOr<std::unique_ptr<LocalPipeline>> LocalPipeline::Create(const gguf::File& file,
                                                                     std::vector<int> bounds,
                                                                     const EngineOptions& options,
                                                                     WireFormat wire) {
  if (bounds.size() < 2) return absl::InvalidArgumentError("bounds: need {0, ..., n_layer}");
  auto pipeline = std::unique_ptr<LocalPipeline>(new LocalPipeline());
  pipeline->wire_ = wire;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    auto weights = ModelWeights::Load(file, bounds[i], bounds[i + 1]);
    if (!weights.ok()) return weights.status();
    auto engine = StageEngine::Create(*weights, options);
    if (!engine.ok()) return engine.status();
    pipeline->stages_.push_back(std::move(*engine));
  }
  if (!pipeline->stages_.front()->is_first() || !pipeline->stages_.back()->is_last()) {
    return absl::InvalidArgumentError("bounds must start at 0 and end at n_layer");
  }
  return pipeline;
}

absl::Status LocalPipeline::Forward(std::span<const BatchRow> rows, std::vector<float>* logits) {
  const int64_t n_embd = config().n_embd;
  const int64_t n = static_cast<int64_t>(rows.size());
  hidden_.assign(static_cast<size_t>(n * n_embd), 0.f);
  for (size_t s = 0; s < stages_.size(); ++s) {
    if (s > 0) {
      // Exactly what crosses the network between stage s-1 and stage s.
      EncodeActivations(hidden_.data(), n, n_embd, wire_, &wire_buf_);
      if (auto st = DecodeActivations(wire_buf_, n_embd, &hidden_); !st.ok()) return st;
    }
    if (auto st = stages_[s]->Forward(rows, hidden_); !st.ok()) return st;
  }
  return stages_.back()->Logits(rows, hidden_, *logits);
}

void LocalPipeline::Free(SeqId seq) {
  for (auto& s : stages_) s->FreeSequence(seq);
}

absl::StatusOr<PipelineRun> RunGeneration(LocalPipeline& pipeline, SeqId seq,
                                          std::span<const TokenId> prompt,
                                          const SamplingParams& sampling, int max_tokens,
                                          const Tokenizer* tokenizer, int prefill_chunk,
                                          bool keep_logits, std::span<const TokenId> forced) {
  if (prompt.empty()) return absl::InvalidArgumentError("prompt: empty");
  if (prefill_chunk < 1) return absl::InvalidArgumentError("prefill_chunk must be >= 1");
  pipeline.Free(seq);
  PipelineRun run;
  Sampler sampler(sampling);
  std::vector<TokenId> fed;  // the sampler's history
  std::vector<BatchRow> rows;
  std::vector<float> logits;
  const int64_t n_vocab = pipeline.config().n_vocab;
  std::vector<TokenId> pending(prompt.begin(), prompt.end());
  int32_t pos = 0;
  absl::Status status;
  while (static_cast<int>(run.tokens.size()) < max_tokens) {
    // Feed `pending` in chunks; the last row of the last chunk wants logits.
    for (size_t begin = 0; begin < pending.size(); begin += static_cast<size_t>(prefill_chunk)) {
      const size_t end = std::min(pending.size(), begin + static_cast<size_t>(prefill_chunk));
      rows.clear();
      for (size_t i = begin; i < end; ++i) {
        rows.push_back(BatchRow{seq, pos++, pending[i], i + 1 == pending.size()});
        fed.push_back(pending[i]);
      }
      status = pipeline.Forward(rows, &logits);
      if (!status.ok()) break;
    }
    if (!status.ok()) break;
    std::span<const float> row(logits.data(), static_cast<size_t>(n_vocab));
    const TokenId next = sampler.Sample(row, fed);
    run.tokens.push_back(next);
    if (keep_logits) run.logits.emplace_back(row.begin(), row.end());
    const size_t step = run.tokens.size() - 1;
    const TokenId feed = step < forced.size() ? forced[step] : next;
    if (tokenizer != nullptr && tokenizer->IsEndOfGeneration(feed)) break;
    pending.assign(1, feed);
  }
  pipeline.Free(seq);
  if (!status.ok()) return status;
  return run;
}

absl::Status TeacherForce(LocalPipeline& pipeline, std::span<const TokenId> tokens,
                          int64_t chunk, SeqId seq, const LogitsRowCallback& on_row) {
  // Token ids and the context length are checked by the stages themselves.
  pipeline.Free(seq);
  absl::Cleanup free_seq = [&] { pipeline.Free(seq); };
  std::vector<BatchRow> rows;
  const ChunkForward forward = [&](int64_t b, int64_t e, std::vector<float>* logits) {
    rows.clear();
    for (int64_t i = b; i < e; ++i) {
      rows.push_back(BatchRow{seq, static_cast<int32_t>(i), tokens[static_cast<size_t>(i)], true});
    }
    return pipeline.Forward(rows, logits);
  };
  return ForceInChunks(static_cast<int64_t>(tokens.size()), chunk, pipeline.config().n_vocab,
                       forward, on_row);
}

absl::StatusOr<PerplexityResult> PipelinePerplexity(LocalPipeline& pipeline,
                                                    const Tokenizer& tokenizer,
                                                    std::span<const TokenId> tokens,
                                                    int64_t window,
                                                    const PerplexityProgress& progress) {
  const WindowForcer force = [&pipeline](std::span<const TokenId> w, const LogitsRowCallback& on_row) {
    return TeacherForce(pipeline, w, /*chunk=*/512, /*seq=*/0, on_row);
  };
  return ComputePerplexity(force, pipeline.n_ctx(), tokenizer, tokens, window, progress);
}

}  // namespace bitnet::serving
