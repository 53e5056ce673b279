#include "model/unicode_text.h"

#include <algorithm>
#include <span>

#include "model/unicode_ranges.h"

namespace bitnet::unicode {
namespace {

bool InRanges(std::span<const CodepointRange> ranges, uint32_t cp) {
  // First range whose end is >= cp; cp is inside if that range starts <= cp.
  auto it = std::lower_bound(ranges.begin(), ranges.end(), cp,
                             [](const CodepointRange& r, uint32_t v) { return r.last < v; });
  return it != ranges.end() && it->first <= cp;
}

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

}  // namespace

bool IsLetter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return InRanges(kLetterRanges, cp);
}

bool IsNumber(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return InRanges(kNumberRanges, cp);
}

bool IsPunctuation(uint32_t cp) { return InRanges(kPunctuationRanges, cp); }

bool IsWhitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return InRanges(kWhiteSpaceRanges, cp);
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp > 0x10FFFF) cp = kReplacementChar;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Only the lead byte's length bits and the continuation bytes' top bits are
// checked, as llama.cpp does; anything else costs one byte and yields U+FFFD.
std::vector<uint32_t> DecodeUtf8Lenient(std::string_view bytes) {
  std::vector<uint32_t> cps;
  cps.reserve(bytes.size());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = static_cast<uint8_t>(bytes[i]);
    size_t extra;
    uint32_t cp;
    if (b0 < 0x80) {
      extra = 0, cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      extra = 1, cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      extra = 2, cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      extra = 3, cp = b0 & 0x07;
    } else {  // a stray continuation byte or 0xF8..0xFF
      cps.push_back(kReplacementChar);
      ++i;
      continue;
    }
    bool ok = i + extra < n;
    for (size_t k = 1; ok && k <= extra; ++k) {
      const uint8_t b = static_cast<uint8_t>(bytes[i + k]);
      ok = IsContinuation(b);
      cp = (cp << 6) | (b & 0x3F);
    }
    if (!ok) {
      cps.push_back(kReplacementChar);
      ++i;
      continue;
    }
    cps.push_back(cp);
    i += extra + 1;
  }
  return cps;
}

Utf8Step NextUtf8(std::string_view bytes) {
  const uint8_t b0 = static_cast<uint8_t>(bytes[0]);
  if (b0 < 0x80) return {Utf8Status::kComplete, 1};
  // Allowed range of the second byte and the total length, per RFC 3629
  // (this excludes overlong forms, surrogates and values above U+10FFFF).
  uint8_t lo = 0x80, hi = 0xBF;
  size_t length;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {Utf8Status::kInvalid, 1};
  }
  for (size_t k = 1; k < length; ++k) {
    if (k >= bytes.size()) return {Utf8Status::kIncomplete, bytes.size()};
    const uint8_t b = static_cast<uint8_t>(bytes[k]);
    if (b < lo || b > hi) return {Utf8Status::kInvalid, k};
    lo = 0x80, hi = 0xBF;
  }
  return {Utf8Status::kComplete, length};
}

}  // namespace bitnet::unicode
