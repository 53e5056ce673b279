// SentencePiece-style BPE merging (see spm_tokenizer.h).
#include "model/spm_tokenizer.h"

#include <cstdio>
#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace bitnet::spm {
namespace {

// Length of the UTF-8 sequence a lead byte starts (1 for anything else), as
// llama.cpp's unicode_len_utf8.
size_t Utf8Len(uint8_t lead) {
  static constexpr size_t kLookup[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLookup[lead >> 4];
}

struct Symbol {
  int prev, next;
  size_t offset, n;  // bytes of the escaped text; n == 0 once merged away
};

struct Bigram {
  int left, right;
  float score;
  size_t size;
};
// Highest score first; among equal scores the leftmost pair.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// One encoding run over one escaped text.
class Session {
 public:
  Session(const SpmModel& model, std::string text) : model_(model), text_(std::move(text)) {}

  void Run(std::vector<TokenId>* ids) {
    for (size_t off = 0; off < text_.size();) {
      const size_t n = std::min(Utf8Len(static_cast<uint8_t>(text_[off])), text_.size() - off);
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back({index - 1, off + n == text_.size() ? -1 : index + 1, off, n});
      off += n;
    }
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) TryAddBigram(i - 1, i);
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[b.left];
      Symbol& right = symbols_[b.right];
      // Stale: one side was merged into something else since.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = b.left;
      TryAddBigram(left.prev, b.left);
      TryAddBigram(b.left, left.next);
    }
    for (int i = symbols_.empty() ? -1 : 0; i != -1; i = symbols_[i].next) Resegment(symbols_[i], ids);
  }

 private:
  std::string TextOf(const Symbol& s) const { return text_.substr(s.offset, s.n); }

  void TryAddBigram(int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string text = text_.substr(symbols_[left].offset, symbols_[left].n + symbols_[right].n);
    const TokenId id = model_.Find(text);
    if (id < 0) return;
    queue_.push({left, right, model_.score(id), text.size()});
    rev_merge_[text] = {left, right};
  }

  // A final symbol that is not a token is split back along the merge that
  // made it, or spelled out as byte tokens.
  void Resegment(const Symbol& s, std::vector<TokenId>* ids) {
    const std::string text = TextOf(s);
    if (TokenId id = model_.Find(text); id >= 0) {
      ids->push_back(id);
      return;
    }
    auto it = rev_merge_.find(text);
    if (it == rev_merge_.end()) {
      for (char c : text) ids->push_back(model_.byte_token(static_cast<uint8_t>(c)));
      return;
    }
    Resegment(symbols_[it->second.first], ids);
    Resegment(symbols_[it->second.second], ids);
  }

  const SpmModel& model_;
  std::string text_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
  absl::flat_hash_map<std::string, std::pair<int, int>> rev_merge_;
};

}  // namespace

std::string ByteTokenText(uint8_t b) {
  char hex[8];
  std::snprintf(hex, sizeof hex, "<0x%02X>", b);
  return hex;
}

absl::StatusOr<std::unique_ptr<SpmModel>> SpmModel::Build(std::span<const std::string> tokens,
                                                          std::span<const float> scores, TokenId unk) {
  if (!scores.empty() && scores.size() != tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer has ", tokens.size(), " tokens but ", scores.size(),
        " scores; tokenizer.ggml.scores must have one entry per token"));
  }
  std::unique_ptr<SpmModel> m(new SpmModel());
  m->scores_.assign(scores.begin(), scores.end());
  m->scores_.resize(tokens.size(), 0.f);
  m->ids_.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    // The first of duplicate texts wins, as llama.cpp's token_to_id map.
    m->ids_.emplace(tokens[id], static_cast<TokenId>(id));
  }
  for (int b = 0; b < 256; ++b) {
    TokenId id = m->Find(ByteTokenText(static_cast<uint8_t>(b)));
    if (id < 0) id = m->Find(std::string(1, static_cast<char>(b)));  // fall back to the raw byte
    m->byte_tokens_[b] = id >= 0 ? id : unk;
  }
  return m;
}

TokenId SpmModel::Find(std::string_view text) const {
  auto it = ids_.find(absl::string_view(text.data(), text.size()));
  return it == ids_.end() ? -1 : it->second;
}

void SpmModel::Encode(std::string_view text, std::vector<TokenId>* ids) const {
  if (text.empty()) return;
  Session s(*this, absl::StrReplaceAll(absl::string_view(text.data(), text.size()),
                                       {{" ", absl::string_view(kSpace.data(), kSpace.size())}}));
  s.Run(ids);
  // Bytes with no token and no unknown token are dropped rather than
  // emitted as an invalid id.
  std::erase_if(*ids, [](TokenId id) { return id < 0; });
}

std::string SpmModel::Piece(std::string_view text, TokenType type) {
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  if (type == TokenType::kByte && text.size() == 6 && text.substr(0, 3) == "<0x" && text[5] == '>' &&
      hex(text[3]) >= 0 && hex(text[4]) >= 0) {
    return std::string(1, static_cast<char>(hex(text[3]) * 16 + hex(text[4])));
  }
  return absl::StrReplaceAll(absl::string_view(text.data(), text.size()),
                             {{absl::string_view(kSpace.data(), kSpace.size()), " "}});
}

}  // namespace bitnet::spm
