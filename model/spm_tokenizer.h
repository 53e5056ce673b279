// SentencePiece-style BPE (llama.cpp's `llama` tokenizer model, used by
// LLaMA-1/2 derived models such as 1bitLLM's bitnet_b1_58-*): spaces are
// written as U+2581 "▁", the text is split into UTF-8 characters, and the
// adjacent pair whose concatenation is the vocabulary token with the highest
// score is merged first (ties: leftmost), until no pair forms a token.
// Characters that end up outside the vocabulary become byte tokens
// ("<0xE2>"), or the unknown token when the vocabulary has none. Same
// algorithm as llama.cpp's llm_tokenizer_spm, including its resegmentation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace bitnet::spm {

// "▁" (U+2581), SentencePiece's stand-in for a space.
inline constexpr std::string_view kSpace = "\xE2\x96\x81";

// A byte token's vocabulary text: "<0xE2>".
std::string ByteTokenText(uint8_t b);

class SpmModel {
 public:
  // `scores` may be empty (all 0) or one per token; `unk` may be -1.
  static absl::StatusOr<std::unique_ptr<SpmModel>> Build(std::span<const std::string> tokens,
                                                         std::span<const float> scores, TokenId unk);

  // Appends the ids of raw text (spaces are escaped to "▁" here; the caller
  // adds any prefix space).
  void Encode(std::string_view text, std::vector<TokenId>* ids) const;

  // Id of a token by its vocabulary text, or -1.
  TokenId Find(std::string_view text) const;

  // The bytes a token stands for: "▁" -> " ", byte tokens "<0xXX>" -> that
  // byte (only for TokenType::kByte), other texts as they are.
  static std::string Piece(std::string_view text, TokenType type);

  float score(TokenId id) const { return scores_[static_cast<size_t>(id)]; }
  // The token for a raw byte: "<0xXX>", else the one-byte text, else unk.
  TokenId byte_token(uint8_t b) const { return byte_tokens_[b]; }

 private:
  SpmModel() = default;

  absl::flat_hash_map<std::string, TokenId> ids_;
  std::vector<float> scores_;
  TokenId byte_tokens_[256];
};

}  // namespace bitnet::spm
