// ModelConfig from GGUF metadata, following llama.cpp's key names, defaults
// and per-architecture conventions.
#include "model/model_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace bitnet {
namespace {

// Wraps a status with the file and what we were reading, so the user knows
// which file is at fault.
absl::Status Annotate(const gguf::File& file, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(file.path(), ": ", s.message()));
}

absl::StatusOr<Arch> ArchFromName(std::string_view name) {
  if (name == "bitnet") return Arch::kBitnet;
  // "bitnet-25" is the older name of "bitnet-b1.58" in bitnet.cpp's fork;
  // "bitnet-1.58" appears in some builds of that fork too.
  if (name == "bitnet-b1.58" || name == "bitnet-25" || name == "bitnet-1.58") {
    return Arch::kBitnetB158;
  }
  if (name == "llama") return Arch::kLlama;
  return absl::UnimplementedError(absl::StrCat(
      "unsupported model architecture '", std::string(name),
      "' (general.architecture); supported: bitnet, bitnet-b1.58 (alias bitnet-25), llama"));
}

// Reads a required integer key `{arch}.suffix`.
absl::StatusOr<int64_t> RequiredInt(const gguf::File& file, const std::string& key) {
  absl::StatusOr<int64_t> v = file.GetInt(key);
  if (absl::IsNotFound(v.status())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "missing required metadata key '", key,
        "'; the file was not written for this architecture or is incomplete"));
  }
  return v;
}

// Reads an optional integer key; `fallback` when absent.
absl::StatusOr<int64_t> OptionalInt(const gguf::File& file, const std::string& key,
                                    int64_t fallback) {
  absl::StatusOr<int64_t> v = file.GetInt(key);
  if (absl::IsNotFound(v.status())) return fallback;
  return v;
}

absl::StatusOr<double> OptionalFloat(const gguf::File& file, const std::string& key,
                                     double fallback) {
  absl::StatusOr<double> v = file.GetFloat(key);
  if (absl::IsNotFound(v.status())) return fallback;
  return v;
}

// Accepts the spellings seen in configs and converters: "silu", "swish",
// "relu2", "relu²", "relu_squared", "squared_relu", "relu^2", "relu_sqr".
absl::StatusOr<Activation> ActivationFromName(std::string_view raw) {
  std::string s = absl::AsciiStrToLower(std::string(raw));
  s = absl::StrReplaceAll(s, {{"\xc2\xb2", "2"}, {"_", ""}, {"-", ""}, {" ", ""}, {"^", ""}});
  if (s == "silu" || s == "swish" || s == "swiglu") return Activation::kSilu;
  if (s == "relu2" || s == "relusquared" || s == "squaredrelu" || s == "relusqr" ||
      s == "sqrelu") {
    return Activation::kRelu2;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown hidden activation '", std::string(raw), "'; expected silu or relu2 (relu squared)"));
}

// Number of entries of an array-valued key without copying it; -1 if absent
// or not an array.
int64_t ArrayLength(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.Find(key);
  if (v == nullptr || v->type != gguf::ValueType::kArray) return -1;
  return static_cast<int64_t>(std::get<gguf::Array>(v->v).items.size());
}

std::string ShapeString(const std::vector<int64_t>& ne) {
  return absl::StrCat("[", absl::StrJoin(ne, ", "), "]");
}

// Checks that `name` exists with exactly the shape `ne` (ggml order: ne[0]
// is the input / contiguous dimension).
absl::Status CheckTensor(const gguf::File& file, const std::string& name,
                         const std::vector<int64_t>& ne, bool required = true) {
  const gguf::TensorInfo* t = file.FindTensor(name);
  if (t == nullptr) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("missing tensor '", name, "' that this architecture needs"));
  }
  std::vector<int64_t> got = t->ne;
  // Trailing 1-dimensions do not change the shape.
  while (got.size() > ne.size() && got.back() == 1) got.pop_back();
  if (got != ne) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ",
                                                   ShapeString(t->ne), ", expected ",
                                                   ShapeString(ne),
                                                   " from the model's hyperparameters"));
  }
  return absl::OkStatus();
}

absl::Status CheckHyperparameters(const ModelConfig& c) {
  auto positive = [](int64_t v, std::string_view what) -> absl::Status {
    if (v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(what), " must be positive, got ", v));
    }
    return absl::OkStatus();
  };
  for (auto [v, what] : {std::pair<int64_t, std::string_view>{c.n_vocab, "n_vocab"},
                         {c.n_embd, "embedding_length"},
                         {c.n_layer, "block_count"},
                         {c.n_head, "attention.head_count"},
                         {c.n_head_kv, "attention.head_count_kv"},
                         {c.head_dim, "attention.key_length"},
                         {c.n_ff, "feed_forward_length"},
                         {c.n_ctx_train, "context_length"}}) {
    if (absl::Status s = positive(v, what); !s.ok()) return s;
  }
  if (c.n_head % c.n_head_kv != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention.head_count (", c.n_head, ") must be a multiple of head_count_kv (",
                     c.n_head_kv, ") for grouped-query attention"));
  }
  if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope.dimension_count (", c.n_rot, ") must be even and in (0, head_dim=",
                     c.head_dim, "]"));
  }
  if (!(c.rms_eps > 0.f) || !std::isfinite(c.rms_eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("attention.layer_norm_rms_epsilon must be positive, got ", c.rms_eps));
  }
  if (!(c.rope_freq_base > 0.f) || !std::isfinite(c.rope_freq_base)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope.freq_base must be positive, got ", c.rope_freq_base));
  }
  if (!(c.rope_freq_scale > 0.f) || !std::isfinite(c.rope_freq_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope scaling factor must be positive, got 1/", c.rope_freq_scale));
  }
  return absl::OkStatus();
}

