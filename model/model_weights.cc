// Loads a layer range of a GGUF model into the kernels' runtime forms:
// ternary tensors (TQ1_0, TQ2_0, I2_S, or float tensors holding only
// {-s, 0, +s}) become TernaryMatrix; dense tensors stay in their stored form
// where the kernels have one (F16, BF16, Q8_0, Q6_K), else become f32.
#include "model/model_weights.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "model/ggml_types.h"

namespace bitnet {
namespace {

using kernels::DenseActRounding;
using kernels::DenseMatrix;
using kernels::TernaryMatrix;

// How ggml rounds activations before a product with a weight of type `t`
// (the weight type's vec_dot_type).
DenseActRounding RoundingForType(ggml::Type t) {
  switch (t) {
    case ggml::Type::kF32: return DenseActRounding::kNone;
    case ggml::Type::kF16: return DenseActRounding::kF16;
    case ggml::Type::kBF16: return DenseActRounding::kBF16;
    // Q4_0/Q5_0/Q8_0 pair with Q8_0 activations; Q4_1/Q5_1 with Q8_1, which
    // rounds the values the same way (it only adds block sums).
    case ggml::Type::kQ4_0:
    case ggml::Type::kQ4_1:
    case ggml::Type::kQ5_0:
    case ggml::Type::kQ5_1:
    case ggml::Type::kQ8_0: return DenseActRounding::kQ8_0;
    case ggml::Type::kQ2K:
    case ggml::Type::kQ3K:
    case ggml::Type::kQ4K:
    case ggml::Type::kQ5K:
    case ggml::Type::kQ6K:
    case ggml::Type::kTQ1_0:
    case ggml::Type::kTQ2_0: return DenseActRounding::kQ8K;
    default: return DenseActRounding::kNone;
  }
}

absl::Status WithFile(const gguf::File& file, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(file.path(), ": ", s.message()));
}

const gguf::TensorInfo* Find(const gguf::File& file, const std::string& name) {
  return file.FindTensor(name);
}

absl::StatusOr<const gguf::TensorInfo*> Require(const gguf::File& file, const std::string& name) {
  const gguf::TensorInfo* t = Find(file, name);
  if (t == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "'"));
  }
  return t;
}

// The whole tensor as f32.
absl::StatusOr<std::vector<float>> ReadFloats(const gguf::File& file, const gguf::TensorInfo& t) {
  const ggml::TypeTraits& traits = ggml::Traits(t.type);
  if (!traits.supported) {
    return absl::UnimplementedError(absl::StrCat("tensor '", t.name, "' has type ", std::string(traits.name),
                                                 ", which this engine cannot read"));
  }
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  absl::Status s = ggml::Dequantize(t.type, file.TensorData(t), t.n_elements(), out.data());
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("tensor '", t.name, "': ", s.message()));
  }
  return out;
}

absl::StatusOr<std::vector<float>> ReadVector(const gguf::File& file, const std::string& name,
                                              int64_t n) {
  absl::StatusOr<const gguf::TensorInfo*> t = Require(file, name);
  if (!t.ok()) return t.status();
  if ((*t)->n_elements() != n) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has ",
                                                   (*t)->n_elements(), " values, expected ", n));
  }
  return ReadFloats(file, **t);
}

absl::Status CheckMatrixShape(const gguf::TensorInfo& t, int64_t rows, int64_t cols) {
  if (t.n_elements() != rows * cols || t.ne.empty() || t.ne[0] != cols) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is not a ", rows, " x ",
                                                   cols, " matrix (ne[0] must be ", cols, ")"));
  }
  return absl::OkStatus();
}

// The kernels' compact form for a stored type, if they have one.
std::optional<kernels::DenseFormat> CompactFormat(ggml::Type t) {
  switch (t) {
    case ggml::Type::kF16: return kernels::DenseFormat::kF16;
    case ggml::Type::kBF16: return kernels::DenseFormat::kBF16;
    case ggml::Type::kQ8_0: return kernels::DenseFormat::kQ8_0;
    case ggml::Type::kQ6K: return kernels::DenseFormat::kQ6K;
    default: return std::nullopt;
  }
}

