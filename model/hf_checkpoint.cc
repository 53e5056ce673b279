// Hugging Face checkpoint -> ternary weights -> GGUF (file or in-memory image).
#include "model/hf_checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/tokenizer_metadata.h"

namespace bitnet {
namespace {

using safetensors::Dtype;

struct LinearName {
  const char* gguf;
  const char* hf;
};
constexpr LinearName kLinears[] = {
    {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

std::string LayerPrefix(int64_t l) { return absl::StrCat("model.layers.", l, "."); }

const char* HfLinearName(const std::string& gguf_kind) {
  for (const LinearName& n : kLinears) {
    if (gguf_kind == n.gguf) return n.hf;
  }
  return nullptr;
}

// [rows, cols] of a linear layer in the model's [out, in] orientation.
std::pair<int64_t, int64_t> LinearShape(const ModelConfig& c, const std::string& kind) {
  const int64_t d = c.n_embd, q = c.q_dim(), kv = c.kv_dim(), ff = c.n_ff;
  if (kind == "attn_q") return {q, d};
  if (kind == "attn_k" || kind == "attn_v") return {kv, d};
  if (kind == "attn_output") return {d, q};
  if (kind == "ffn_down") return {d, ff};
  return {ff, d};  // ffn_gate, ffn_up
}

struct SubNormNames {
  const char* attn;
  const char* ffn;
};
SubNormNames SubNorms(HfArchitecture a) {
  if (a == HfArchitecture::kBitNetB158) return {"self_attn.attn_sub_norm", "mlp.ffn_sub_norm"};
  if (a == HfArchitecture::kBitnet) return {"self_attn.inner_attn_ln", "mlp.ffn_layernorm"};
  return {nullptr, nullptr};
}

bool IsFloatDtype(Dtype d) {
  return d == Dtype::kF32 || d == Dtype::kF16 || d == Dtype::kBF16 || d == Dtype::kF64;
}

std::string Shape(const std::vector<int64_t>& s) { return absl::StrCat("[", absl::StrJoin(s, ", "), "]"); }

absl::Status Where(const HfCheckpoint& ck, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(ck.dir(), ": ", s.message()));
}

// Rounds f the way a tensor of dtype `d` stores it.
float RoundToDtype(float f, Dtype d) {
  if (d == Dtype::kF16) return ggml::HalfToFloat(ggml::FloatToHalf(f));
  if (d == Dtype::kBF16) return ggml::Bf16ToFloat(ggml::FloatToBf16(f));
  return f;
}

// llama.cpp's q/k permutation: within each head, rows (j, i) -> (i, j) for
// j in {0, 1}, i < head_dim / 2, so adjacent-pair (NORM) RoPE on the result
// equals Hugging Face's rotate_half (NEOX) RoPE on the original.
void PermuteRows(HfTernary& t, int64_t n_head) {
  const int64_t hd = t.rows / n_head, half = hd / 2;
  std::vector<int8_t> out(t.codes.size());
  for (int64_t h = 0; h < n_head; ++h) {
    for (int64_t j = 0; j < 2; ++j) {
      for (int64_t i = 0; i < half; ++i) {
        const int64_t src = h * hd + j * half + i, dst = h * hd + 2 * i + j;
        std::copy_n(t.codes.begin() + src * t.cols, t.cols, out.begin() + dst * t.cols);
      }
    }
  }
  t.codes = std::move(out);
}

absl::Status CheckTensor(const safetensors::Checkpoint& ck, const std::string& name,
                         int64_t n_elements, bool need_float) {
  std::optional<safetensors::Checkpoint::Ref> r = ck.Find(name);
  if (!r) return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "'"));
  if (r->info->n_elements() != n_elements) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ",
                                                   Shape(r->info->shape), " (", r->info->n_elements(),
                                                   " values), expected ", n_elements,
                                                   " values from config.json"));
  }
  if (need_float && !IsFloatDtype(r->info->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name, "' has dtype ", std::string(safetensors::DtypeName(r->info->dtype)),
        "; expected a float dtype"));
  }
  return absl::OkStatus();
}

