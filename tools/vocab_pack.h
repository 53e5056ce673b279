// Reads the compact vocabulary files that tools/llama3_vectors/extract.mjs
// writes (a byte-level BPE vocabulary and its merges, e.g. the real LLaMA-3
// vocabulary taken from the npm package llama3-tokenizer-js). Tests use it to
// get the real 128256-token vocabulary without npm; bitnet-synth can embed it
// in synthetic models. The format is described in extract.mjs.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace bitnet::tools {

// Parses a vocabulary pack into TokenizerData: tokens in GPT-2 byte-mapped
// form, control tokens typed kControl, merges in rank order, `pre` as given,
// BOS / EOS found by their LLaMA-3 texts (<|begin_of_text|>, <|end_of_text|>)
// when present, add_bos = true. Every length and id is bounds-checked.
absl::StatusOr<TokenizerData> ParseVocabPack(std::span<const uint8_t> bytes,
                                             const std::string& pre = "llama-bpe");
absl::StatusOr<TokenizerData> ReadVocabPack(const std::string& path,
                                            const std::string& pre = "llama-bpe");

}  // namespace bitnet::tools
