// Turning chat messages into prompt text. GGUF files carry a Jinja chat
// template we do not execute; instead the template text tells which of the
// known formats the model was trained with.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "bitnet/v1/inference.pb.h"
#include "model/gguf.h"

namespace bitnet::coordinator {

enum class ChatFormat {
  kLlama3,  // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kBitnet,  // bitnet-b1.58 2B-4T: "Role: content<|eot_id|>" ... "Assistant: "
  kPlain,   // "role: content\n" ... "assistant:" (models without a template)
};

// From tokenizer.chat_template (kPlain when absent or unknown).
ChatFormat DetectChatFormat(const gguf::File& file);
const char* ChatFormatName(ChatFormat f);

// The prompt text (without BOS: the tokenizer adds it), ending where the
// assistant's reply starts. INVALID_ARGUMENT names the offending field.
absl::StatusOr<std::string> RenderChat(ChatFormat f, const v1::Chat& chat);

}  // namespace bitnet::coordinator
