// Chat prompt rendering (formats: chat_template.h).
#include "model/chat_template.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bitnet {
namespace {

// Jinja's trim: leading and trailing ASCII/Unicode-ASCII white space.
std::string Trim(std::string_view s) {
  return std::string(absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size())));
}

// Jinja's capitalize: first character upper case, the rest lower case.
std::string Capitalize(std::string_view s) {
  std::string out = absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
  if (!out.empty()) out[0] = absl::ascii_toupper(static_cast<unsigned char>(out[0]));
  return out;
}

constexpr char kEotId[] = "<|eot_id|>";

// Special-token texts a message content must not spell (see ChatEncodeOptions).
bool SpellsSpecialToken(const Tokenizer& tok, std::string_view content, std::string* which) {
  size_t pos = 0;
  while ((pos = content.find('<', pos)) != std::string_view::npos) {
    const size_t end = content.find('>', pos);
    if (end == std::string_view::npos) break;
    const std::string candidate(content.substr(pos, end - pos + 1));
    const TokenId id = tok.Find(candidate);
    if (id >= 0 && (tok.type(id) == TokenType::kControl || tok.type(id) == TokenType::kUserDefined)) {
      *which = candidate;
      return true;
    }
    pos = end + 1;
  }
  return false;
}

}  // namespace

std::string_view ChatFormatName(ChatFormat f) {
  switch (f) {
    case ChatFormat::kBitNet: return "bitnet";
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kFalcon3: return "falcon3";
  }
  return "unknown";
}

absl::StatusOr<ChatFormat> ChatFormatFromName(std::string_view name) {
  for (ChatFormat f : {ChatFormat::kBitNet, ChatFormat::kLlama3, ChatFormat::kFalcon3}) {
    if (name == ChatFormatName(f)) return f;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown chat format '", std::string(name),
                                                 "'; choose bitnet, llama3 or falcon3"));
}

absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view tmpl, std::string_view arch_name,
                                            const Tokenizer* tok) {
  auto has = [&](std::string_view s) { return tmpl.find(s) != std::string_view::npos; };
  if (!tmpl.empty()) {
    if (has("<|start_header_id|>") && has("<|end_header_id|>")) return ChatFormat::kLlama3;
    if (has("<|eot_id|>") && (has("capitalize") || has("Assistant: "))) return ChatFormat::kBitNet;
    if (has("<|assistant|>") && has("<|user|>")) return ChatFormat::kFalcon3;
  }
  if (arch_name == "bitnet-b1.58" || arch_name == "bitnet-25") return ChatFormat::kBitNet;
  if (tok != nullptr) {
    if (tok->Find("<|start_header_id|>") >= 0 && tok->Find("<|eot_id|>") >= 0) return ChatFormat::kLlama3;
    if (tok->Find("<|assistant|>") >= 0 && tok->Find("<|user|>") >= 0) return ChatFormat::kFalcon3;
  }
  return absl::NotFoundError(
      "cannot tell which chat format this model uses (no recognisable chat template, architecture "
      "or special tokens); send plain prompts or name a format (bitnet, llama3, falcon3)");
}

absl::StatusOr<std::string> ApplyChatTemplate(ChatFormat format, std::span<const ChatMessage> messages,
                                              bool add_generation_prompt) {
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("chat message ", i, " has no role"));
    }
    switch (format) {
      case ChatFormat::kBitNet:
        absl::StrAppend(&out, Capitalize(m.role), ": ", Trim(m.content), kEotId);
        break;
      case ChatFormat::kLlama3:
        absl::StrAppend(&out, "<|start_header_id|>", m.role, "<|end_header_id|>\n\n", Trim(m.content),
                        kEotId);
        break;
      case ChatFormat::kFalcon3:
        absl::StrAppend(&out, "<|", m.role, "|>\n", m.content, "\n");
        break;
    }
  }
  if (add_generation_prompt) {
    switch (format) {
      case ChatFormat::kBitNet: out += "Assistant: "; break;
      case ChatFormat::kLlama3: out += "<|start_header_id|>assistant<|end_header_id|>\n\n"; break;
      case ChatFormat::kFalcon3: out += "<|assistant|>\n"; break;
    }
  }
  return out;
}

absl::StatusOr<std::vector<TokenId>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatEncodeOptions& options) {
  if (messages.empty()) return absl::InvalidArgumentError("a chat request needs at least one message");
  if (!options.allow_special_in_content) {
    for (size_t i = 0; i < messages.size(); ++i) {
      std::string which;
      if (SpellsSpecialToken(tokenizer, messages[i].content, &which)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "chat message ", i, " contains the special token text '", which,
            "', which would be read as that token; remove it from the message"));
      }
    }
  }
  if (format != ChatFormat::kFalcon3 && tokenizer.Find(std::string(kEotId)) < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", std::string(ChatFormatName(format)),
        " chat format needs the <|eot_id|> token, which this model's vocabulary lacks"));
  }
  absl::StatusOr<std::string> text = ApplyChatTemplate(format, messages, options.add_generation_prompt);
  if (!text.ok()) return text.status();
  return tokenizer.Encode(*text, /*add_bos=*/true, /*parse_special=*/true);
}

std::vector<TokenId> ChatStopTokens(const Tokenizer& tokenizer, ChatFormat format) {
  std::vector<TokenId> ids;
  if (format != ChatFormat::kFalcon3) {
    if (TokenId eot = tokenizer.Find(std::string(kEotId)); eot >= 0) ids.push_back(eot);
  }
  for (TokenId id = 0; id < tokenizer.n_vocab(); ++id) {
    if (tokenizer.IsEndOfGeneration(id)) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace bitnet
