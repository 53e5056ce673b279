// Pre-tokenization: splitting text into the "words" that BPE merges never
// cross. Hand-written equivalents of the regular expressions llama.cpp uses for
// `tokenizer.ggml.pre`, with llama.cpp's exact behaviour (including how it
// runs a list of expressions one after another over the previous pieces).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace bitnet::bpe {

enum class PreTokenizer {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // llama.cpp's fallback, four expressions applied in turn:
  // [\p{P}\$\+<=>\^~\|]+ , then the GPT-2 one, then \p{N}+ , then [0-9][0-9][0-9]
  kDefault,
};

// What a `tokenizer.ggml.pre` value means, as llama.cpp reads it.
struct PreTokenizerConfig {
  PreTokenizer kind = PreTokenizer::kGpt2;
  bool add_bos = false;        // default when tokenizer.ggml.add_bos_token is absent
  bool ignore_merges = false;  // a word that is itself a token is emitted whole
};

// `name` is the metadata value; empty means the key is absent (-> default).
absl::StatusOr<PreTokenizerConfig> LookupPreTokenizer(std::string_view name);

// Splits `cps` into words and returns each word's length in code points; the
// lengths add up to cps.size() and none is zero.
std::vector<size_t> SplitWords(PreTokenizer kind, std::span<const uint32_t> cps);

}  // namespace bitnet::bpe
