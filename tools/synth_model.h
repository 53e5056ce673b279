// Synthetic ternary models in GGUF form, of any supported architecture and
// shape, for tests and benchmarks that must not depend on downloaded weights.
//
// Weights follow the oracle model's recipe (shared/oracle/README.md): each
// linear weight is uniform {-1, 0, +1} times one fp16-representable scale per
// tensor; token_embd (and an untied output) is roughly N(0, 0.02), rounded to
// fp16 values; norm weights are 1 + 0.01 * N(0, 1). Every tensor has its own
// random stream derived from (seed, tensor name), so the same seed gives the
// same weights whatever the encoding, and the file is written one slice of a
// tensor at a time (a 100B model never has to fit in memory).
//
// The metadata uses llama.cpp's keys and tensor names; a model with arch
// `bitnet` loads in llama.cpp, `bitnet-b1.58` in bitnet.cpp's fork.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/tokenizer.h"

namespace bitnet::synth {

struct SynthSpec {
  std::string arch = "bitnet";  // bitnet | bitnet-b1.58 | bitnet-25 | llama
  std::string name = "synthetic";
  int64_t n_vocab = 290;
  int64_t n_embd = 256;
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t head_dim = 0;  // 0: n_embd / n_head
  int64_t n_ff = 768;
  int64_t n_ctx = 512;
  float rope_base = 500000.f;
  float rms_eps = 1e-5f;
  std::string activation;  // "" (the arch's default) | silu | relu2
  bool tied = true;        // false: write a separate output.weight
  ggml::Type ternary_type = ggml::Type::kTQ2_0;  // tq1_0 | tq2_0 | i2_s | f32 | f16
  ggml::Type embd_type = ggml::Type::kF16;       // f32 | f16 | q8_0 | q6_K (also output.weight)
  uint64_t seed = 1234;
  // The synthetic vocabulary's kind: "gpt2" (byte-level BPE) or "spm"
  // (SentencePiece, like LLaMA-1/2 and 1bitLLM models); ignored with `vocab`.
  std::string tokenizer = "gpt2";
  // A real vocabulary to embed instead (e.g. LLaMA-3's, tools/vocab_pack.h);
  // n_vocab must equal its size.
  std::optional<TokenizerData> vocab;

  int64_t head_dim_or_default() const { return head_dim > 0 ? head_dim : n_embd / n_head; }
};

// Presets: tiny (the oracle's tiny-gqa shape), 2b4t (BitNet b1.58 2B-4T),
// 8b (Llama-3-8B shapes, arch llama, untied), 70b and 100b (DESIGN.md's
// reference shapes, arch bitnet, 8 KV heads, LLaMA-3 vocabulary size).
std::vector<std::string> PresetNames();
absl::StatusOr<SynthSpec> Preset(std::string_view name);

// INVALID_ARGUMENT naming the hyperparameter when the shape cannot be
// written (row lengths that do not fit the tensor types, head counts that do
// not divide, a vocabulary too small for the byte tokenizer, ...).
absl::Status ValidateSpec(const SynthSpec& spec);

// The ternary types a synthetic model can use for its linear weights.
absl::StatusOr<ggml::Type> TernaryTypeFromName(std::string_view name);
absl::StatusOr<ggml::Type> EmbdTypeFromName(std::string_view name);

struct Progress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  size_t tensors_done = 0;
  size_t tensors_total = 0;
  std::string_view tensor;  // the tensor being written
};
using ProgressFn = std::function<void(const Progress&)>;

// Tensor data bytes of the model (without metadata and padding).
absl::StatusOr<uint64_t> TensorDataBytes(const SynthSpec& spec);

// Writes the model to `path`; `progress` (optional) is called as data is
// written. `threads` generate slices of a tensor in parallel (0: all hardware
// threads); the bytes do not depend on it. The file is removed if writing
// fails.
absl::Status WriteSynthModel(const SynthSpec& spec, const std::string& path,
                             const ProgressFn& progress = nullptr, int threads = 0);

// The GPT-2 byte-level tokenizer every synthetic model carries: the 256 byte
// tokens (id = byte value), up to 32 common English merges, <s> and </s>,
// then "[PADn]" tokens of type unused up to n_vocab (as conversion scripts
// pad real vocabularies). Needs n_vocab >= 258.
absl::Status AddSyntheticTokenizer(gguf::Writer& w, int64_t n_vocab);

// A synthetic SentencePiece vocabulary (tokenizer.ggml.model = llama): <unk>,
// <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, "▁", printable ASCII and
// then common English pieces with decreasing scores, padded with unused
// "[PADn]" tokens up to n_vocab. Needs n_vocab >= 259.
absl::StatusOr<TokenizerData> SyntheticSpmTokenizer(int64_t n_vocab);

}  // namespace bitnet::synth