// A dense matrix from tensor t (shape already checked): kept in its stored
// form when the kernels have one (F16, BF16, Q8_0, Q6_K: a 2B-4T embedding
// stays 2 bytes or 0.82 bytes per weight), else dequantized to f32
// (`dequantized`, if given, is t's data as f32 already). Activations are
// rounded as ggml does for the stored type.
absl::StatusOr<DenseMatrix> MakeDense(const gguf::File& file, const gguf::TensorInfo& t,
                                      int64_t rows, int64_t cols,
                                      std::vector<float>* dequantized = nullptr) {
  if (std::optional<kernels::DenseFormat> f = CompactFormat(t.type);
      f && kernels::DenseShapeError(*f, rows, cols).empty()) {
    return kernels::MakeCompactDense(*f, rows, cols, file.TensorData(t));
  }
  DenseMatrix m;
  m.rows = rows;
  m.cols = cols;
  if (dequantized != nullptr) {
    m.w = std::move(*dequantized);
  } else {
    absl::StatusOr<std::vector<float>> w = ReadFloats(file, t);
    if (!w.ok()) return w.status();
    m.w = std::move(*w);
  }
  m.act_rounding = RoundingForType(t.type);
  return m;
}

// A dense matrix (embedding, lm_head).
absl::StatusOr<DenseMatrix> ReadDense(const gguf::File& file, const gguf::TensorInfo& t,
                                      int64_t rows, int64_t cols) {
  if (absl::Status s = CheckMatrixShape(t, rows, cols); !s.ok()) return s;
  return MakeDense(file, t, rows, cols);
}

// If every value is in {-s, 0, +s} for one s, returns s (0 for an all-zero
// tensor); otherwise -1. Such float tensors convert to ternary losslessly.
float TernaryScale(const std::vector<float>& w) {
  float s = 0.f;
  for (float v : w) {
    if (v == 0.f) continue;
    const float a = std::fabs(v);
    if (s == 0.f) {
      s = a;
    } else if (a != s) {
      return -1.f;
    }
    if (!std::isfinite(a)) return -1.f;
  }
  return s;
}

// Packs decoded codes, naming the tensor in any error.
absl::StatusOr<TernaryMatrix> Pack(int64_t rows, int64_t cols, const std::vector<int8_t>& codes,
                                   const std::vector<float>& scales, int64_t scale_block,
                                   const std::string& name) {
  if (static_cast<int64_t>(codes.size()) != rows * cols) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': decoded ", codes.size(),
                                                   " codes for a ", rows, " x ", cols, " matrix"));
  }
  absl::StatusOr<TernaryMatrix> m =
      kernels::PackTernaryChecked(rows, cols, codes.data(), scales, scale_block);
  if (!m.ok()) {
    return absl::Status(m.status().code(),
                        absl::StrCat("tensor '", name, "': ", m.status().message()));
  }
  // Only the kernels' packed form is kept (code() reads it): the row-major
  // codes would double the weights' memory.
  kernels::PrepareForKernels(*m, /*keep_codes=*/false);
  return m;
}

