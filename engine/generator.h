// The single-node generation loop: prefill a prompt in one (chunked) batch,
// then decode token by token with a Sampler until end-of-generation, a stop
// string, the token limit or a full context. Also teacher forcing: the logits
// of every position of a token sequence (for oracle checks and perplexity).
//
// The engine must be the whole model (first and last stage). The generator
// uses one sequence id of the engine for the duration of a call and frees it
// before returning.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/sampler.h"
#include "engine/stage_engine.h"
#include "model/tokenizer.h"

namespace bitnet {

struct GenerateOptions {
  SamplingParams sampling;
  // New tokens to generate at most; -1: until the context is full.
  int32_t max_new_tokens = 128;
  // Generation stops when the text contains one of these; the stop string
  // and anything after it are not part of the returned or streamed text.
  std::vector<std::string> stop;
  // Stop on the tokenizer's end-of-generation tokens (EOS, EOT).
  bool stop_at_eog = true;
  // Prompt rows per Forward call (a long prompt is prefilled in chunks).
  int64_t prefill_chunk = 512;
  // The engine sequence this call uses (freed at the start and the end).
  SeqId seq = 0;
};

enum class FinishReason {
  kEndOfGeneration,  // an EOS / EOT token was generated
  kStopString,       // one of GenerateOptions::stop appeared in the text
  kMaxTokens,        // max_new_tokens reached
  kContextFull,      // no position left in the context
  kCancelled,        // the token callback returned false
};
// "stop" (end of generation, stop string), "length" (max tokens, context
// full) or "cancelled", the names OpenAI-style APIs and llama-server use.
std::string_view FinishReasonName(FinishReason r);

struct GenerationTimings {
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0;     // prefill, including the first logits
  int64_t generated_tokens = 0;  // tokens sampled (the first comes from the prefill)
  int64_t decode_steps = 0;      // single-token forward passes after the prefill
  double decode_seconds = 0;     // those passes plus sampling
  double prompt_tokens_per_second() const;
  double generation_tokens_per_second() const;  // decode_steps / decode_seconds
};

struct GenerationResult {
  std::vector<TokenId> ids;  // generated ids (an end-of-generation token included)
  std::string text;          // their text, up to a stop string, valid UTF-8
  FinishReason finish_reason = FinishReason::kMaxTokens;
  GenerationTimings timings;
};

// Called once per generated token with the text that became final with it
// (possibly empty: incomplete UTF-8 or a possible stop-string start is held
// back, and released with a later token or the last call). Return false to
// stop generating (finish reason kCancelled).
using TokenCallback = std::function<bool(TokenId id, std::string_view new_text)>;

// Errors: INVALID_ARGUMENT for an empty prompt, out-of-range token ids, bad
// sampling parameters or an engine that is not the whole model; OUT_OF_RANGE
// when the prompt does not fit the engine's context.
absl::StatusOr<GenerationResult> Generate(StageEngine& engine, const Tokenizer& tokenizer,
                                          std::span<const TokenId> prompt,
                                          const GenerateOptions& options,
                                          const TokenCallback& on_token = nullptr);

// Teacher forcing, streamed: runs `tokens` through the model in chunks of
// `chunk` positions and hands each position's logits (n_vocab floats, valid
// during the call) to `on_row` in order; an error from it stops the run.
using LogitsRowCallback = std::function<absl::Status(int64_t pos, std::span<const float> logits)>;
absl::Status TeacherForce(StageEngine& engine, std::span<const TokenId> tokens, int64_t chunk,
                          SeqId seq, const LogitsRowCallback& on_row);

// The chunk loop of teacher forcing, for any forward pass: `forward(b, e,
// logits)` runs positions [b, e) and fills `logits` with their e - b rows of
// n_vocab; each row then goes to `on_row` in order.
using ChunkForward =
    std::function<absl::Status(int64_t begin, int64_t end, std::vector<float>* logits)>;
absl::Status ForceInChunks(int64_t n_tokens, int64_t chunk, int64_t n_vocab,
                           const ChunkForward& forward, const LogitsRowCallback& on_row);

// Teacher forcing: runs `tokens` through the model in chunks of `chunk`
// positions and returns the logits of every position, tokens.size() rows of
// n_vocab (row i is the distribution of the token after tokens[0..i]).
absl::StatusOr<std::vector<float>> TeacherForcedLogits(StageEngine& engine,
                                                       std::span<const TokenId> tokens,
                                                       int64_t chunk = 512, SeqId seq = 0);

// Splits the text generated so far into what can be shown now and what must
// wait, given stop strings: a complete stop string ends the text there; a
// suffix that may be the start of a stop string is held back. Exposed for
// tests and for other generation loops (the serving path).
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop);
  // Appends text; returns the part that is now final (never any stop string).
  std::string Push(std::string_view text);
  // True once a stop string has been seen; later Push calls return nothing.
  bool stopped() const { return stopped_; }
  // The held-back text (when generation ends for another reason).
  std::string Flush();

 private:
  std::vector<std::string> stop_;
  size_t max_len_ = 0;
  std::string text_;     // everything pushed, up to a stop string
  size_t emitted_ = 0;   // bytes of text_ already returned
  bool stopped_ = false;
};

}  // namespace bitnet
