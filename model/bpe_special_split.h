// Finds special-token texts (control / user-defined tokens such as "<s>" or
// "<|eot_id|>") in input text before pre-tokenization, so they become their
// own ids instead of being spelled out byte by byte. Same algorithm as
// llama.cpp's tokenizer_st_partition.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::bpe {

struct SpecialToken {
  int32_t id;
  std::string text;  // raw text as it appears in input (never empty)
};

// A piece of the input: either a special token or a stretch of plain text.
struct Fragment {
  int32_t token = -1;  // >= 0: a special token; -1: text[offset, offset+length)
  size_t offset = 0;
  size_t length = 0;
};

// Splits `text` at occurrences of the special tokens. Tokens are tried one
// after another in the given order (callers pass longest text first), each
// over the plain-text fragments the earlier ones left, leftmost occurrence
// first.
std::vector<Fragment> SplitSpecialTokens(std::string_view text,
                                         std::span<const SpecialToken* const> specials);

}  // namespace bitnet::bpe