// A linear layer is packed (U8 [rows/4, cols] + weight_scale) or float [rows, cols].
absl::Status CheckLinear(const safetensors::Checkpoint& ck, const HfConfig& h, const std::string& base,
                         int64_t rows, int64_t cols, std::set<std::string>* expected) {
  const std::string w = base + ".weight";
  expected->insert(w);
  std::optional<safetensors::Checkpoint::Ref> r = ck.Find(w);
  if (!r) return absl::InvalidArgumentError(absl::StrCat("missing tensor '", w, "'"));
  const safetensors::TensorInfo& t = *r->info;
  if (t.dtype == Dtype::kU8) {
    if (rows % 4 != 0 || t.shape != std::vector<int64_t>{rows / 4, cols}) {
      return absl::InvalidArgumentError(absl::StrCat(
          "packed tensor '", w, "' has shape ", Shape(t.shape), ", expected [", rows / 4, ", ",
          cols, "] (4 ternary values per byte along the output dimension)"));
    }
    expected->insert(base + ".weight_scale");
    return CheckTensor(ck, base + ".weight_scale", 1, /*need_float=*/true);
  }
  if (!IsFloatDtype(t.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", w, "' has dtype ",
                                                   std::string(safetensors::DtypeName(t.dtype)),
                                                   "; expected U8 (packed ternary) or a float dtype"));
  }
  if (h.arch == HfArchitecture::kLlama && !h.bitnet_quantization) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", w, "' holds float weights and config.json has no BitNet quantization_config: "
        "this is a full-precision Llama model, not a ternary one"));
  }
  if (t.shape != std::vector<int64_t>{rows, cols}) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", w, "' has shape ", Shape(t.shape),
                                                   ", expected [", rows, ", ", cols, "]"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const safetensors::Checkpoint& ck, HfConfig& h) {
  ModelConfig& c = h.config;
  const bool has_head = ck.Find("lm_head.weight").has_value();
  if (!h.tie_word_embeddings_given) c.tied_output = !has_head;
  std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight"};
  if (absl::Status s = CheckTensor(ck, "model.embed_tokens.weight", c.n_vocab * c.n_embd, true); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckTensor(ck, "model.norm.weight", c.n_embd, true); !s.ok()) return s;
  if (!c.tied_output) {
    expected.insert("lm_head.weight");
    if (absl::Status s = CheckTensor(ck, "lm_head.weight", c.n_vocab * c.n_embd, true); !s.ok()) return s;
  } else if (has_head) {
    expected.insert("lm_head.weight");  // tie_word_embeddings: true; transformers ignores it too
  }
  const SubNormNames sub = SubNorms(h.arch);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = LayerPrefix(l);
    std::vector<std::pair<std::string, int64_t>> norms = {{p + "input_layernorm.weight", c.n_embd},
                                                          {p + "post_attention_layernorm.weight", c.n_embd}};
    if (sub.attn != nullptr) {
      norms.push_back({p + sub.attn + ".weight", c.q_dim()});
      norms.push_back({p + sub.ffn + ".weight", c.n_ff});
    }
    for (const auto& [name, n] : norms) {
      expected.insert(name);
      if (absl::Status s = CheckTensor(ck, name, n, true); !s.ok()) return s;
    }
    for (const LinearName& lin : kLinears) {
      const auto [rows, cols] = LinearShape(c, lin.gguf);
      if (absl::Status s = CheckLinear(ck, h, p + lin.hf, rows, cols, &expected); !s.ok()) return s;
    }
  }
  std::vector<std::string> unknown;
  for (const std::string& name : ck.TensorNames()) {
    if (!expected.count(name) && !absl::EndsWith(name, "rotary_emb.inv_freq")) unknown.push_back(name);
  }
  if (!unknown.empty()) {
    if (unknown.size() > 5) unknown.resize(5);
    return absl::UnimplementedError(absl::StrCat(
        "the checkpoint has tensors this ", h.architecture, " loader does not know (",
        absl::StrJoin(unknown, ", "),
        "); it is a variant of the architecture that is not supported"));
  }
  return absl::OkStatus();
}

