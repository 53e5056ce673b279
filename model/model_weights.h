// The weights of a layer range [begin, end) of a model, converted at load into
// the runtime forms the kernels use. A pipeline stage loads only its range:
// the embedding only when begin == 0, final norm and lm_head only when
// end == n_layer.
#pragma once

#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/matmul.h"
#include "kernels/ternary_matrix.h"
#include "model/gguf.h"
#include "model/model_config.h"

namespace bitnet {

// A linear layer: ternary (the normal case) or dense float (a float tensor
// that is not exactly ternary-valued, kept as stored, as llama.cpp does).
// `out_scale` is an optional extra per-tensor output scale (llama.cpp's
// `<name>.scale` tensors); 1 when absent.
struct Linear {
  std::variant<kernels::TernaryMatrix, kernels::DenseMatrix> w;
  float out_scale = 1.f;
  // How ggml rounds the activations for the stored type of a ternary-valued
  // float tensor (F16 -> fp16, ...). Used only when activations are not
  // quantized (ActQuant::kNone), so that mode reproduces llama.cpp's float
  // products for F16/BF16 files too.
  kernels::DenseActRounding float_act_rounding = kernels::DenseActRounding::kNone;
  int64_t rows() const;
  int64_t cols() const;
};

struct LayerWeights {
  std::vector<float> attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;  // sub-norms may be empty
  Linear wq, wk, wv, wo, w_gate, w_up, w_down;
};

struct ModelWeights {
  ModelConfig config;
  int layer_begin = 0;
  int layer_end = 0;
  // First stage: token embedding (n_vocab x n_embd), in its stored form when
  // that is F16, BF16, Q8_0 or Q6_K (rows are dequantized on lookup:
  // DenseMatrix::RowToFloat), else f32.
  std::optional<kernels::DenseMatrix> token_embd;
  std::vector<LayerWeights> layers;  // layers[i] is model layer layer_begin + i
  // Last stage: final norm and lm_head. With a tied output (no output.weight)
  // lm_head holds token_embd's data, except when this stage also has
  // token_embd: then lm_head stays empty and head() returns token_embd, so a
  // single-node model does not keep two copies of a large embedding.
  std::vector<float> output_norm;
  std::optional<kernels::DenseMatrix> lm_head;
  // Optional per-frequency RoPE divisors (llama.cpp's rope_freqs.weight, used
  // by Llama 3 style models), n_rot / 2 values; empty when absent.
  std::vector<float> rope_freqs;

  bool is_first() const { return layer_begin == 0; }
  bool is_last() const { return layer_end == config.n_layer; }
  // The output projection of the last stage (lm_head or the shared
  // token_embd); nullptr on other stages.
  const kernels::DenseMatrix* head() const;
  size_t memory_bytes() const;

  // layer_end < 0 means n_layer.
  static absl::StatusOr<std::shared_ptr<const ModelWeights>> Load(const gguf::File& file,
                                                                  int layer_begin = 0,
                                                                  int layer_end = -1);
};

}  // namespace bitnet
