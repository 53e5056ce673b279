// Tokenizer with llama.cpp's `gpt2` (byte-level BPE) and `llama`
// (SentencePiece) semantics. The pieces live in model/bpe_*.cc (byte map,
// pre-tokenizers, merges, special-token split, token roles) and
// model/spm_tokenizer.cc (SentencePiece merging); this file validates the
// vocabulary, wires them together, and reads the vocabulary from GGUF metadata.
#include "model/tokenizer.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/bpe_byte_map.h"
#include "model/bpe_merges.h"
#include "model/bpe_pretokenizer.h"
#include "model/bpe_special_split.h"
#include "model/bpe_token_roles.h"
#include "model/spm_tokenizer.h"
#include "model/unicode_text.h"

namespace bitnet {

struct Tokenizer::Impl {
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<std::string> pieces;  // the bytes each token decodes to
  bpe::PreTokenizerConfig pre;
  std::unique_ptr<bpe::MergeTable> merges;  // model "gpt2"
  std::unique_ptr<spm::SpmModel> spm;       // model "llama"
  bool add_space_prefix = false;            // SentencePiece only
  std::vector<bpe::SpecialToken> specials;            // longest text first
  std::vector<const bpe::SpecialToken*> all_specials;  // for parse_special
  std::vector<const bpe::SpecialToken*> user_specials;  // always matched
  absl::flat_hash_set<TokenId> end_of_generation;
  TokenId bos = -1, eos = -1, eot = -1;
  bool add_bos = false, add_eos = false;

  void EncodeText(std::string_view text, bool after_special, std::vector<TokenId>* ids) const;
  void SetTokens(std::vector<std::string> texts, const std::vector<TokenType>& given_types);
  void IndexSpecialTokens();
};

namespace {

bool IsSpecialType(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

TokenType SanitizeType(TokenType t) {
  const auto v = static_cast<int32_t>(t);
  return (v >= 0 && v <= static_cast<int32_t>(TokenType::kByte)) ? t : TokenType::kUndefined;
}

absl::Status CheckSpecialId(const char* name, TokenId id, size_t n_vocab) {
  if (id >= -1 && id < static_cast<int64_t>(n_vocab)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("tokenizer ", name, " id ", id,
                                                 " is outside the vocabulary of ", n_vocab,
                                                 " tokens (use -1 for none)"));
}

bool IsSentencePiece(const TokenizerData& data) { return data.model == "llama"; }

absl::Status ValidateData(const TokenizerData& data) {
  if (!data.model.empty() && data.model != "gpt2" && data.model != "llama") {
    return absl::UnimplementedError(absl::StrCat(
        "tokenizer model '", data.model,
        "' is not supported: tokenizer.ggml.model must be gpt2 (byte-level BPE) or llama "
        "(SentencePiece)"));
  }
  if (data.tokens.empty()) {
    return absl::InvalidArgumentError("tokenizer vocabulary is empty (tokenizer.ggml.tokens)");
  }
  if (data.tokens.size() > static_cast<size_t>(std::numeric_limits<TokenId>::max() / 2)) {
    return absl::InvalidArgumentError("tokenizer vocabulary is too large");
  }
  if (!data.types.empty() && data.types.size() != data.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer has ", data.tokens.size(), " tokens but ", data.types.size(),
        " token types; tokenizer.ggml.token_type must have one entry per token"));
  }
  const size_t n = data.tokens.size();
  for (auto [name, id] : {std::pair{"bos", data.bos}, std::pair{"eos", data.eos},
                          std::pair{"eot", data.eot}, std::pair{"padding", data.pad},
                          std::pair{"unknown", data.unk}}) {
    if (absl::Status s = CheckSpecialId(name, id, n); !s.ok()) return s;
  }
  if (data.add_bos && data.bos < 0) {
    return absl::InvalidArgumentError(
        "tokenizer asks for a BOS token (add_bos_token) but has no bos_token_id");
  }
  if (data.add_eos && data.eos < 0) {
    return absl::InvalidArgumentError(
        "tokenizer asks for an EOS token (add_eos_token) but has no eos_token_id");
  }
  return absl::OkStatus();
}

// The bytes a token stands for when decoded (render_special aside).
std::string PieceOf(const std::string& text, TokenType type, bool sentencepiece) {
  switch (type) {
    case TokenType::kNormal:
      return sentencepiece ? spm::SpmModel::Piece(text, type) : bpe::DecodeTokenText(text);
    case TokenType::kByte:  // "<0xE2>" is one raw byte in SentencePiece vocabularies
      return sentencepiece ? spm::SpmModel::Piece(text, type) : std::string();
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUserDefined:
      return text;  // special tokens are stored as raw text
    default:
      return {};  // llama.cpp renders unused / byte / undefined BPE tokens as nothing
  }
}

// GGUF metadata: a missing key is fine (nullopt), a key of the wrong type is
// an error naming the key.
template <typename T>
absl::StatusOr<std::optional<T>> Optional(absl::StatusOr<T> value) {
  if (value.ok()) return std::optional<T>(*std::move(value));
  if (absl::IsNotFound(value.status())) return std::optional<T>();
  return value.status();
}

// Vocabulary, types and merges.
absl::Status ReadVocabulary(const gguf::File& file, TokenizerData* data) {
  absl::StatusOr<std::vector<std::string>> tokens = file.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  data->tokens = *std::move(tokens);

  absl::StatusOr<std::optional<std::vector<int64_t>>> types =
      Optional(file.GetIntArray("tokenizer.ggml.token_type"));
  if (!types.ok()) return types.status();
  for (int64_t t : types->value_or(std::vector<int64_t>{})) {
    data->types.push_back(t >= 0 && t <= static_cast<int64_t>(TokenType::kByte)
                              ? static_cast<TokenType>(t)
                              : TokenType::kUndefined);
  }

  if (IsSentencePiece(*data)) {
    absl::StatusOr<std::optional<std::vector<double>>> scores =
        Optional(file.GetFloatArray("tokenizer.ggml.scores"));
    if (!scores.ok()) return scores.status();
    for (double v : scores->value_or(std::vector<double>{})) data->scores.push_back(static_cast<float>(v));
    absl::StatusOr<std::optional<bool>> prefix =
        Optional(file.GetBool("tokenizer.ggml.add_space_prefix"));
    if (!prefix.ok()) return prefix.status();
    data->add_space_prefix = prefix->value_or(true);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> merges = file.GetStringArray("tokenizer.ggml.merges");
  if (absl::IsNotFound(merges.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), " has a gpt2 tokenizer without tokenizer.ggml.merges; the file is "
        "incomplete, re-convert the model"));
  }
  if (!merges.ok()) return merges.status();
  data->merges = *std::move(merges);
  return absl::OkStatus();
}