// Builds the float values of rows [row0, row0 + n) of a tensor into `out`.
using RowFiller = std::function<absl::Status(int64_t row0, int64_t n, float* out)>;

// Rows per conversion chunk: about 4M values, a multiple of 128 rows so I2_S
// groups (128 consecutive values) never straddle chunks.
int64_t ChunkRows(int64_t rows, int64_t cols) {
  int64_t r = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(cols, 1));
  if (r >= 128) r -= r % 128;
  else r = 128;
  return std::min(r, rows);
}

struct Progress {
  std::function<void(const std::string&, uint64_t, uint64_t)> fn;
  uint64_t done = 0;
  uint64_t total = 0;
};

// Streams a [rows, cols] tensor of `type` through the sink, chunk by chunk.
// For I2_S the per-chunk trailer that Quantize adds is dropped and the tensor
// scale `i2s_scale` written once at the end.
absl::Status EmitTensor(const std::string& name, ggml::Type type, int64_t rows, int64_t cols,
                        float i2s_scale, const RowFiller& fill, const gguf::Writer::ChunkSink& sink,
                        Progress& progress) {
  const int64_t step = ChunkRows(rows, cols);
  std::vector<float> buf;
  for (int64_t r0 = 0; r0 < rows; r0 += step) {
    const int64_t n = std::min(step, rows - r0);
    buf.resize(static_cast<size_t>(n * cols));
    if (absl::Status s = fill(r0, n, buf.data()); !s.ok()) return s;
    absl::StatusOr<std::vector<uint8_t>> bytes = ggml::Quantize(type, buf);
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(), absl::StrCat("tensor '", name, "': ", bytes.status().message()));
    }
    const size_t keep = type == ggml::Type::kI2S ? static_cast<size_t>(n * cols / 4) : bytes->size();
    if (absl::Status s = sink(bytes->data(), keep); !s.ok()) return s;
    progress.done += keep;
    if (progress.fn) progress.fn(name, progress.done, progress.total);
  }
  if (type == ggml::Type::kI2S) {
    uint8_t trailer[32] = {};
    std::memcpy(trailer, &i2s_scale, 4);
    if (absl::Status s = sink(trailer, sizeof trailer); !s.ok()) return s;
    progress.done += sizeof trailer;
  }
  return absl::OkStatus();
}

// Whether `type` can hold a [rows, cols] tensor.
bool Fits(ggml::Type type, int64_t rows, int64_t cols) {
  const int64_t block = ggml::Traits(type).block_elems;
  if (type == ggml::Type::kI2S) return (rows * cols) % block == 0;
  return cols % block == 0;
}

absl::StatusOr<ggml::Type> EmbeddingSourceType(const safetensors::Checkpoint& ck, const std::string& name) {
  std::optional<safetensors::Checkpoint::Ref> r = ck.Find(name);
  if (!r) return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "'"));
  switch (r->info->dtype) {
    case Dtype::kF16: return ggml::Type::kF16;
    case Dtype::kBF16: return ggml::Type::kBF16;
    default: return ggml::Type::kF32;
  }
}