// One linear layer `<base>.weight` of shape rows x cols (ggml ne = [cols, rows]).
absl::StatusOr<Linear> ReadLinear(const gguf::File& file, const std::string& base, int64_t rows,
                                  int64_t cols) {
  absl::StatusOr<const gguf::TensorInfo*> found = Require(file, base + ".weight");
  if (!found.ok()) return found.status();
  const gguf::TensorInfo& t = **found;
  if (absl::Status s = CheckMatrixShape(t, rows, cols); !s.ok()) return s;
  if (Find(file, base + ".bias") != nullptr) {
    // Silently dropping a bias would give wrong outputs.
    return absl::UnimplementedError(
        absl::StrCat("tensor '", base, ".bias': linear biases are not supported"));
  }

  Linear lin;
  const ggml::TypeTraits& traits = ggml::Traits(t.type);
  if (traits.ternary) {
    absl::StatusOr<ggml::TernaryDecoded> dec =
        ggml::DecodeTernary(t.type, file.TensorData(t), t.n_elements());
    if (!dec.ok()) {
      return absl::Status(dec.status().code(),
                          absl::StrCat("tensor '", t.name, "': ", dec.status().message()));
    }
    absl::StatusOr<TernaryMatrix> m =
        Pack(rows, cols, dec->codes, dec->scales, dec->scale_block, t.name);
    if (!m.ok()) return m.status();
    lin.w = std::move(*m);
  } else {
    absl::StatusOr<std::vector<float>> w = ReadFloats(file, t);
    if (!w.ok()) return w.status();
    const float s = TernaryScale(*w);
    if (s >= 0.f) {
      std::vector<int8_t> codes(w->size());
      for (size_t i = 0; i < w->size(); ++i) {
        codes[i] = (*w)[i] > 0.f ? 1 : (*w)[i] < 0.f ? -1 : 0;
      }
      absl::StatusOr<TernaryMatrix> m =
          Pack(rows, cols, codes, {s}, rows * cols, t.name);
      if (!m.ok()) return m.status();
      lin.w = std::move(*m);
      lin.float_act_rounding = RoundingForType(t.type);
    } else {
      absl::StatusOr<DenseMatrix> m = MakeDense(file, t, rows, cols, &*w);
      if (!m.ok()) return m.status();
      lin.w = std::move(*m);
    }
  }

  if (const gguf::TensorInfo* st = Find(file, base + ".scale"); st != nullptr) {
    if (st->n_elements() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", st->name, "' has ",
                                                     st->n_elements(),
                                                     " values; an output scale has exactly 1"));
    }
    absl::StatusOr<std::vector<float>> v = ReadFloats(file, *st);
    if (!v.ok()) return v.status();
    lin.out_scale = (*v)[0];
  }
  return lin;
}

absl::StatusOr<LayerWeights> ReadLayer(const gguf::File& file, const ModelConfig& c, int64_t l) {
  const std::string p = absl::StrCat("blk.", l, ".");
  LayerWeights lw;
  const int64_t d = c.n_embd, q = c.q_dim(), kv = c.kv_dim(), ff = c.n_ff;
  struct VecSpec {
    std::vector<float>* dst;
    const char* name;
    int64_t n;
  };
  std::vector<VecSpec> vecs = {{&lw.attn_norm, "attn_norm.weight", d},
                               {&lw.ffn_norm, "ffn_norm.weight", d}};
  if (c.sub_norms) {
    vecs.push_back({&lw.attn_sub_norm, "attn_sub_norm.weight", q});
    vecs.push_back({&lw.ffn_sub_norm, "ffn_sub_norm.weight", ff});
  }
  for (const VecSpec& v : vecs) {
    absl::StatusOr<std::vector<float>> r = ReadVector(file, p + v.name, v.n);
    if (!r.ok()) return r.status();
    *v.dst = std::move(*r);
  }
  struct LinSpec {
    Linear* dst;
    const char* name;
    int64_t rows, cols;
  };
  const LinSpec lins[] = {{&lw.wq, "attn_q", q, d},          {&lw.wk, "attn_k", kv, d},
                          {&lw.wv, "attn_v", kv, d},         {&lw.wo, "attn_output", d, q},
                          {&lw.w_gate, "ffn_gate", ff, d},   {&lw.w_up, "ffn_up", ff, d},
                          {&lw.w_down, "ffn_down", d, ff}};
  for (const LinSpec& s : lins) {
    absl::StatusOr<Linear> r = ReadLinear(file, p + s.name, s.rows, s.cols);
    if (!r.ok()) return r.status();
    *s.dst = std::move(*r);
  }
  return lw;
}