// Special token ids and the add_bos / add_eos flags.
absl::Status ReadSpecialTokens(const gguf::File& file, TokenizerData* data) {
  // Ids outside the vocabulary are ignored, as llama.cpp does (it warns).
  // SentencePiece vocabularies default to <unk> 0, <s> 1, </s> 2 as there.
  const bool sentencepiece = IsSentencePiece(*data);
  const int64_t n = static_cast<int64_t>(data->tokens.size());
  for (auto [key, id, spm_default] :
       {std::tuple{"tokenizer.ggml.bos_token_id", &data->bos, 1},
        std::tuple{"tokenizer.ggml.eos_token_id", &data->eos, 2},
        std::tuple{"tokenizer.ggml.eot_token_id", &data->eot, -1},
        std::tuple{"tokenizer.ggml.padding_token_id", &data->pad, -1},
        std::tuple{"tokenizer.ggml.unknown_token_id", &data->unk, 0}}) {
    absl::StatusOr<std::optional<int64_t>> v = Optional(file.GetInt(key));
    if (!v.ok()) return v.status();
    const int64_t value = v->value_or(sentencepiece ? spm_default : -1);
    *id = (value >= 0 && value < n) ? static_cast<TokenId>(value) : -1;
  }
  // add_bos defaults per pre-tokenizer (true for the LLaMA-3 family) and is
  // on for SentencePiece vocabularies.
  bool default_add_bos = true;
  if (!sentencepiece) {
    absl::StatusOr<bpe::PreTokenizerConfig> config = bpe::LookupPreTokenizer(data->pre);
    if (!config.ok()) return config.status();
    default_add_bos = config->add_bos;
  }
  absl::StatusOr<std::optional<bool>> add_bos =
      Optional(file.GetBool("tokenizer.ggml.add_bos_token"));
  if (!add_bos.ok()) return add_bos.status();
  data->add_bos = add_bos->value_or(default_add_bos);
  absl::StatusOr<std::optional<bool>> add_eos =
      Optional(file.GetBool("tokenizer.ggml.add_eos_token"));
  if (!add_eos.ok()) return add_eos.status();
  data->add_eos = add_eos->value_or(false);
  return absl::OkStatus();
}

