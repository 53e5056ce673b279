// config.json of a Hugging Face checkpoint -> ModelConfig, for the
// architectures this project runs:
//   BitNetForCausalLM  (microsoft/bitnet-b1.58-2B-4T, packed and -bf16)
//                      -> arch "bitnet-b1.58": relu², sub-norms, NEOX RoPE
//   BitnetForCausalLM  (1bitLLM/bitnet_b1_58-*) -> arch "bitnet": sub-norms,
//                      NEOX RoPE, SiLU unless hidden_act says otherwise
//   LlamaForCausalLM   with ternary weights (HF1BitLLM/Llama3-8B-1.58, Falcon3
//                      1.58-bit) -> arch "llama": no sub-norms, NORM RoPE
//                      (q/k rows are permuted at conversion, as llama.cpp does)
// The ModelConfig is what ConfigFromGguf returns for the converted file.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace bitnet {

enum class HfArchitecture {
  kBitNetB158,  // BitNetForCausalLM
  kBitnet,      // BitnetForCausalLM
  kLlama,       // LlamaForCausalLM
};

// How a packed checkpoint's `weight_scale` turns codes q into weights W.
// transformers' BitLinear (quantization_config.linear_class "bitlinear", the
// default) computes y / (input_scale * weight_scale): W = q / weight_scale.
// AutoBitLinear in offline mode ("autobitlinear") multiplies: W = q * weight_scale.
enum class PackedScale { kInverse, kDirect };

struct HfConfig {
  std::string architecture;     // config.json architectures[0]
  HfArchitecture arch = HfArchitecture::kBitNetB158;
  ModelConfig config;           // tied_output from tie_word_embeddings (see below)
  bool tie_word_embeddings_given = false;  // false: decide by lm_head.weight's presence
  PackedScale packed_scale = PackedScale::kInverse;
  bool bitnet_quantization = false;  // quantization_config.quant_method == "bitnet"
  std::string torch_dtype;      // "bfloat16", "float16", ... (may be empty)
  // Llama 3 style RoPE frequency factors (rope_scaling.rope_type "llama3"),
  // n_rot / 2 values, written as rope_freqs.weight; empty otherwise.
  std::vector<float> rope_freqs;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
};

absl::StatusOr<HfConfig> ParseHfConfig(std::string_view config_json);
// Reads <dir>/config.json.
absl::StatusOr<HfConfig> LoadHfConfig(const std::string& dir);

}  // namespace bitnet
