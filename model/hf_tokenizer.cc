// tokenizer.json / tokenizer_config.json -> TokenizerData.
#include "model/hf_tokenizer.h"

#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace bitnet {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kLlama3Regex = kHfLlama3SplitRegex;
constexpr std::string_view kGpt2Regex = kHfGpt2SplitRegex;

// Upper bound on vocabulary ids, so a hostile file cannot make us allocate
// gigabytes (the largest real vocabularies have ~260k tokens).
constexpr int64_t kMaxVocab = 1 << 22;

absl::Status Bad(std::string what) {
  return absl::InvalidArgumentError(
      absl::StrCat("tokenizer.json: ", what,
                   "; the file is not a Hugging Face tokenizer this project can read"));
}

absl::StatusOr<Json> ParseJson(std::string_view text, const char* name) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is not valid JSON (or not a JSON object)"));
  }
  return j;
}

const Json* Member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string StringMember(const Json& j, const char* key) {
  const Json* m = Member(j, key);
  return m != nullptr && m->is_string() ? m->get<std::string>() : std::string();
}

// A special-token entry of tokenizer_config.json: "text" or {"content": "text"}.
std::string TokenText(const Json* j) {
  if (j == nullptr) return {};
  if (j->is_string()) return j->get<std::string>();
  return StringMember(*j, "content");
}

absl::StatusOr<int64_t> Id(const Json& j, const std::string& what) {
  if (!j.is_number_integer()) return Bad(absl::StrCat(what, " has a non-integer id"));
  const int64_t id = j.get<int64_t>();
  if (id < 0 || id >= kMaxVocab) return Bad(absl::StrCat(what, " has id ", id, " out of range"));
  return id;
}

// "a b" or ["a", "b"] (newer files) -> "a b".
absl::StatusOr<std::string> MergeText(const Json& m, size_t rank) {
  if (m.is_string()) return m.get<std::string>();
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return absl::StrCat(m[0].get<std::string>(), " ", m[1].get<std::string>());
  }
  return Bad(absl::StrCat("merge ", rank, " is neither \"a b\" nor [\"a\", \"b\"]"));
}

// Which of our pre-tokenizers tokenizer.json describes ("" if none).
std::string PreTokenizerName(const Json& tok) {
  const Json* pre = Member(tok, "pre_tokenizer");
  if (pre == nullptr) return {};
  auto is_type = [](const Json& j, const char* t) { return StringMember(j, "type") == t; };
  auto split_regex = [](const Json& j) {
    const Json* pattern = Member(j, "pattern");
    return pattern != nullptr ? StringMember(*pattern, "Regex") : std::string();
  };
  if (is_type(*pre, "ByteLevel")) {
    const Json* use_regex = Member(*pre, "use_regex");
    return (use_regex == nullptr || (use_regex->is_boolean() && use_regex->get<bool>())) ? "gpt-2"
                                                                                         : "";
  }
  if (is_type(*pre, "Sequence")) {
    const Json* list = Member(*pre, "pretokenizers");
    if (list == nullptr || !list->is_array()) return {};
    std::string name;
    for (const Json& p : *list) {
      if (is_type(p, "Split")) {
        const std::string re = split_regex(p);
        if (re == kLlama3Regex) name = "llama-bpe";
        else if (re == kGpt2Regex) name = "gpt-2";
        else return {};
      } else if (!is_type(p, "ByteLevel")) {
        return {};
      }
    }
    return name;
  }
  return {};
}

// SentencePiece-converted BPE: byte fallback and "▁" for spaces.
bool IsSentencePieceBpe(const Json& tok, const Json& model) {
  const Json* bf = Member(model, "byte_fallback");
  if (bf != nullptr && bf->is_boolean() && bf->get<bool>()) return true;
  const Json* pre = Member(tok, "pre_tokenizer");
  return pre != nullptr && StringMember(*pre, "type") == "Metaspace";
}

// Whether the text gets a leading "▁": a Prepend normalizer, or a Metaspace
// pre-tokenizer with add_prefix_space / prepend_scheme != never.
bool AddsSpacePrefix(const Json& tok) {
  std::vector<const Json*> stack;
  if (const Json* n = Member(tok, "normalizer")) stack.push_back(n);
  if (const Json* p = Member(tok, "pre_tokenizer")) stack.push_back(p);
  while (!stack.empty()) {
    const Json* j = stack.back();
    stack.pop_back();
    const std::string type = StringMember(*j, "type");
    if (type == "Prepend") return true;
    if (type == "Metaspace") {
      const std::string scheme = StringMember(*j, "prepend_scheme");
      if (!scheme.empty()) return scheme != "never";
      const Json* add = Member(*j, "add_prefix_space");
      return add == nullptr || (add->is_boolean() && add->get<bool>());
    }
    for (const char* key : {"normalizers", "pretokenizers"}) {
      if (const Json* list = Member(*j, key); list != nullptr && list->is_array()) {
        for (const Json& x : *list) stack.push_back(&x);
      }
    }
  }
  return false;
}