absl::StatusOr<TokenizerData> ReadTokenizerData(const gguf::File& file) {
  TokenizerData data;
  absl::StatusOr<std::string> model = file.GetString("tokenizer.ggml.model");
  if (absl::IsNotFound(model.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), " has no tokenizer (tokenizer.ggml.model is missing); use a GGUF file "
        "converted with its tokenizer"));
  }
  if (!model.ok()) return model.status();
  data.model = *model;
  if (data.model != "gpt2" && data.model != "llama") return data;  // Create() explains

  absl::StatusOr<std::optional<std::string>> pre =
      Optional(file.GetString("tokenizer.ggml.pre"));
  if (!pre.ok()) return pre.status();
  data.pre = pre->value_or("");
  if (absl::Status s = ReadVocabulary(file, &data); !s.ok()) return s;
  if (absl::Status s = ReadSpecialTokens(file, &data); !s.ok()) return s;
  return data;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::File& file) {
  absl::StatusOr<TokenizerData> data = ReadTokenizerData(file);
  if (!data.ok()) return data.status();
  return Create(*std::move(data));
}

// `after_special`: the text starts the input or follows a special token,
// where SentencePiece puts its prefix space (as llama.cpp does).
void Tokenizer::Impl::EncodeText(std::string_view text, bool after_special,
                                 std::vector<TokenId>* ids) const {
  if (spm) {
    if (text.empty()) return;
    if (add_space_prefix && after_special) {
      spm->Encode(absl::StrCat(" ", absl::string_view(text.data(), text.size())), ids);
    } else {
      spm->Encode(text, ids);
    }
    return;
  }
  const std::vector<uint32_t> cps = unicode::DecodeUtf8Lenient(text);
  std::string word;
  size_t start = 0;
  for (size_t len : bpe::SplitWords(pre.kind, cps)) {
    word.clear();
    for (size_t i = start; i < start + len; ++i) unicode::AppendUtf8(cps[i], &word);
    merges->EncodeWord(word, pre.ignore_merges, ids);
    start += len;
  }
}

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

void Tokenizer::Impl::SetTokens(std::vector<std::string> texts,
                                const std::vector<TokenType>& given_types) {
  tokens = std::move(texts);
  // llama.cpp renames empty tokens so that every text is unique and non-empty.
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (tokens[id].empty()) tokens[id] = absl::StrCat("[EMPTY_", id, "]");
  }
  types.assign(tokens.size(), TokenType::kNormal);
  for (size_t id = 0; id < given_types.size(); ++id) types[id] = SanitizeType(given_types[id]);
}

// Special tokens are matched longest text first (ties by id, for a stable
// order); user-defined ones are matched even without parse_special.
void Tokenizer::Impl::IndexSpecialTokens() {
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (IsSpecialType(types[id])) specials.push_back({static_cast<int32_t>(id), tokens[id]});
  }
  std::stable_sort(specials.begin(), specials.end(),
                   [](const bpe::SpecialToken& a, const bpe::SpecialToken& b) {
                     return a.text.size() > b.text.size();
                   });
  for (const bpe::SpecialToken& s : specials) {
    all_specials.push_back(&s);
    if (types[s.id] == TokenType::kUserDefined) user_specials.push_back(&s);
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(TokenizerData data) {
  if (absl::Status s = ValidateData(data); !s.ok()) return s;
  const bool sentencepiece = IsSentencePiece(data);
  absl::StatusOr<bpe::PreTokenizerConfig> pre =
      bpe::LookupPreTokenizer(sentencepiece ? "default" : data.pre);
  if (!pre.ok()) return pre.status();

  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  Impl& impl = *tok->impl_;
  impl.pre = *pre;
  impl.SetTokens(std::move(data.tokens), data.types);
  if (sentencepiece) {
    absl::StatusOr<std::unique_ptr<spm::SpmModel>> model =
        spm::SpmModel::Build(impl.tokens, data.scores, data.unk);
    if (!model.ok()) return model.status();
    impl.spm = *std::move(model);
    impl.add_space_prefix = data.add_space_prefix;
  } else {
    absl::StatusOr<std::unique_ptr<bpe::MergeTable>> merges =
        bpe::MergeTable::Build(impl.tokens, data.merges);
    if (!merges.ok()) return merges.status();
    impl.merges = *std::move(merges);
  }

  const bpe::TokenRoles roles = bpe::FindTokenRoles(impl.tokens, data.eos, data.eot);
  for (int32_t id : roles.force_control) impl.types[id] = TokenType::kControl;
  impl.end_of_generation.insert(roles.end_of_generation.begin(), roles.end_of_generation.end());
  impl.bos = data.bos;
  impl.eos = data.eos;
  impl.eot = roles.eot;
  impl.add_bos = data.add_bos;
  impl.add_eos = data.add_eos;

  impl.pieces.resize(impl.tokens.size());
  for (size_t id = 0; id < impl.tokens.size(); ++id) {
    impl.pieces[id] = PieceOf(impl.tokens[id], impl.types[id], sentencepiece);
  }
  impl.IndexSpecialTokens();
  return tok;
}

std::vector<TokenId> Tokenizer::Encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  const Impl& impl = *impl_;
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && impl.add_bos) ids.push_back(impl.bos);
  const auto& specials = parse_special ? impl.all_specials : impl.user_specials;
  bool after_special = true;
  for (const bpe::Fragment& f : bpe::SplitSpecialTokens(text, specials)) {
    if (f.token >= 0) {
      ids.push_back(f.token);
    } else {
      impl.EncodeText(text.substr(f.offset, f.length), after_special, &ids);
    }
    after_special = f.token >= 0;
  }
  if (add_bos && impl.add_eos) ids.push_back(impl.eos);
  return ids;
}

