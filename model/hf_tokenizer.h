// Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json) ->
// TokenizerData, with the conventions llama.cpp's converter applies, so a
// model loaded from a Hugging Face directory tokenizes exactly like its GGUF
// conversion:
//   - byte-level BPE (GPT-2 / LLaMA-3): model.vocab + model.merges; the
//     pre-tokenizer is recognised from tokenizer.json ("llama-bpe" for the
//     LLaMA-3 split regex, "gpt-2" for a plain ByteLevel pre-tokenizer);
//   - SentencePiece-converted BPE (byte_fallback, "▁" for spaces; LLaMA-1/2,
//     1bitLLM): model "llama", each token's score = minus the rank of the
//     first merge that produces it, so llama.cpp's highest-score-first merging
//     picks the merges in the same order.
// Added tokens become control tokens when "special", user-defined otherwise.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace bitnet {

// The split expressions of the byte-level pre-tokenizers this project
// implements, exactly as tokenizer.json spells them.
inline constexpr std::string_view kHfLlama3SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline constexpr std::string_view kHfGpt2SplitRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct HfTokenizer {
  TokenizerData data;
  std::string chat_template;  // tokenizer_config.json "chat_template" (may be empty)
};

// `tokenizer_config_json` may be empty. `min_vocab` pads the vocabulary with
// unused "[PAD<id>]" tokens up to the model's vocab_size, as llama.cpp does.
absl::StatusOr<HfTokenizer> ParseHfTokenizer(std::string_view tokenizer_json,
                                             std::string_view tokenizer_config_json = {},
                                             int64_t min_vocab = 0);
// Reads <dir>/tokenizer.json and, if present, <dir>/tokenizer_config.json.
absl::StatusOr<HfTokenizer> LoadHfTokenizer(const std::string& dir, int64_t min_vocab = 0);

// Reads a whole (small) text file; NOT_FOUND if it does not exist.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace bitnet
