#include "coordinator/chat_format.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bitnet::coordinator {

ChatFormat DetectChatFormat(const gguf::File& file) {
  auto tmpl = file.GetString("tokenizer.chat_template");
  if (!tmpl.ok()) return ChatFormat::kPlain;
  if (absl::StrContains(*tmpl, "<|start_header_id|>")) return ChatFormat::kLlama3;
  if (absl::StrContains(*tmpl, "Assistant: ") || absl::StrContains(*tmpl, "'Assistant: '")) {
    return ChatFormat::kBitnet;
  }
  return ChatFormat::kPlain;
}

const char* ChatFormatName(ChatFormat f) {
  switch (f) {
    case ChatFormat::kLlama3: return "llama3";
    case ChatFormat::kBitnet: return "bitnet";
    default: return "plain";
  }
}

absl::StatusOr<std::string> RenderChat(ChatFormat f, const v1::Chat& chat) {
  if (chat.messages_size() == 0) {
    return absl::InvalidArgumentError("chat.messages: give at least one message");
  }
  std::string out;
  for (int i = 0; i < chat.messages_size(); ++i) {
    const v1::ChatMessage& m = chat.messages(i);
    const std::string& role = m.role();
    if (role != "system" && role != "user" && role != "assistant") {
      return absl::InvalidArgumentError(absl::StrCat(
          "chat.messages[", i, "].role must be system, user or assistant, got '", role, "'"));
    }
    switch (f) {
      case ChatFormat::kLlama3:
        absl::StrAppend(&out, "<|start_header_id|>", role, "<|end_header_id|>\n\n", m.content(),
                        "<|eot_id|>");
        break;
      case ChatFormat::kBitnet: {
        const char* name = role == "system" ? "System" : role == "user" ? "User" : "Assistant";
        absl::StrAppend(&out, name, ": ", m.content(), "<|eot_id|>");
        break;
      }
      default:
        absl::StrAppend(&out, role, ": ", m.content(), "\n");
        break;
    }
  }
  switch (f) {
    case ChatFormat::kLlama3:
      absl::StrAppend(&out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;
    case ChatFormat::kBitnet: absl::StrAppend(&out, "Assistant: "); break;
    default: absl::StrAppend(&out, "assistant:"); break;
  }
  return out;
}

}  // namespace bitnet::coordinator