std::vector<std::string> Tokenizer::PreTokenize(std::string_view text) const {
  if (impl_->spm) return {std::string(text)};  // SentencePiece has no pre-tokenizer
  const std::vector<uint32_t> cps = unicode::DecodeUtf8Lenient(text);
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t len : bpe::SplitWords(impl_->pre.kind, cps)) {
    std::string& word = words.emplace_back();
    for (size_t i = start; i < start + len; ++i) unicode::AppendUtf8(cps[i], &word);
    start += len;
  }
  return words;
}

std::string Tokenizer::TokenBytes(TokenId id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return {};
  const TokenType t = impl_->types[id];
  if (!render_special && (t == TokenType::kControl || t == TokenType::kUnknown)) return {};
  return impl_->pieces[id];
}

std::string Tokenizer::Decode(const std::vector<TokenId>& ids, bool render_special) const {
  std::string out;
  for (TokenId id : ids) out += TokenBytes(id, render_special);
  return out;
}

int64_t Tokenizer::n_vocab() const { return static_cast<int64_t>(impl_->tokens.size()); }
TokenId Tokenizer::bos() const { return impl_->bos; }
TokenId Tokenizer::eos() const { return impl_->eos; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }

bool Tokenizer::IsEndOfGeneration(TokenId id) const {
  return impl_->end_of_generation.contains(id);
}

TokenId Tokenizer::Find(std::string_view token_text) const {
  return impl_->spm ? impl_->spm->Find(token_text) : impl_->merges->Find(token_text);
}

TokenType Tokenizer::type(TokenId id) const {
  return (id >= 0 && id < n_vocab()) ? impl_->types[id] : TokenType::kUndefined;
}

// ---------------------------------------------------------------------------
// StreamingDetokenizer

namespace {

// Moves the printable prefix of `pending` to the result: complete characters
// as they are, impossible sequences as U+FFFD; an unfinished but still valid
// sequence at the end stays pending unless `flush`.
std::string DrainUtf8(std::string& pending, bool flush) {
  std::string out;
  size_t i = 0;
  while (i < pending.size()) {
    const unicode::Utf8Step step = unicode::NextUtf8(std::string_view(pending).substr(i));
    if (step.status == unicode::Utf8Status::kIncomplete && !flush) break;
    if (step.status == unicode::Utf8Status::kComplete) {
      out.append(pending, i, step.length);
    } else {
      unicode::AppendUtf8(unicode::kReplacementChar, &out);
    }
    i += step.length;
  }
  pending.erase(0, i);
  return out;
}

}  // namespace

std::string StreamingDetokenizer::Push(TokenId id) {
  pending_ += tok_.TokenBytes(id, render_special_);
  return DrainUtf8(pending_, /*flush=*/false);
}

std::string StreamingDetokenizer::Flush() { return DrainUtf8(pending_, /*flush=*/true); }

}  // namespace bitnet
