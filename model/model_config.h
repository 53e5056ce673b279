// Hyperparameters of a model, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/gguf.h"

namespace bitnet {

enum class Arch {
  kBitnet,       // "bitnet" (1bitLLM / llama.cpp): NEOX RoPE, sub-norms, SiLU or relu²
  kBitnetB158,   // "bitnet-b1.58" and its older name "bitnet-25" (2B-4T): relu², sub-norms
  kLlama,        // "llama" with ternary linear weights (Llama3-8B-1.58): no sub-norms
};
enum class RopeType { kNorm, kNeox };  // adjacent pairs (llama) | halves (neox)
enum class Activation { kSilu, kRelu2 };

std::string_view ArchName(Arch a);

struct ModelConfig {
  Arch arch = Arch::kBitnet;
  std::string arch_name;      // as stored in general.architecture
  std::string name;           // general.name (may be empty)
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;       // key_length (default n_embd / n_head)
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.f;
  float rope_freq_scale = 1.f;
  int64_t n_rot = 0;          // rope.dimension_count (default head_dim)
  RopeType rope_type = RopeType::kNeox;
  Activation activation = Activation::kSilu;
  bool sub_norms = true;      // attn_sub_norm / ffn_sub_norm present in the arch
  bool tied_output = true;    // no output.weight: lm_head is token_embd

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Reads `{arch}.*` keys with llama.cpp's names and defaults; checks that the
// shapes are consistent (n_head % n_head_kv == 0, n_rot <= head_dim even, ...)
// and that the tensors the arch needs exist with matching shapes.
absl::StatusOr<ModelConfig> ConfigFromGguf(const gguf::File& file);

}  // namespace bitnet
