// Writes a tokenizer as GGUF metadata (tokenizer.ggml.*), with the key names,
// value types and conventions llama.cpp's converter uses, so that
// Tokenizer::FromGguf and llama.cpp read back the same tokenizer.
#pragma once

#include <string>

#include "model/gguf.h"
#include "model/tokenizer.h"

namespace bitnet {

// tokenizer.ggml.{model,pre,tokens,token_type,merges | scores,...}, the
// special-token ids that are set (>= 0), add_bos / add_eos (and
// add_space_prefix for "llama"), and tokenizer.chat_template when non-empty.
void SetTokenizerMetadata(const TokenizerData& data, gguf::Writer& writer,
                          const std::string& chat_template = "");

}  // namespace bitnet
