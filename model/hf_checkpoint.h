// A Hugging Face checkpoint directory (config.json, model.safetensors or a
// sharded index, optional tokenizer.json) read as ternary weights and turned
// into GGUF, either a file (bitnet-convert) or an in-memory image that
// ModelWeights::Load reads, so HF models load into exactly the same runtime
// weights as GGUF models.
//
// Linear layers come in two forms, told apart by dtype:
//   - packed (U8 [out/4, in]): code + 1 in bits 2i..2i+1 of byte (r, c) is
//     element (i*out/4 + r, c); the per-tensor scale comes from
//     `<name>.weight_scale` (inverse or direct, see PackedScale);
//   - float masters (F32/F16/BF16 [out, in]): quantized with absmean exactly
//     as the reference converters do it: s = 1 / max(mean|W|, 1e-5) in f32,
//     code = clamp(round_half_even(W * s), -1, 1), scale = 1 / s; 1bitLLM's
//     BitnetForCausalLM rounds the scale to the checkpoint's dtype (llama.cpp
//     and bitnet.cpp cast the quantized weights back to it).
// LlamaForCausalLM q/k rows are permuted like llama.cpp's converter does, so
// the GGUF uses NORM RoPE and loads in llama.cpp (see docs/CHECKPOINTS.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/hf_config.h"
#include "model/hf_tokenizer.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

namespace bitnet {

// One linear layer as ternary codes (row-major [rows, cols], in the order
// the GGUF stores it, i.e. after any q/k permutation) and its tensor scale.
struct HfTernary {
  int64_t rows = 0, cols = 0;
  std::vector<int8_t> codes;
  float scale = 0.f;
};

class HfCheckpoint {
 public:
  // Opens and validates: every tensor the architecture needs must exist with
  // the shape and a dtype the config implies; unknown tensors are an error
  // (they would mean an unsupported variant), except rotary inv_freq buffers.
  static absl::StatusOr<std::unique_ptr<HfCheckpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const HfConfig& hf_config() const { return config_; }
  const ModelConfig& config() const { return config_.config; }
  // Present when the directory has tokenizer.json.
  const std::optional<HfTokenizer>& tokenizer() const { return tokenizer_; }
  const safetensors::Checkpoint& tensors() const { return *tensors_; }

  // Linear layer `l` ("attn_q", "attn_k", "attn_v", "attn_output",
  // "ffn_gate", "ffn_up", "ffn_down").
  absl::StatusOr<HfTernary> ReadLinear(int64_t layer, const std::string& gguf_kind) const;
  // A float tensor by HF name, as f32.
  absl::StatusOr<std::vector<float>> ReadFloats(const std::string& hf_name) const;

 private:
  std::string dir_;
  HfConfig config_;
  std::optional<HfTokenizer> tokenizer_;
  std::unique_ptr<safetensors::Checkpoint> tensors_;
};

struct HfToGgufOptions {
  // Ternary weights: I2_S (one f32 scale per tensor: lossless), TQ1_0 / TQ2_0
  // (fp16 scale per block of 256) or F32 / F16 / BF16 (code * scale).
  ggml::Type ternary_type = ggml::Type::kI2S;
  // When the ternary type cannot hold a tensor (I2_S needs a multiple of 128
  // elements, TQ types rows of 256), write it as F32 instead of failing.
  bool float_fallback = false;
  // token_embd / output: F32, F16, BF16, Q8_0, Q6_K; nullopt = as stored.
  std::optional<ggml::Type> embedding_type;
  // Layers outside [layer_begin, layer_end) are written as zeros without
  // reading the checkpoint (for loading one pipeline stage).
  int layer_begin = 0;
  int layer_end = -1;
  bool include_tokenizer = true;
  // Called as bytes are written: (tensor name, bytes done, bytes total).
  std::function<void(const std::string&, uint64_t, uint64_t)> progress;
};

// Adds the GGUF metadata (architecture keys with llama.cpp's names, general.*,
// the tokenizer) and every tensor (streamed: converted while the writer
// writes) of the checkpoint to `writer`. The checkpoint must outlive the
// writer's WriteFile/Serialize call.
absl::Status AddHfToGguf(const HfCheckpoint& ckpt, const HfToGgufOptions& options,
                         gguf::Writer& writer);

// The checkpoint in `dir` as an in-memory GGUF file (I2_S ternary weights,
// lossless; the tokenizer included), which ModelWeights::Load, ConfigFromGguf
// and Tokenizer::FromGguf read like any GGUF file. Layers outside
// [layer_begin, layer_end) (end -1: all) are zeros, not read from disk.
absl::StatusOr<std::unique_ptr<gguf::File>> HfCheckpointAsGguf(const std::string& dir,
                                                               int layer_begin = 0,
                                                               int layer_end = -1);

// GGUF general.file_type for a ternary type (llama.cpp's LLAMA_FTYPE values;
// 40 for bitnet.cpp's I2_S).
uint32_t GgufFileType(ggml::Type ternary_type);

// Loads a Hugging Face directory into the runtime weights of layers
// [layer_begin, layer_end): converts to an in-memory GGUF image (I2_S ternary
// weights, embeddings as stored: lossless) and runs ModelWeights::Load on it.
absl::StatusOr<std::shared_ptr<const ModelWeights>> LoadHfWeights(const std::string& dir,
                                                                  int layer_begin = 0,
                                                                  int layer_end = -1);

// True if `path` is a directory holding a Hugging Face checkpoint (config.json).
bool IsHfCheckpointDir(const std::string& path);

}  // namespace bitnet