size_t MatrixBytes(const Linear& l) {
  if (const auto* t = std::get_if<TernaryMatrix>(&l.w)) return t->memory_bytes();
  return std::get<DenseMatrix>(l.w).memory_bytes();
}

}  // namespace

int64_t Linear::rows() const {
  return std::visit([](const auto& m) { return m.rows; }, w);
}
int64_t Linear::cols() const {
  return std::visit([](const auto& m) { return m.cols; }, w);
}

const kernels::DenseMatrix* ModelWeights::head() const {
  if (!is_last()) return nullptr;
  if (lm_head) return &*lm_head;
  if (config.tied_output && token_embd) return &*token_embd;
  return nullptr;
}

size_t ModelWeights::memory_bytes() const {
  size_t n = 0;
  if (token_embd) n += token_embd->memory_bytes();
  if (lm_head) n += lm_head->memory_bytes();
  n += (output_norm.size() + rope_freqs.size()) * sizeof(float);
  for (const LayerWeights& l : layers) {
    n += (l.attn_norm.size() + l.attn_sub_norm.size() + l.ffn_norm.size() +
          l.ffn_sub_norm.size()) * sizeof(float);
    for (const Linear* lin : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      n += MatrixBytes(*lin);
    }
  }
  return n;
}

absl::StatusOr<std::shared_ptr<const ModelWeights>> ModelWeights::Load(const gguf::File& file,
                                                                       int layer_begin,
                                                                       int layer_end) {
  absl::StatusOr<ModelConfig> config = ConfigFromGguf(file);
  if (!config.ok()) return config.status();
  auto w = std::make_shared<ModelWeights>();
  w->config = std::move(*config);
  const ModelConfig& c = w->config;
  if (layer_end < 0) layer_end = static_cast<int>(c.n_layer);
  if (layer_begin < 0 || layer_begin >= layer_end || layer_end > c.n_layer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer range [", layer_begin, ", ", layer_end, ") is not a non-empty range inside the ",
        c.n_layer, " layers of ", file.path()));
  }
  w->layer_begin = layer_begin;
  w->layer_end = layer_end;

  auto load = [&]() -> absl::Status {
    if (w->is_first()) {
      absl::StatusOr<const gguf::TensorInfo*> t = Require(file, "token_embd.weight");
      if (!t.ok()) return t.status();
      absl::StatusOr<DenseMatrix> m = ReadDense(file, **t, c.n_vocab, c.n_embd);
      if (!m.ok()) return m.status();
      w->token_embd = std::move(*m);
    }
    for (int l = layer_begin; l < layer_end; ++l) {
      absl::StatusOr<LayerWeights> lw = ReadLayer(file, c, l);
      if (!lw.ok()) return lw.status();
      w->layers.push_back(std::move(*lw));
    }
    if (const gguf::TensorInfo* t = Find(file, "rope_freqs.weight"); t != nullptr) {
      absl::StatusOr<std::vector<float>> f = ReadVector(file, t->name, c.n_rot / 2);
      if (!f.ok()) return f.status();
      w->rope_freqs = std::move(*f);
    }
    if (w->is_last()) {
      absl::StatusOr<std::vector<float>> norm = ReadVector(file, "output_norm.weight", c.n_embd);
      if (!norm.ok()) return norm.status();
      w->output_norm = std::move(*norm);
      if (!c.tied_output || !w->is_first()) {
        const char* name = c.tied_output ? "token_embd.weight" : "output.weight";
        absl::StatusOr<const gguf::TensorInfo*> t = Require(file, name);
        if (!t.ok()) return t.status();
        absl::StatusOr<DenseMatrix> m = ReadDense(file, **t, c.n_vocab, c.n_embd);
        if (!m.ok()) return m.status();
        w->lm_head = std::move(*m);
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = load(); !s.ok()) return WithFile(file, s);
  return std::shared_ptr<const ModelWeights>(std::move(w));
}

}  // namespace bitnet