// The special token a TemplateProcessing post-processor puts first / last
// around a single sequence, if any.
struct Template {
  std::optional<std::string> first, last;
};
Template PostProcessorTemplate(const Json& tok) {
  Template t;
  std::vector<const Json*> stack;
  if (const Json* p = Member(tok, "post_processor")) stack.push_back(p);
  while (!stack.empty()) {
    const Json* j = stack.back();
    stack.pop_back();
    if (StringMember(*j, "type") == "TemplateProcessing") {
      const Json* single = Member(*j, "single");
      if (single == nullptr || !single->is_array() || single->empty()) continue;
      auto special = [](const Json& item) -> std::optional<std::string> {
        const Json* s = Member(item, "SpecialToken");
        if (s == nullptr) return std::nullopt;
        return StringMember(*s, "id");
      };
      t.first = special(single->front());
      t.last = single->size() > 1 ? special(single->back()) : std::nullopt;
      return t;
    }
    if (const Json* list = Member(*j, "processors"); list != nullptr && list->is_array()) {
      for (const Json& x : *list) stack.push_back(&x);
    }
  }
  return t;
}

bool IsByteToken(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

struct Vocabulary {
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  absl::flat_hash_map<std::string, TokenId> ids;
};

absl::StatusOr<Vocabulary> ReadVocabulary(const Json& tok, const Json& model, int64_t min_vocab) {
  const Json* vocab = Member(model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return Bad("model.vocab is missing");
  std::vector<std::pair<int64_t, std::string>> entries;
  int64_t n = std::max<int64_t>(min_vocab, 0);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    absl::StatusOr<int64_t> id = Id(it.value(), absl::StrCat("token '", it.key(), "'"));
    if (!id.ok()) return id.status();
    entries.emplace_back(*id, it.key());
    n = std::max(n, *id + 1);
  }
  const Json* added = Member(tok, "added_tokens");
  if (added != nullptr && !added->is_array()) return Bad("added_tokens is not an array");
  struct Added {
    int64_t id;
    std::string text;
    bool special;
  };
  std::vector<Added> extra;
  if (added != nullptr) {
    for (const Json& a : *added) {
      const Json* id_json = Member(a, "id");
      if (id_json == nullptr) return Bad("an added token has no id");
      absl::StatusOr<int64_t> id = Id(*id_json, "an added token");
      if (!id.ok()) return id.status();
      const Json* special = Member(a, "special");
      extra.push_back({*id, StringMember(a, "content"),
                       special != nullptr && special->is_boolean() && special->get<bool>()});
      n = std::max(n, *id + 1);
    }
  }
  if (n > kMaxVocab) return Bad(absl::StrCat("vocabulary of ", n, " tokens is too large"));

  Vocabulary v;
  v.tokens.resize(static_cast<size_t>(n));
  v.types.assign(static_cast<size_t>(n), TokenType::kUnused);
  std::vector<bool> seen(static_cast<size_t>(n), false);
  for (auto& [id, text] : entries) {
    if (seen[id]) return Bad(absl::StrCat("id ", id, " is used by two tokens"));
    seen[id] = true;
    v.tokens[id] = std::move(text);
    v.types[id] = TokenType::kNormal;
  }
  for (Added& a : extra) {
    // An added token may repeat a vocabulary entry (same id and text).
    if (seen[a.id] && v.tokens[a.id] != a.text) {
      return Bad(absl::StrCat("added token '", a.text, "' reuses id ", a.id, " of '",
                              v.tokens[a.id], "'"));
    }
    seen[a.id] = true;
    v.tokens[a.id] = std::move(a.text);
    v.types[a.id] = a.special ? TokenType::kControl : TokenType::kUserDefined;
  }
  for (int64_t id = 0; id < n; ++id) {
    if (!seen[id]) v.tokens[id] = absl::StrCat("[PAD", id, "]");
    v.ids.emplace(v.tokens[id], static_cast<TokenId>(id));
  }
  return v;
}

// Special ids and flags from tokenizer_config.json, falling back to the
// post-processor template.
void ReadSpecials(const Json& tok, const Json* config, const Vocabulary& v, TokenizerData* data) {
  auto find = [&](const std::string& text) -> TokenId {
    auto it = v.ids.find(text);
    return (text.empty() || it == v.ids.end()) ? -1 : it->second;
  };
  const Template t = PostProcessorTemplate(tok);
  if (config != nullptr) {
    data->bos = find(TokenText(Member(*config, "bos_token")));
    data->eos = find(TokenText(Member(*config, "eos_token")));
    data->pad = find(TokenText(Member(*config, "pad_token")));
    data->unk = find(TokenText(Member(*config, "unk_token")));
  }
  if (data->bos < 0 && t.first) data->bos = find(*t.first);
  if (data->unk < 0) {
    if (const Json* model = Member(tok, "model")) data->unk = find(StringMember(*model, "unk_token"));
  }
  auto flag = [&](const char* key) -> std::optional<bool> {
    if (config == nullptr) return std::nullopt;
    const Json* f = Member(*config, key);
    if (f == nullptr || !f->is_boolean()) return std::nullopt;
    return f->get<bool>();
  };
  data->add_bos = flag("add_bos_token").value_or(t.first.has_value() || data->model == "llama" ||
                                                 data->pre == "llama-bpe");
  data->add_eos = flag("add_eos_token").value_or(t.last.has_value() && t.last != t.first);
  if (data->add_bos && data->bos < 0) data->add_bos = false;
  if (data->add_eos && data->eos < 0) data->add_eos = false;
}

}  // namespace

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

