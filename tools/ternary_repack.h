// GGUF -> GGUF repacking between ternary encodings (TQ1_0, TQ2_0, I2_S), the
// GGUF half of bitnet-convert. Ternary linear weights are decoded losslessly
// to codes and scales and re-encoded:
//   - to TQ1_0 / TQ2_0: one fp16 scale per block of 256 (exact when the
//     source scales are fp16 values, as every TQ file and llama.cpp's own
//     F32 -> TQ quantization give);
//   - to I2_S: one f32 scale per tensor, so every non-zero block of the
//     source must share one scale (true for BitNet models; an error otherwise).
// Float linear weights that hold only {-s, 0, +s} (F32/F16 conversions of
// ternary models) are quantized the same way; other float linear weights are
// an error (they are not ternary). Everything else is copied byte for byte,
// except token_embd / output when a new embedding type is asked for.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "model/ggml_types.h"
#include "model/gguf.h"

namespace bitnet::tools {

struct RepackOptions {
  ggml::Type ternary_type = ggml::Type::kTQ2_0;
  std::optional<ggml::Type> embedding_type;  // nullopt: keep token_embd / output as they are
  // (tensor name, bytes done, bytes total), as the output is written.
  std::function<void(const std::string&, uint64_t, uint64_t)> progress;
};

// Adds `in`'s metadata (general.file_type updated) and converted tensors to
// `out`. `in` must outlive the writer's WriteFile/Serialize call.
absl::Status RepackGguf(const gguf::File& in, const RepackOptions& options, gguf::Writer& out);

// True for the names of the linear weights a ternary model quantizes
// (blk.N.{attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down}.weight).
bool IsTernaryLinearName(const std::string& name);

}  // namespace bitnet::tools