// RoPE scaling as llama.cpp reads it: freq_scale = 1 / rope.scaling.factor
// (or the older rope.scale_linear), whatever the type. Types other than none
// and linear (YaRN, ...) need extra terms this engine does not implement, so
// a file that really uses them is refused rather than silently misread.
absl::Status ReadRopeScaling(const gguf::File& file, const std::string& prefix, ModelConfig& c) {
  std::string type = "linear";
  if (absl::StatusOr<std::string> t = file.GetString(prefix + "rope.scaling.type"); t.ok()) {
    type = absl::AsciiStrToLower(*t);
  } else if (!absl::IsNotFound(t.status())) {
    return t.status();
  }
  absl::StatusOr<double> factor = OptionalFloat(file, prefix + "rope.scaling.factor", 0.0);
  if (!factor.ok()) return factor.status();
  double f = *factor;
  if (f == 0.0) {
    absl::StatusOr<double> lin = OptionalFloat(file, prefix + "rope.scale_linear", 0.0);
    if (!lin.ok()) return lin.status();
    f = *lin;
  }
  if (f == 0.0 || f == 1.0) {
    c.rope_freq_scale = 1.f;
    return absl::OkStatus();
  }
  if (type != "linear" && type != "none") {
    return absl::UnimplementedError(absl::StrCat(
        "RoPE scaling type '", type, "' (", prefix,
        "rope.scaling.type) is not supported; only none and linear are"));
  }
  if (!(f > 0.0) || !std::isfinite(f)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "rope.scaling.factor must be positive, got ", f));
  }
  c.rope_freq_scale = static_cast<float>(1.0 / f);
  return absl::OkStatus();
}

