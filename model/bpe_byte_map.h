// GPT-2's reversible byte <-> printable-character mapping. Byte-level BPE
// vocabularies store every token as text in which each raw byte is replaced
// by one printable code point (e.g. the space 0x20 becomes U+0120 'Ġ').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bitnet::bpe {

// The code point standing for byte `b`.
uint32_t ByteToCodepoint(uint8_t b);
// The UTF-8 text standing for byte `b` (1 or 2 bytes long).
const std::string& ByteToText(uint8_t b);
// The byte that code point `cp` stands for, or -1 if it stands for none.
int CodepointToByte(uint32_t cp);

// Vocabulary text -> raw bytes. Code points outside the mapping (which a
// well-formed vocabulary never contains) are kept as their own UTF-8.
std::string DecodeTokenText(std::string_view text);
// Raw bytes -> vocabulary text.
std::string EncodeBytes(std::string_view bytes);

}  // namespace bitnet::bpe
