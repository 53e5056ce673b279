// Writes Hugging Face format model directories (config.json, safetensors
// weights, tokenizer files) in the published layouts, so the loaders and the
// converter can be tested on every checkpoint family without downloading
// weights:
//   - BitNetForCausalLM packed (microsoft/bitnet-b1.58-2B-4T): uint8 [out/4, in]
//     holding 4 ternary codes per byte (code + 1 in bits 2i..2i+1 of row r is
//     output row i*(out/4) + r) and a bf16 `weight_scale` that is the INVERSE
//     scale (W = q / weight_scale) for linear_class "bitlinear";
//   - BitNetForCausalLM -bf16: bf16 master weights, quantized at load (absmean);
//   - BitnetForCausalLM (1bitLLM): float master weights (f16 / f32);
//   - LlamaForCausalLM packed (HF1BitLLM/Llama3-8B-1.58): as BitNet packed,
//     with Llama tensor names (no sub-norms).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace bitnet::tools {

// tokenizer.json for a byte-level BPE vocabulary ("llama-bpe" or "gpt-2"
// pre-tokenizer) with LLaMA-3's structure: vocab + merges, control tokens as
// special added tokens, a TemplateProcessing post-processor adding BOS.
absl::StatusOr<std::string> HfTokenizerJson(const TokenizerData& data);
// tokenizer_config.json: bos/eos tokens, add_bos_token, chat_template.
std::string HfTokenizerConfigJson(const TokenizerData& data, const std::string& chat_template = "");

enum class HfFamily {
  kBitNetPacked,   // BitNetForCausalLM, uint8 packed + weight_scale
  kBitNetBf16,     // BitNetForCausalLM, bf16 masters (online quantization)
  kBitnet1bitLLM,  // BitnetForCausalLM, float masters (1bitLLM)
  kLlamaPacked,    // LlamaForCausalLM, uint8 packed + weight_scale
};

// A small random model. Master weights are drawn so that absmean
// quantization is exact and every family encodes the same ternary codes and
// scales: per tensor, |W| values come in pairs (m*j/128, m*(256-j)/128) with
// m a power of two, so mean|W| == m exactly, W/m has no rounding ties, and
// 1/m is exact in bf16, fp16 and f32.
struct HfTestModelSpec {
  HfFamily family = HfFamily::kBitNetPacked;
  int64_t n_vocab = 64;
  int64_t hidden = 256;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t intermediate = 256;
  int64_t max_positions = 128;
  float rope_theta = 500000.f;
  bool tied = true;           // tie_word_embeddings (no lm_head.weight)
  uint64_t seed = 1;
  std::string master_dtype = "BF16";  // kBitnet1bitLLM: "F16", "BF16" or "F32"
  int shards = 1;             // > 1: model-0000k-of-0000n.safetensors + index
  std::string linear_class = "bitlinear";  // packed families: quantization_config.linear_class
};

// The weights a spec produces, in Hugging Face names and [out, in] row-major
// order, for tests to compare against: ternary codes and the per-tensor scale
// of every linear layer, float values of everything else (exactly as stored).
struct HfTestWeights {
  std::map<std::string, std::vector<int8_t>> codes;  // "model.layers.0.self_attn.q_proj"
  std::map<std::string, float> scales;
  std::map<std::string, std::vector<float>> floats;  // embeddings, norms, lm_head
};

// Writes config.json, the safetensors file(s) and, when `tokenizer` is given,
// tokenizer.json + tokenizer_config.json into `dir` (created if missing).
absl::StatusOr<HfTestWeights> WriteHfTestModel(const std::string& dir, const HfTestModelSpec& spec,
                                               const TokenizerData* tokenizer = nullptr);

// Packs ternary codes [rows, cols] (rows % 4 == 0) into the uint8
// [rows/4, cols] layout of the packed checkpoints, and back.
std::vector<uint8_t> PackHfTernary(const std::vector<int8_t>& codes, int64_t rows, int64_t cols);

}  // namespace bitnet::tools
