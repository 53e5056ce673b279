// Unicode general-category tables (generated, see tools/gen_unicode_ranges.py)
// for the character classes the BPE pre-tokenizers test: \p{L}, \p{N}, \p{P}
// and \s (the White_Space property).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace bitnet::unicode {

// An inclusive range of code points. Tables are sorted and non-overlapping.
struct CodepointRange {
  uint32_t first;
  uint32_t last;
};

extern const std::string_view kUnicodeVersion;  // e.g. "15.1.0"
extern const std::span<const CodepointRange> kLetterRanges;       // L*
extern const std::span<const CodepointRange> kNumberRanges;       // N*
extern const std::span<const CodepointRange> kPunctuationRanges;  // P*
extern const std::span<const CodepointRange> kWhiteSpaceRanges;   // White_Space

}  // namespace bitnet::unicode