// Every tensor the forward pass reads, with the shape the config implies.
absl::Status CheckTensors(const gguf::File& file, const ModelConfig& c) {
  const int64_t d = c.n_embd, q = c.q_dim(), kv = c.kv_dim(), ff = c.n_ff;
  if (absl::Status s = CheckTensor(file, "token_embd.weight", {d, c.n_vocab}); !s.ok()) return s;
  if (absl::Status s = CheckTensor(file, "output_norm.weight", {d}); !s.ok()) return s;
  if (absl::Status s = CheckTensor(file, "output.weight", {d, c.n_vocab}, /*required=*/false);
      !s.ok()) {
    return s;
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    struct Expect {
      const char* name;
      std::vector<int64_t> ne;
    };
    std::vector<Expect> expect = {
        {"attn_norm.weight", {d}},          {"attn_q.weight", {d, q}},
        {"attn_k.weight", {d, kv}},         {"attn_v.weight", {d, kv}},
        {"attn_output.weight", {q, d}},     {"ffn_norm.weight", {d}},
        {"ffn_gate.weight", {d, ff}},       {"ffn_up.weight", {d, ff}},
        {"ffn_down.weight", {ff, d}},
    };
    if (c.sub_norms) {
      expect.push_back({"attn_sub_norm.weight", {q}});
      expect.push_back({"ffn_sub_norm.weight", {ff}});
    }
    for (const Expect& e : expect) {
      if (absl::Status s = CheckTensor(file, p + e.name, e.ne); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ArchName(Arch a) {
  switch (a) {
    case Arch::kBitnet: return "bitnet";
    case Arch::kBitnetB158: return "bitnet-b1.58";
    case Arch::kLlama: return "llama";
  }
  return "unknown";
}

absl::StatusOr<ModelConfig> ConfigFromGguf(const gguf::File& file) {
  ModelConfig c;
  absl::StatusOr<std::string> arch_name = file.GetString("general.architecture");
  if (!arch_name.ok()) {
    return Annotate(file, absl::InvalidArgumentError(absl::StrCat(
                              "cannot read general.architecture: ",
                              arch_name.status().message(), "; is this a model GGUF file?")));
  }
  c.arch_name = *arch_name;
  absl::StatusOr<Arch> arch = ArchFromName(c.arch_name);
  if (!arch.ok()) return Annotate(file, arch.status());
  c.arch = *arch;
  if (absl::StatusOr<std::string> n = file.GetString("general.name"); n.ok()) c.name = *n;

  const std::string a = c.arch_name + ".";
  auto read = [&]() -> absl::Status {
    absl::StatusOr<int64_t> v;
    if (v = RequiredInt(file, a + "context_length"); !v.ok()) return v.status();
    c.n_ctx_train = *v;
    if (v = RequiredInt(file, a + "embedding_length"); !v.ok()) return v.status();
    c.n_embd = *v;
    if (v = RequiredInt(file, a + "block_count"); !v.ok()) return v.status();
    c.n_layer = *v;
    if (v = RequiredInt(file, a + "feed_forward_length"); !v.ok()) return v.status();
    c.n_ff = *v;
    if (v = RequiredInt(file, a + "attention.head_count"); !v.ok()) return v.status();
    c.n_head = *v;
    if (v = OptionalInt(file, a + "attention.head_count_kv", c.n_head); !v.ok()) return v.status();
    c.n_head_kv = *v;
    const int64_t default_head_dim = c.n_head > 0 ? c.n_embd / c.n_head : 0;
    if (v = OptionalInt(file, a + "attention.key_length", default_head_dim); !v.ok()) {
      return v.status();
    }
    c.head_dim = *v;
    if (v = OptionalInt(file, a + "attention.value_length", c.head_dim); !v.ok()) {
      return v.status();
    }
    if (*v != c.head_dim) {
      return absl::UnimplementedError(absl::StrCat("attention.value_length (", *v,
                                                   ") differs from key_length (", c.head_dim,
                                                   "); such models are not supported"));
    }
    if (v = OptionalInt(file, a + "rope.dimension_count", c.head_dim); !v.ok()) return v.status();
    c.n_rot = *v;

    // llama.cpp requires the RMS epsilon for these architectures.
    absl::StatusOr<double> eps = file.GetFloat(a + "attention.layer_norm_rms_epsilon");
    if (absl::IsNotFound(eps.status())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "missing required metadata key '", a, "attention.layer_norm_rms_epsilon'"));
    }
    if (!eps.ok()) return eps.status();
    c.rms_eps = static_cast<float>(*eps);
    absl::StatusOr<double> base = OptionalFloat(file, a + "rope.freq_base", 10000.0);
    if (!base.ok()) return base.status();
    c.rope_freq_base = static_cast<float>(*base);
    return ReadRopeScaling(file, a, c);
  };
  if (absl::Status s = read(); !s.ok()) return Annotate(file, s);

  // Vocabulary size: the arch key, else the tokenizer's token count, else the
  // embedding's row count (checked against each other below).
  const gguf::TensorInfo* embd = file.FindTensor("token_embd.weight");
  const int64_t tokenizer_count = ArrayLength(file, "tokenizer.ggml.tokens");
  absl::StatusOr<int64_t> vocab = OptionalInt(file, a + "vocab_size", -1);
  if (!vocab.ok()) return Annotate(file, vocab.status());
  c.n_vocab = *vocab > 0 ? *vocab
              : tokenizer_count > 0 ? tokenizer_count
              : (embd != nullptr && embd->ne.size() >= 2) ? embd->ne[1]
                                                          : 0;
  if (tokenizer_count > 0 && tokenizer_count != c.n_vocab) {
    return Annotate(file, absl::InvalidArgumentError(absl::StrCat(
                              "tokenizer has ", tokenizer_count, " tokens but the model's vocab_size is ",
                              c.n_vocab)));
  }

  switch (c.arch) {
    case Arch::kBitnet:
      // llama.cpp's `bitnet` (1bitLLM/bitnet_b1_58-*): NEOX RoPE, SiLU unless
      // the file says otherwise.
      c.rope_type = RopeType::kNeox;
      c.activation = Activation::kSilu;
      c.sub_norms = true;
      break;
    case Arch::kBitnetB158:
      // bitnet.cpp's `bitnet-25` / `bitnet-b1.58` (2B-4T): relu² FFN. RoPE is
      // NEOX: the fork's converter (utils/convert-ms-to-gguf-bitnet.py) leaves
      // the Hugging Face q/k rows unpermuted (its permute calls are commented
      // out), and the HF model rotates halves (rotate_half), which is ggml's
      // NEOX mode; the fork lists this arch with the NEOX RoPE archs.
      c.rope_type = RopeType::kNeox;
      c.activation = Activation::kRelu2;
      c.sub_norms = true;
      break;
    case Arch::kLlama:
      // llama.cpp's converter permutes q/k for llama so adjacent pairs rotate.
      c.rope_type = RopeType::kNorm;
      c.activation = Activation::kSilu;
      c.sub_norms = false;
      break;
  }
  if (absl::StatusOr<std::string> act = file.GetString(a + "hidden_activation"); act.ok()) {
    absl::StatusOr<Activation> parsed = ActivationFromName(*act);
    if (!parsed.ok()) {
      return Annotate(file, absl::InvalidArgumentError(absl::StrCat(
                                a, "hidden_activation: ", parsed.status().message())));
    }
    c.activation = *parsed;
  } else if (!absl::IsNotFound(act.status())) {
    return Annotate(file, act.status());
  }
  c.tied_output = file.FindTensor("output.weight") == nullptr;

  if (absl::Status s = CheckHyperparameters(c); !s.ok()) return Annotate(file, s);
  if (absl::Status s = CheckTensors(file, c); !s.ok()) return Annotate(file, s);
  return c;
}

}  // namespace bitnet