void SetArchMetadata(const HfCheckpoint& ck, const HfToGgufOptions& o, gguf::Writer& w) {
  const ModelConfig& c = ck.config();
  const std::string a = c.arch_name + ".";
  auto u32 = [](int64_t v) { return gguf::Value::U32(static_cast<uint32_t>(v)); };
  w.SetValue("general.architecture", gguf::Value::Str(c.arch_name));
  w.SetValue("general.name", gguf::Value::Str(c.name));
  w.SetValue(a + "vocab_size", u32(c.n_vocab));
  w.SetValue(a + "context_length", u32(c.n_ctx_train));
  w.SetValue(a + "embedding_length", u32(c.n_embd));
  w.SetValue(a + "block_count", u32(c.n_layer));
  w.SetValue(a + "feed_forward_length", u32(c.n_ff));
  w.SetValue(a + "attention.head_count", u32(c.n_head));
  w.SetValue(a + "attention.head_count_kv", u32(c.n_head_kv));
  if (c.head_dim * c.n_head != c.n_embd) {
    w.SetValue(a + "attention.key_length", u32(c.head_dim));
    w.SetValue(a + "attention.value_length", u32(c.head_dim));
  }
  w.SetValue(a + "rope.dimension_count", u32(c.n_rot));
  w.SetValue(a + "rope.freq_base", gguf::Value::F32(c.rope_freq_base));
  w.SetValue(a + "attention.layer_norm_rms_epsilon", gguf::Value::F32(c.rms_eps));
  if (c.rope_freq_scale != 1.f) {
    w.SetValue(a + "rope.scaling.type", gguf::Value::Str("linear"));
    w.SetValue(a + "rope.scaling.factor", gguf::Value::F32(1.f / c.rope_freq_scale));
  }
  // Our own key, written only when the activation is not the arch's default
  // (llama.cpp ignores it; Tokenizer/Config readers here honour it).
  const Activation def = c.arch == Arch::kBitnetB158 ? Activation::kRelu2 : Activation::kSilu;
  if (c.activation != def) {
    w.SetValue(a + "hidden_activation",
               gguf::Value::Str(c.activation == Activation::kRelu2 ? "relu2" : "silu"));
  }
  w.SetValue("general.file_type", gguf::Value::U32(GgufFileType(o.ternary_type)));
  if (ggml::Traits(o.ternary_type).ternary) {
    w.SetValue("general.quantization_version", gguf::Value::U32(2));
  }
}

}  // namespace

uint32_t GgufFileType(ggml::Type t) {
  switch (t) {
    case ggml::Type::kF32: return 0;
    case ggml::Type::kF16: return 1;
    case ggml::Type::kBF16: return 32;
    case ggml::Type::kTQ1_0: return 36;
    case ggml::Type::kTQ2_0: return 37;
    case ggml::Type::kI2S: return 40;
    default: return 0;
  }
}

bool IsHfCheckpointDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
         ::stat((path + "/config.json").c_str(), &st) == 0;
}

absl::StatusOr<std::unique_ptr<HfCheckpoint>> HfCheckpoint::Open(const std::string& dir) {
  auto ck = std::unique_ptr<HfCheckpoint>(new HfCheckpoint());
  ck->dir_ = dir;
  absl::StatusOr<HfConfig> h = LoadHfConfig(dir);
  if (!h.ok()) return h.status();
  ck->config_ = *std::move(h);
  absl::StatusOr<std::unique_ptr<safetensors::Checkpoint>> t = safetensors::Checkpoint::Open(dir);
  if (!t.ok()) return t.status();
  ck->tensors_ = *std::move(t);
  if (absl::Status s = Validate(*ck->tensors_, ck->config_); !s.ok()) return Where(*ck, s);
  absl::StatusOr<HfTokenizer> tok = LoadHfTokenizer(dir, ck->config().n_vocab);
  if (tok.ok()) {
    if (static_cast<int64_t>(tok->data.tokens.size()) != ck->config().n_vocab) {
      return Where(*ck, absl::InvalidArgumentError(absl::StrCat(
                            "tokenizer.json has ", tok->data.tokens.size(),
                            " tokens but config.json's vocab_size is ", ck->config().n_vocab)));
    }
    ck->tokenizer_ = *std::move(tok);
  } else if (!absl::IsNotFound(tok.status())) {
    return tok.status();
  }
  return ck;
}

absl::StatusOr<std::vector<float>> HfCheckpoint::ReadFloats(const std::string& hf_name) const {
  std::optional<safetensors::Checkpoint::Ref> r = tensors_->Find(hf_name);
  if (!r) return Where(*this, absl::InvalidArgumentError(absl::StrCat("missing tensor '", hf_name, "'")));
  return safetensors::ReadFloats(*r->file, *r->info);
}

