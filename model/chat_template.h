// Chat prompts: renders a list of messages in the format a model was trained
// on and gives the token ids to feed and the ids that end the reply. Not a
// Jinja interpreter: like llama.cpp's llama_chat_apply_template, the format
// is recognised from the model's template text (or architecture) and
// rendered by code.
//
// Formats:
//   bitnet  (microsoft/bitnet-b1.58-2B-4T): "<role>: <content><|eot_id|>" per
//           message, role capitalised ("System", "User", "Assistant"), then
//           "Assistant: " as the generation prompt. The model's Jinja template
//           is {{bos}} + role|capitalize + ': ' + content|trim + '<|eot_id|>'.
//   llama3  (LLaMA-3 instruct, HF1BitLLM/Llama3-8B-1.58):
//           "<|start_header_id|>role<|end_header_id|>\n\n<content><|eot_id|>",
//           then "<|start_header_id|>assistant<|end_header_id|>\n\n".
//   falcon3 (Falcon3 1.58-bit instruct): "<|role|>\n<content>\n", then
//           "<|assistant|>\n".
// The rendered text never contains BOS: EncodeChat adds it the way the
// tokenizer asks (add_bos), as llama.cpp does.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace bitnet {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant" (llama3 also passes others through)
  std::string content;
};

enum class ChatFormat { kBitNet, kLlama3, kFalcon3 };

std::string_view ChatFormatName(ChatFormat f);
absl::StatusOr<ChatFormat> ChatFormatFromName(std::string_view name);  // bitnet|llama3|falcon3

// Picks the format from the model's chat template text (GGUF
// tokenizer.chat_template or tokenizer_config.json "chat_template"; may be
// empty), falling back to the architecture ("bitnet-b1.58" -> bitnet) and the
// vocabulary (<|start_header_id|> -> llama3, <|assistant|> -> falcon3).
// NOT_FOUND when nothing identifies a format (the caller should then refuse
// chat requests or let the user name one).
absl::StatusOr<ChatFormat> DetectChatFormat(std::string_view template_text, std::string_view arch_name,
                                            const Tokenizer* tokenizer);

// The prompt text (special tokens spelled out, no BOS). Roles must be
// non-empty; contents are trimmed where the format's template trims them.
absl::StatusOr<std::string> ApplyChatTemplate(ChatFormat format, std::span<const ChatMessage> messages,
                                              bool add_generation_prompt = true);

struct ChatEncodeOptions {
  bool add_generation_prompt = true;
  // Reject message contents that spell a special token (e.g. "<|eot_id|>"),
  // which would otherwise become that token (prompt injection).
  bool allow_special_in_content = false;
};

// Token ids of the rendered prompt: BOS if the tokenizer adds one, the
// format's special tokens as ids, everything else as text.
absl::StatusOr<std::vector<TokenId>> EncodeChat(const Tokenizer& tokenizer, ChatFormat format,
                                                std::span<const ChatMessage> messages,
                                                const ChatEncodeOptions& options = {});

// Ids that end an assistant reply: the format's end-of-turn token
// (<|eot_id|> for bitnet / llama3) plus the tokenizer's end-of-generation
// tokens (EOS, EOT, ...). Sorted, unique.
std::vector<TokenId> ChatStopTokens(const Tokenizer& tokenizer, ChatFormat format);

}  // namespace bitnet
