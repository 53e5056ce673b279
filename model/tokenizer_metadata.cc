#include "model/tokenizer_metadata.h"

#include <utility>
#include <vector>

namespace bitnet {

void SetTokenizerMetadata(const TokenizerData& data, gguf::Writer& writer,
                          const std::string& chat_template) {
  const bool spm = data.model == "llama";
  writer.SetValue("tokenizer.ggml.model", gguf::Value::Str(data.model.empty() ? "gpt2" : data.model));
  // llama.cpp's SentencePiece converter writes pre = "default".
  writer.SetValue("tokenizer.ggml.pre", gguf::Value::Str(spm ? "default" : data.pre));
  writer.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr(data.tokens));
  if (spm) {
    std::vector<float> scores = data.scores;
    scores.resize(data.tokens.size(), 0.f);
    writer.SetValue("tokenizer.ggml.scores", gguf::Value::F32Arr(scores));
  }
  std::vector<int32_t> types(data.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (size_t i = 0; i < data.types.size() && i < types.size(); ++i) {
    types[i] = static_cast<int32_t>(data.types[i]);
  }
  writer.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr(types));
  if (!spm) writer.SetValue("tokenizer.ggml.merges", gguf::Value::StrArr(data.merges));
  for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", data.bos},
                         std::pair{"tokenizer.ggml.eos_token_id", data.eos},
                         std::pair{"tokenizer.ggml.eot_token_id", data.eot},
                         std::pair{"tokenizer.ggml.unknown_token_id", data.unk},
                         std::pair{"tokenizer.ggml.padding_token_id", data.pad}}) {
    if (id >= 0) writer.SetValue(key, gguf::Value::U32(static_cast<uint32_t>(id)));
  }
  writer.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Bool(data.add_bos));
  writer.SetValue("tokenizer.ggml.add_eos_token", gguf::Value::Bool(data.add_eos));
  if (spm) {
    writer.SetValue("tokenizer.ggml.add_space_prefix", gguf::Value::Bool(data.add_space_prefix));
  }
  if (!chat_template.empty()) {
    writer.SetValue("tokenizer.chat_template", gguf::Value::Str(chat_template));
  }
}

}  // namespace bitnet