absl::StatusOr<HfTokenizer> ParseHfTokenizer(std::string_view tokenizer_json,
                                             std::string_view tokenizer_config_json,
                                             int64_t min_vocab) {
  absl::StatusOr<Json> tok = ParseJson(tokenizer_json, "tokenizer.json");
  if (!tok.ok()) return tok.status();
  std::optional<Json> config;
  if (!tokenizer_config_json.empty()) {
    absl::StatusOr<Json> c = ParseJson(tokenizer_config_json, "tokenizer_config.json");
    if (!c.ok()) return c.status();
    config = *std::move(c);
  }
  const Json* model = Member(*tok, "model");
  if (model == nullptr || StringMember(*model, "type") != "BPE") {
    return absl::UnimplementedError(absl::StrCat(
        "tokenizer.json: model type '", model ? StringMember(*model, "type") : std::string(),
        "' is not supported; only BPE tokenizers (byte-level or SentencePiece-style) are"));
  }

  HfTokenizer out;
  TokenizerData& data = out.data;
  const bool spm = IsSentencePieceBpe(*tok, *model);
  data.model = spm ? "llama" : "gpt2";
  if (!spm) {
    data.pre = PreTokenizerName(*tok);
    if (data.pre.empty()) {
      return absl::UnimplementedError(
          "tokenizer.json: the pre-tokenizer is neither LLaMA-3's split regex nor GPT-2's "
          "byte-level one; other byte-level BPE pre-tokenizers are not implemented "
          "(model/bpe_pretokenizer.cc)");
    }
  }
  absl::StatusOr<Vocabulary> vocab = ReadVocabulary(*tok, *model, min_vocab);
  if (!vocab.ok()) return vocab.status();

  const Json* merges = Member(*model, "merges");
  if (merges != nullptr && !merges->is_array()) return Bad("model.merges is not an array");
  std::vector<std::string> merge_texts;
  if (merges != nullptr) {
    merge_texts.reserve(merges->size());
    for (size_t r = 0; r < merges->size(); ++r) {
      absl::StatusOr<std::string> m = MergeText((*merges)[r], r);
      if (!m.ok()) return m.status();
      merge_texts.push_back(*std::move(m));
    }
  }

  if (spm) {
    // Score = -(rank of the first merge producing the token); tokens no
    // merge produces come last, so they never take priority over a merge.
    data.scores.assign(vocab->tokens.size(), -static_cast<float>(merge_texts.size() + 1));
    std::vector<bool> scored(vocab->tokens.size(), false);
    for (size_t r = 0; r < merge_texts.size(); ++r) {
      const std::string& m = merge_texts[r];
      const size_t space = m.find(' ');
      if (space == std::string::npos) return Bad(absl::StrCat("merge ", r, " has no space"));
      auto it = vocab->ids.find(m.substr(0, space) + m.substr(space + 1));
      if (it == vocab->ids.end() || scored[it->second]) continue;
      scored[it->second] = true;
      data.scores[it->second] = -static_cast<float>(r);
    }
    for (size_t id = 0; id < vocab->tokens.size(); ++id) {
      if (vocab->types[id] == TokenType::kNormal && IsByteToken(vocab->tokens[id])) {
        vocab->types[id] = TokenType::kByte;
      }
    }
    data.add_space_prefix = AddsSpacePrefix(*tok);
  } else {
    data.merges = std::move(merge_texts);
  }
  data.tokens = std::move(vocab->tokens);
  data.types = std::move(vocab->types);
  Vocabulary index;  // ReadSpecials only needs the text -> id map
  index.ids = std::move(vocab->ids);
  ReadSpecials(*tok, config ? &*config : nullptr, index, &data);
  if (data.unk >= 0 && data.types[data.unk] == TokenType::kNormal) {
    data.types[data.unk] = TokenType::kUnknown;
  }
  if (config) out.chat_template = StringMember(*config, "chat_template");
  return out;
}

absl::StatusOr<HfTokenizer> LoadHfTokenizer(const std::string& dir, int64_t min_vocab) {
  absl::StatusOr<std::string> tok = ReadTextFile(dir + "/tokenizer.json");
  if (!tok.ok()) {
    return absl::NotFoundError(absl::StrCat(
        dir, " has no tokenizer.json; copy it from the model's Hugging Face repository"));
  }
  absl::StatusOr<std::string> config = ReadTextFile(dir + "/tokenizer_config.json");
  if (!config.ok() && !absl::IsNotFound(config.status())) return config.status();
  absl::StatusOr<HfTokenizer> out =
      ParseHfTokenizer(*tok, config.ok() ? *config : std::string(), min_vocab);
  if (!out.ok()) {
    return absl::Status(out.status().code(), absl::StrCat(dir, ": ", out.status().message()));
  }
  return out;
}

}  // namespace bitnet