absl::StatusOr<HfTernary> HfCheckpoint::ReadLinear(int64_t layer, const std::string& gguf_kind) const {
  const char* hf = HfLinearName(gguf_kind);
  if (hf == nullptr || layer < 0 || layer >= config().n_layer) {
    return absl::InvalidArgumentError(absl::StrCat("no linear layer '", gguf_kind, "' in layer ", layer));
  }
  const std::string base = LayerPrefix(layer) + hf;
  HfTernary t;
  std::tie(t.rows, t.cols) = LinearShape(config(), gguf_kind);
  t.codes.resize(static_cast<size_t>(t.rows * t.cols));
  const safetensors::Checkpoint::Ref w = *tensors_->Find(base + ".weight");
  if (w.info->dtype == Dtype::kU8) {
    // Byte (r, c) holds elements (i * rows/4 + r, c) in bits 2i..2i+1.
    const int64_t p = t.rows / 4;
    const uint8_t* data = w.file->Data(*w.info);
    for (int64_t r = 0; r < p; ++r) {
      for (int64_t c = 0; c < t.cols; ++c) {
        const uint8_t b = data[r * t.cols + c];
        for (int64_t i = 0; i < 4; ++i) {
          const int field = (b >> (2 * i)) & 3;
          if (field == 3) {
            return Where(*this, absl::InvalidArgumentError(absl::StrCat(
                                    "packed tensor '", base, ".weight' holds the invalid 2-bit code 3 at byte (",
                                    r, ", ", c, ")")));
          }
          t.codes[(i * p + r) * t.cols + c] = static_cast<int8_t>(field - 1);
        }
      }
    }
    absl::StatusOr<std::vector<float>> ws = ReadFloats(base + ".weight_scale");
    if (!ws.ok()) return ws.status();
    const float v = (*ws)[0];
    if (!std::isfinite(v) || v <= 0.f) {
      return Where(*this, absl::InvalidArgumentError(absl::StrCat(
                              "tensor '", base, ".weight_scale' is ", v, "; a weight scale must be positive")));
    }
    t.scale = config_.packed_scale == PackedScale::kInverse ? 1.0f / v : v;
  } else {
    absl::StatusOr<std::vector<float>> m = safetensors::ReadFloats(*w.file, *w.info);
    if (!m.ok()) return m.status();
    // absmean, as the reference converters compute it in f32 (the sum is
    // taken in double so it does not depend on summation order).
    double sum = 0;
    for (float x : *m) sum += std::fabs(x);
    const float mean = static_cast<float>(sum / static_cast<double>(m->size()));
    const float s = 1.0f / std::max(mean, 1e-5f);
    for (size_t i = 0; i < m->size(); ++i) {
      const float q = std::nearbyint((*m)[i] * s);  // round half to even, like torch.round
      t.codes[i] = static_cast<int8_t>(std::clamp(q, -1.f, 1.f));
    }
    t.scale = 1.0f / s;
    if (config_.arch == HfArchitecture::kBitnet) t.scale = RoundToDtype(t.scale, w.info->dtype);
  }
  if (config_.arch == HfArchitecture::kLlama) {
    if (gguf_kind == "attn_q") PermuteRows(t, config().n_head);
    if (gguf_kind == "attn_k") PermuteRows(t, config().n_head_kv);
  }
  return t;
}

