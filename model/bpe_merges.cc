#include "model/bpe_merges.h"

#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/bpe_byte_map.h"

namespace bitnet::bpe {
namespace {

// A symbol of the word being merged: `sym` < 0 once merged into its left
// neighbour. prev/next link the live symbols.
struct Node {
  int32_t sym;
  int32_t prev;
  int32_t next;
};

// A possible merge of the live pair starting at node `left`; it is stale once
// either side has changed.
struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t right;
  int32_t left_sym;
  int32_t right_sym;
  int32_t result;
};

// Lowest rank first; among equal ranks the leftmost pair (llama.cpp's order).
struct LaterCandidate {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<MergeTable>> MergeTable::Build(
    std::span<const std::string> tokens, std::span<const std::string> merges) {
  std::unique_ptr<MergeTable> table(new MergeTable());
  table->n_vocab_ = static_cast<int32_t>(tokens.size());
  table->symbol_text_.reserve(tokens.size());
  table->symbol_of_text_.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    auto [it, inserted] = table->symbol_of_text_.emplace(tokens[id], static_cast<int32_t>(id));
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer vocabulary has the token text '", tokens[id], "' twice (ids ", it->second,
          " and ", id, "); the model file's tokenizer.ggml.tokens is corrupt"));
    }
    table->symbol_text_.push_back(tokens[id]);
  }
  for (int b = 0; b < 256; ++b) {
    table->byte_symbol_[b] = table->Intern(ByteToText(static_cast<uint8_t>(b)));
  }
  table->merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    // Split at the first space after the first character, as llama.cpp does
    // (so a merge may start with a space); lines without one never match.
    const std::string& line = merges[rank];
    const size_t space = line.find(' ', 1);
    if (space == std::string::npos) continue;
    const int32_t left = table->Intern(line.substr(0, space));
    const int32_t right = table->Intern(line.substr(space + 1));
    const int32_t result = table->Intern(line.substr(0, space) + line.substr(space + 1));
    // The first occurrence of a pair keeps its rank.
    table->merges_.emplace(PairKey(left, right), Merge{static_cast<int32_t>(rank), result});
  }
  return table;
}

int32_t MergeTable::Intern(std::string text) {
  auto it = symbol_of_text_.find(text);
  if (it != symbol_of_text_.end()) return it->second;
  const int32_t sym = static_cast<int32_t>(symbol_text_.size());
  symbol_text_.push_back(text);
  symbol_of_text_.emplace(std::move(text), sym);
  return sym;
}

int32_t MergeTable::Find(std::string_view text) const {
  // (absl::string_view is not std::string_view in this Abseil build.)
  auto it = symbol_of_text_.find(absl::string_view(text.data(), text.size()));
  return (it != symbol_of_text_.end() && it->second < n_vocab_) ? it->second : -1;
}

// A final symbol that is not a token: llama.cpp then looks up each byte of its
// (byte-mapped) text as a one-character token and drops the bytes it cannot
// find. Only vocabularies whose merges produce non-tokens get here.
void MergeTable::EmitSymbol(int32_t sym, std::vector<int32_t>* ids) const {
  if (sym < n_vocab_) {
    ids->push_back(sym);
    return;
  }
  for (char c : symbol_text_[sym]) {
    const int32_t id = Find(std::string_view(&c, 1));
    if (id >= 0) ids->push_back(id);
  }
}

void MergeTable::EncodeWord(std::string_view word, bool ignore_merges,
                            std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges) {
    const int32_t whole = Find(EncodeBytes(word));
    if (whole >= 0) {
      ids->push_back(whole);
      return;
    }
  }
  const int32_t n = static_cast<int32_t>(word.size());
  std::vector<Node> nodes(n);
  for (int32_t i = 0; i < n; ++i) {
    nodes[i] = {byte_symbol_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  std::vector<Candidate> storage;
  storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, LaterCandidate> queue(
      LaterCandidate{}, std::move(storage));
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    auto it = merges_.find(PairKey(nodes[left].sym, nodes[right].sym));
    if (it == merges_.end()) return;
    queue.push({it->second.rank, left, right, nodes[left].sym, nodes[right].sym,
                it->second.result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Symbols only ever grow, so unchanged symbol numbers on both sides mean
    // the pair is still live and adjacent.
    if (nodes[c.left].sym != c.left_sym || nodes[c.right].sym != c.right_sym) continue;
    Node& left = nodes[c.left];
    left.sym = c.result;
    nodes[c.right].sym = -1;
    left.next = nodes[c.right].next;
    if (left.next >= 0) nodes[left.next].prev = c.left;
    consider(left.prev, c.left);
    consider(c.left, left.next);
  }
  for (int32_t i = 0; i >= 0; i = nodes[i].next) EmitSymbol(nodes[i].sym, ids);
}

}  // namespace bitnet::bpe
