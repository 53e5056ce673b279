// Compact vocabulary reader (format: tools/llama3_vectors/extract.mjs).
#include "tools/vocab_pack.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/bpe_byte_map.h"

namespace bitnet::tools {
namespace {

// Sequential reader that never reads past the end.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  size_t offset() const { return pos_; }
  bool U8(uint8_t* v) {
    if (pos_ >= b_.size()) return false;
    *v = b_[pos_++];
    return true;
  }
  bool U32(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    *v = uint32_t{b_[pos_]} | uint32_t{b_[pos_ + 1]} << 8 | uint32_t{b_[pos_ + 2]} << 16 |
         uint32_t{b_[pos_ + 3]} << 24;
    pos_ += 4;
    return true;
  }
  // Unsigned LEB128, at most 5 bytes (32 bits).
  bool Varint(uint32_t* v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      uint8_t byte;
      if (!U8(&byte)) return false;
      x |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) {
        if (x > UINT32_MAX) return false;
        *v = static_cast<uint32_t>(x);
        return true;
      }
    }
    return false;
  }
  bool Bytes(size_t n, std::string* out) {
    if (b_.size() - pos_ < n) return false;
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

absl::Status Corrupt(const Cursor& c, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "vocabulary pack is truncated or corrupt at byte ", c.offset(), " (", what,
      "); regenerate it with tools/llama3_vectors (npm run generate)"));
}

// Upper bounds that keep a corrupt header from asking for absurd memory.
constexpr uint32_t kMaxTokens = 1u << 22;
constexpr uint32_t kMaxMerges = 1u << 23;

}  // namespace

absl::StatusOr<TokenizerData> ParseVocabPack(std::span<const uint8_t> bytes,
                                             const std::string& pre) {
  Cursor c(bytes);
  std::string magic;
  uint32_t version = 0, n_tokens = 0, n_merges = 0;
  if (!c.Bytes(4, &magic) || magic != "BNVP") {
    return absl::InvalidArgumentError("not a vocabulary pack (the file does not start with BNVP)");
  }
  if (!c.U32(&version) || version != 1) {
    return absl::UnimplementedError(absl::StrCat("vocabulary pack version ", version,
                                                 " is not supported (expected 1)"));
  }
  if (!c.U32(&n_tokens) || !c.U32(&n_merges)) return Corrupt(c, "header");
  if (n_tokens == 0 || n_tokens > kMaxTokens || n_merges > kMaxMerges) {
    return Corrupt(c, absl::StrCat(n_tokens, " tokens / ", n_merges, " merges"));
  }

  TokenizerData data;
  data.model = "gpt2";
  data.pre = pre;
  std::vector<std::string> raw(n_tokens);
  data.tokens.resize(n_tokens);
  data.types.resize(n_tokens);
  for (uint32_t id = 0; id < n_tokens; ++id) {
    uint8_t type = 0;
    uint32_t len = 0;
    if (!c.U8(&type) || !c.Varint(&len) || !c.Bytes(len, &raw[id])) {
      return Corrupt(c, absl::StrCat("token ", id));
    }
    if (type == static_cast<uint8_t>(TokenType::kControl)) {
      data.types[id] = TokenType::kControl;
      data.tokens[id] = raw[id];
    } else if (type == static_cast<uint8_t>(TokenType::kNormal)) {
      data.types[id] = TokenType::kNormal;
      data.tokens[id] = bpe::EncodeBytes(raw[id]);
    } else {
      return Corrupt(c, absl::StrCat("token ", id, " has type ", int{type}));
    }
  }

  data.merges.reserve(n_merges);
  uint32_t result = 0;
  for (uint32_t m = 0; m < n_merges; ++m) {
    uint32_t delta = 0, split = 0;
    if (!c.Varint(&delta) || !c.Varint(&split)) return Corrupt(c, absl::StrCat("merge ", m));
    if (delta >= n_tokens - result) return Corrupt(c, absl::StrCat("merge ", m, " result id"));
    result += delta;
    const std::string& text = raw[result];
    if (data.types[result] != TokenType::kNormal || split == 0 || split >= text.size()) {
      return Corrupt(c, absl::StrCat("merge ", m, " split"));
    }
    data.merges.push_back(absl::StrCat(bpe::EncodeBytes(text.substr(0, split)), " ",
                                       bpe::EncodeBytes(text.substr(split))));
  }
  if (c.offset() != bytes.size()) return Corrupt(c, "trailing bytes");

  for (uint32_t id = 0; id < n_tokens; ++id) {
    if (data.types[id] != TokenType::kControl) continue;
    if (raw[id] == "<|begin_of_text|>") data.bos = static_cast<TokenId>(id);
    if (raw[id] == "<|end_of_text|>") data.eos = static_cast<TokenId>(id);
  }
  data.add_bos = data.bos >= 0;
  return data;
}

absl::StatusOr<TokenizerData> ReadVocabPack(const std::string& path, const std::string& pre) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open vocabulary pack ", path));
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  absl::StatusOr<TokenizerData> data = ParseVocabPack(bytes, pre);
  if (!data.ok()) {
    return absl::Status(data.status().code(), absl::StrCat(path, ": ", data.status().message()));
  }
  return data;
}

}  // namespace bitnet::tools