absl::Status AddHfToGguf(const HfCheckpoint& ck, const HfToGgufOptions& o, gguf::Writer& w) {
  const ggml::TypeTraits& tt = ggml::Traits(o.ternary_type);
  if (!tt.ternary && o.ternary_type != ggml::Type::kF32 && o.ternary_type != ggml::Type::kF16 &&
      o.ternary_type != ggml::Type::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("ternary weights cannot be written as ",
                                                   std::string(tt.name),
                                                   "; use i2_s, tq1_0, tq2_0, f16, bf16 or f32"));
  }
  const ModelConfig& c = ck.config();
  const int layer_end = o.layer_end < 0 ? static_cast<int>(c.n_layer) : o.layer_end;
  SetArchMetadata(ck, o, w);
  if (o.include_tokenizer && ck.tokenizer()) {
    SetTokenizerMetadata(ck.tokenizer()->data, w, ck.tokenizer()->chat_template);
  }

  auto progress = std::make_shared<Progress>();
  progress->fn = o.progress;
  const SubNormNames sub = SubNorms(ck.hf_config().arch);

  // Float tensors (embeddings in the chosen type, norms in F32).
  auto add_float = [&](const std::string& gguf_name, const std::string& hf_name, int64_t rows,
                       int64_t cols, std::optional<ggml::Type> want) -> absl::Status {
    ggml::Type type = ggml::Type::kF32;
    if (want) {
      type = *want;
    } else if (rows > 1) {
      absl::StatusOr<ggml::Type> src = EmbeddingSourceType(ck.tensors(), hf_name);
      if (!src.ok()) return src.status();
      type = *src;
    }
    if (!Fits(type, rows, cols)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", gguf_name, "' has rows of ", cols, " values, which ",
          std::string(ggml::Traits(type).name), " cannot hold (blocks of ",
          ggml::Traits(type).block_elems, "); choose another embedding type"));
    }
    absl::StatusOr<uint64_t> bytes = ggml::TensorBytes(type, rows * cols);
    if (!bytes.ok()) return bytes.status();
    progress->total += *bytes;
    const HfCheckpoint* ckp = &ck;
    return w.AddStreamedTensor(
        gguf_name, rows > 1 ? std::vector<int64_t>{cols, rows} : std::vector<int64_t>{cols}, type,
        [=](const gguf::Writer::ChunkSink& sink) -> absl::Status {
          absl::StatusOr<std::vector<float>> v = ckp->ReadFloats(hf_name);
          if (!v.ok()) return v.status();
          RowFiller fill = [&](int64_t r0, int64_t n, float* out) {
            std::copy_n(v->begin() + r0 * cols, n * cols, out);
            return absl::OkStatus();
          };
          return EmitTensor(gguf_name, type, rows, cols, 0.f, fill, sink, *progress);
        });
  };

  auto add_linear = [&](int64_t l, const char* kind) -> absl::Status {
    const auto [rows, cols] = LinearShape(c, kind);
    ggml::Type type = o.ternary_type;
    if (!Fits(type, rows, cols)) {
      if (!o.float_fallback) {
        return absl::InvalidArgumentError(absl::StrCat(
            "blk.", l, ".", kind, " is a ", rows, " x ", cols, " matrix, which ",
            std::string(ggml::Traits(type).name),
            " cannot hold (TQ types need rows of a multiple of 256 values, I2_S a multiple of 128 "
            "values); choose another --type"));
      }
      type = ggml::Type::kF32;
    }
    const std::string name = absl::StrCat("blk.", l, ".", kind, ".weight");
    absl::StatusOr<uint64_t> bytes = ggml::TensorBytes(type, rows * cols);
    if (!bytes.ok()) return bytes.status();
    progress->total += *bytes;
    const bool in_range = l >= o.layer_begin && l < layer_end;
    const HfCheckpoint* ckp = &ck;
    const std::string kind_s = kind;
    return w.AddStreamedTensor(
        name, {cols, rows}, type, [=](const gguf::Writer::ChunkSink& sink) -> absl::Status {
          HfTernary t;
          if (in_range) {
            absl::StatusOr<HfTernary> r = ckp->ReadLinear(l, kind_s);
            if (!r.ok()) return r.status();
            t = *std::move(r);
          }
          RowFiller fill = [&](int64_t r0, int64_t n, float* out) {
            if (t.codes.empty()) {
              std::fill_n(out, n * cols, 0.f);
            } else {
              const int8_t* codes = t.codes.data() + r0 * cols;
              for (int64_t i = 0; i < n * cols; ++i) out[i] = static_cast<float>(codes[i]) * t.scale;
            }
            return absl::OkStatus();
          };
          return EmitTensor(name, type, rows, cols, t.scale, fill, sink, *progress);
        });
  };

  if (absl::Status s = add_float("token_embd.weight", "model.embed_tokens.weight", c.n_vocab,
                                 c.n_embd, o.embedding_type);
      !s.ok()) {
    return Where(ck, s);
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = LayerPrefix(l);
    const std::string b = absl::StrCat("blk.", l, ".");
    std::vector<absl::Status> st;
    st.push_back(add_float(b + "attn_norm.weight", p + "input_layernorm.weight", 1, c.n_embd, ggml::Type::kF32));
    for (const char* kind : {"attn_q", "attn_k", "attn_v"}) st.push_back(add_linear(l, kind));
    if (sub.attn) st.push_back(add_float(b + "attn_sub_norm.weight", p + sub.attn + ".weight", 1, c.q_dim(), ggml::Type::kF32));
    st.push_back(add_linear(l, "attn_output"));
    st.push_back(add_float(b + "ffn_norm.weight", p + "post_attention_layernorm.weight", 1, c.n_embd, ggml::Type::kF32));
    for (const char* kind : {"ffn_gate", "ffn_up"}) st.push_back(add_linear(l, kind));
    if (sub.ffn) st.push_back(add_float(b + "ffn_sub_norm.weight", p + sub.ffn + ".weight", 1, c.n_ff, ggml::Type::kF32));
    st.push_back(add_linear(l, "ffn_down"));
    for (const absl::Status& s : st) {
      if (!s.ok()) return Where(ck, s);
    }
  }
  if (absl::Status s = add_float("output_norm.weight", "model.norm.weight", 1, c.n_embd, ggml::Type::kF32); !s.ok()) {
    return Where(ck, s);
  }
  if (!c.tied_output) {
    if (absl::Status s = add_float("output.weight", "lm_head.weight", c.n_vocab, c.n_embd, o.embedding_type);
        !s.ok()) {
      return Where(ck, s);
    }
  }
  if (!ck.hf_config().rope_freqs.empty()) {
    std::vector<float> f = ck.hf_config().rope_freqs;
    std::vector<uint8_t> bytes(f.size() * 4);
    std::memcpy(bytes.data(), f.data(), bytes.size());
    if (absl::Status s = w.AddTensor("rope_freqs.weight", {static_cast<int64_t>(f.size())},
                                     ggml::Type::kF32, std::move(bytes));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<gguf::File>> HfCheckpointAsGguf(const std::string& dir,
                                                               int layer_begin, int layer_end) {
  absl::StatusOr<std::unique_ptr<HfCheckpoint>> ck = HfCheckpoint::Open(dir);
  if (!ck.ok()) return ck.status();
  HfToGgufOptions o;
  o.ternary_type = ggml::Type::kI2S;
  o.float_fallback = true;
  o.layer_begin = layer_begin;
  o.layer_end = layer_end;
  o.include_tokenizer = true;  // lets ConfigFromGguf cross-check the vocabulary size
  gguf::Writer w;
  if (absl::Status s = AddHfToGguf(**ck, o, w); !s.ok()) return s;
  absl::StatusOr<std::vector<uint8_t>> image = w.Serialize();
  if (!image.ok()) return image.status();
  return gguf::File::FromOwnedBuffer(*std::move(image), dir + " (Hugging Face)");
}

absl::StatusOr<std::shared_ptr<const ModelWeights>> LoadHfWeights(const std::string& dir,
                                                                  int layer_begin, int layer_end) {
  absl::StatusOr<std::unique_ptr<gguf::File>> file = HfCheckpointAsGguf(dir, layer_begin, layer_end);
  if (!file.ok()) return file.status();
  // Load copies everything it keeps, so the image can go when it returns.
  return ModelWeights::Load(**file, layer_begin, layer_end);
}

}  // namespace bitnet
