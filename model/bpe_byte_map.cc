#include "model/bpe_byte_map.h"

#include <array>
#include <vector>

#include "model/unicode_text.h"

namespace bitnet::bpe {
namespace {

// Printable bytes map to themselves; the other 68 bytes (controls, space,
// DEL, NBSP, soft hyphen, ...) take code points 256, 257, ... in byte order.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<std::string, 256> to_text;
  std::vector<int16_t> from_cp;  // indexed by code point, -1 = none

  ByteMap() {
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) to_cp[b] = printable(b) ? b : next++;
    from_cp.assign(next, -1);
    for (int b = 0; b < 256; ++b) {
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
      unicode::AppendUtf8(to_cp[b], &to_text[b]);
    }
  }
};

const ByteMap& Map() {
  static const ByteMap* map = new ByteMap();
  return *map;
}

}  // namespace

uint32_t ByteToCodepoint(uint8_t b) { return Map().to_cp[b]; }

const std::string& ByteToText(uint8_t b) { return Map().to_text[b]; }

int CodepointToByte(uint32_t cp) {
  const auto& from = Map().from_cp;
  return cp < from.size() ? from[cp] : -1;
}

std::string DecodeTokenText(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (uint32_t cp : unicode::DecodeUtf8Lenient(text)) {
    const int b = CodepointToByte(cp);
    if (b >= 0) {
      bytes.push_back(static_cast<char>(b));
    } else {
      unicode::AppendUtf8(cp, &bytes);
    }
  }
  return bytes;
}

std::string EncodeBytes(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (char c : bytes) text += ByteToText(static_cast<uint8_t>(c));
  return text;
}

}  // namespace bitnet::bpe
