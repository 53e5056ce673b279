// Code point classes and UTF-8 conversion for the tokenizer.
//
// Two UTF-8 decoders live here on purpose:
//  - DecodeUtf8Lenient reproduces llama.cpp's tokenizer input handling (it
//    accepts overlong forms and surrogates and turns each undecodable byte into
//    U+FFFD), so that we produce the same token ids for the same bytes;
//  - NextUtf8 is strict (RFC 3629) and is what the streaming detokenizer uses
//    to decide what is safe to print.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::unicode {

inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Regex classes as the pre-tokenizers use them: \p{L}, \p{N}, \p{P}, \s.
bool IsLetter(uint32_t cp);
bool IsNumber(uint32_t cp);
bool IsPunctuation(uint32_t cp);
bool IsWhitespace(uint32_t cp);

// Appends the UTF-8 form of `cp`; values above U+10FFFF become U+FFFD.
void AppendUtf8(uint32_t cp, std::string* out);

// llama.cpp-compatible decoding (see file comment).
std::vector<uint32_t> DecodeUtf8Lenient(std::string_view bytes);

// Strict decoding of the sequence at the start of `bytes` (non-empty).
enum class Utf8Status {
  kComplete,    // a valid character of `length` bytes
  kIncomplete,  // a valid prefix that needs more bytes (all of `bytes`)
  kInvalid,     // `length` bytes (>= 1) that can never become a character
};
struct Utf8Step {
  Utf8Status status;
  size_t length;
};
Utf8Step NextUtf8(std::string_view bytes);

}  // namespace bitnet::unicode
