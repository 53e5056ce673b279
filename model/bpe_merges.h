// The BPE merge step: turns one pre-tokenized word into token ids by applying
// merges in rank order, exactly as llama.cpp's BPE tokenizer does.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace bitnet::bpe {

class MergeTable {
 public:
  // `tokens[id]` is token id's text in GPT-2 byte-mapped form; `merges` are
  // "left right" pairs, highest priority first. Fails on duplicate token texts.
  static absl::StatusOr<std::unique_ptr<MergeTable>> Build(std::span<const std::string> tokens,
                                                           std::span<const std::string> merges);

  // Id of the token whose (byte-mapped) text is `text`, or -1.
  int32_t Find(std::string_view text) const;

  // Appends the ids of `word` (raw bytes of one pre-tokenized word). With
  // `ignore_merges`, a word that is itself a token becomes that one token.
  void EncodeWord(std::string_view word, bool ignore_merges, std::vector<int32_t>* ids) const;

  size_t n_merges() const { return merges_.size(); }

 private:
  MergeTable() = default;
  int32_t Intern(std::string text);

  // Every string that can be a symbol during merging gets a number: token
  // texts keep their token id, other merge parts/results are numbered after
  // the vocabulary (llama.cpp merges by text, so such non-token strings can
  // arise with unusual vocabularies and must behave the same way).
  struct Merge {
    int32_t rank;
    int32_t result;  // symbol of left+right
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void EmitSymbol(int32_t sym, std::vector<int32_t>* ids) const;

  int32_t n_vocab_ = 0;
  std::vector<std::string> symbol_text_;
  absl::flat_hash_map<std::string, int32_t> symbol_of_text_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_symbol_[256] = {};
};

}  // namespace bitnet::bpe
