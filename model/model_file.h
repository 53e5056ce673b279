// Opens what a user gives as --model: a GGUF file (memory-mapped) or a
// Hugging Face checkpoint directory (config.json + safetensors +
// tokenizer.json), converted in memory to the same GGUF form, so every
// binary that takes a model path takes both.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/gguf.h"

namespace bitnet {

// `layer_begin` / `layer_end` (end -1: all) matter only for a Hugging Face
// directory: layers outside the range are not read (a pipeline stage, or
// metadata only with an empty range). Converting in memory takes the
// model's size in RAM once; for large models convert once with
// bitnet-convert and serve the GGUF file.
absl::StatusOr<std::unique_ptr<gguf::File>> OpenModelFile(const std::string& path,
                                                          int layer_begin = 0, int layer_end = -1);

}  // namespace bitnet
