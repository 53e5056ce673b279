// Tokenizer from GGUF metadata: GPT-2 style byte-level BPE (model "gpt2") or
// SentencePiece BPE (model "llama"), and a streaming detokenizer that only
// ever emits complete UTF-8.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/gguf.h"

namespace bitnet {

using TokenId = int32_t;

// llama.cpp token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4,
  kUnused = 5, kByte = 6,
};

struct TokenizerData {
  std::string model;                  // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;                    // "gpt-2", "llama-bpe", "default", ...
  std::vector<std::string> tokens;    // in GPT-2 byte-to-unicode form
  std::vector<TokenType> types;       // empty = all normal
  std::vector<std::string> merges;    // "a b", by rank
  TokenId bos = -1, eos = -1, eot = -1, pad = -1, unk = -1;
  bool add_bos = true;
  bool add_eos = false;
  // SentencePiece-style vocabularies (model "llama"): one merge priority per
  // token (tokenizer.ggml.scores; empty = all 0) and whether a space is put
  // before the text (tokenizer.ggml.add_space_prefix).
  std::vector<float> scores;
  bool add_space_prefix = true;
};

// Immutable once created: every const method may be called from many threads.
class Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gguf::File& file);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(TokenizerData data);

  // Encodes text; special (control / user-defined) token texts in the input
  // become their ids when parse_special is true (llama-tokenize's default;
  // user-defined tokens are matched even when it is false, as in llama.cpp).
  // add_bos asks for the special tokens the model wants around a sequence,
  // like llama_tokenize's add_special: BOS only if the model's add_bos() is
  // set (and EOS at the end if its add_eos flag is set).
  std::vector<TokenId> Encode(std::string_view text, bool add_bos, bool parse_special = true) const;
  // The pre-tokenizer's words for plain text (no special-token matching), as
  // UTF-8 (invalid input bytes appear as U+FFFD, as the encoder sees them).
  // SentencePiece has no pre-tokenizer: one word, the text as it is.
  std::vector<std::string> PreTokenize(std::string_view text) const;
  // Raw bytes of a token (control/unknown tokens give their text only if
  // render_special; user-defined tokens always give their text; unused and
  // undefined tokens give nothing, as in llama.cpp). Out-of-range ids: "".
  std::string TokenBytes(TokenId id, bool render_special = false) const;
  std::string Decode(const std::vector<TokenId>& ids, bool render_special = false) const;

  int64_t n_vocab() const;
  TokenId bos() const;
  TokenId eos() const;
  bool add_bos() const;
  // True for EOS, EOT and other end-of-generation tokens.
  bool IsEndOfGeneration(TokenId id) const;
  // Id of a token by its vocabulary text (byte-mapped, e.g. "Ġthe"); -1 if absent.
  TokenId Find(std::string_view token_text) const;
  TokenType type(TokenId id) const;  // kUndefined for ids out of range

  ~Tokenizer();

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Accumulates token bytes and releases only complete UTF-8 characters, so a
// character split across tokens is emitted once whole. Invalid sequences are
// replaced by U+FFFD once it is certain they cannot complete (one U+FFFD per
// maximal ill-formed subsequence, the Unicode-recommended practice).
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tok, bool render_special = false)
      : tok_(tok), render_special_(render_special) {}
  std::string Push(TokenId id);  // the newly complete text (may be empty)
  std::string Flush();           // whatever is left, invalid bytes as U+FFFD

 private:
  const Tokenizer& tok_;
  bool render_special_ = false;
  std::string pending_;
};

}  // namespace bitnet
