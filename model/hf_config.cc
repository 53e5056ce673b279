// config.json -> HfConfig / ModelConfig.
#include "model/hf_config.h"

#include <cmath>
#include <numbers>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "model/hf_tokenizer.h"
#include "nlohmann/json.hpp"

namespace bitnet {
namespace {

using Json = nlohmann::json;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", what));
}

// A positive integer field; `fallback` (if >= 0) when absent.
absl::StatusOr<int64_t> Int(const Json& c, const char* key, int64_t fallback = -1) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) {
    if (fallback >= 0) return fallback;
    return Bad(absl::StrCat("missing required field \"", key, "\""));
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (int64_t{1} << 40)) {
    return Bad(absl::StrCat("\"", key, "\" must be a positive integer"));
  }
  return it->get<int64_t>();
}

absl::StatusOr<double> Float(const Json& c, const char* key, double fallback) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) return fallback;
  if (!it->is_number()) return Bad(absl::StrCat("\"", key, "\" must be a number"));
  const double v = it->get<double>();
  if (!(v > 0) || !std::isfinite(v)) return Bad(absl::StrCat("\"", key, "\" must be positive"));
  return v;
}

std::string Str(const Json& c, const char* key) {
  auto it = c.find(key);
  return it != c.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// bos/eos may be an integer or a list (generation configs list several EOS).
int64_t FirstId(const Json& c, const char* key) {
  auto it = c.find(key);
  if (it == c.end()) return -1;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_array() && !it->empty() && it->front().is_number_integer()) {
    return it->front().get<int64_t>();
  }
  return -1;
}

// Llama 3.1 frequency factors, as llama.cpp's converter computes them.
std::vector<float> Llama3RopeFactors(const Json& rs, double base, int64_t dim) {
  auto get = [&](const char* key, double fallback) {
    auto it = rs.find(key);
    return it != rs.end() && it->is_number() ? it->get<double>() : fallback;
  };
  const double factor = get("factor", 8.0);
  const double low_freq_factor = get("low_freq_factor", 1.0);
  const double high_freq_factor = get("high_freq_factor", 4.0);
  const double old_context_len = get("original_max_position_embeddings", 8192.0);
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(static_cast<float>(base),
                                       static_cast<float>(i) / static_cast<float>(dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    if (wavelen < high_freq_wavelen) {
      out.push_back(1.f);
    } else if (wavelen > low_freq_wavelen) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (old_context_len / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      out.push_back(static_cast<float>(1 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

absl::Status ReadRopeScaling(const Json& c, HfConfig& h) {
  auto it = c.find("rope_scaling");
  if (it == c.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return Bad("\"rope_scaling\" must be an object or null");
  std::string type = Str(*it, "rope_type");
  if (type.empty()) type = Str(*it, "type");
  type = absl::AsciiStrToLower(type);
  if (type == "llama3") {
    h.rope_freqs = Llama3RopeFactors(*it, h.config.rope_freq_base, h.config.n_rot);
    return absl::OkStatus();
  }
  if (type == "linear" || type == "default" || type.empty()) {
    absl::StatusOr<double> f = Float(*it, "factor", 1.0);
    if (!f.ok()) return f.status();
    h.config.rope_freq_scale = static_cast<float>(1.0 / *f);
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat(
      "config.json: rope_scaling type '", type,
      "' is not supported (only linear and llama3 are); such models cannot run here"));
}

}  // namespace

absl::StatusOr<HfConfig> ParseHfConfig(std::string_view config_json) {
  Json c = Json::parse(config_json.begin(), config_json.end(), nullptr, /*allow_exceptions=*/false);
  if (c.is_discarded() || !c.is_object()) return Bad("not a JSON object");
  HfConfig h;
  auto archs = c.find("architectures");
  if (archs == c.end() || !archs->is_array() || archs->empty() || !archs->front().is_string()) {
    return Bad("missing \"architectures\"; is this a Hugging Face model directory?");
  }
  h.architecture = archs->front().get<std::string>();
  ModelConfig& m = h.config;
  if (h.architecture == "BitNetForCausalLM") {
    h.arch = HfArchitecture::kBitNetB158;
    m.arch = Arch::kBitnetB158;
    m.arch_name = "bitnet-b1.58";
    m.activation = Activation::kRelu2;
    m.rope_type = RopeType::kNeox;  // no q/k permutation (bitnet.cpp's converter does none)
    m.sub_norms = true;
  } else if (h.architecture == "BitnetForCausalLM") {
    h.arch = HfArchitecture::kBitnet;
    m.arch = Arch::kBitnet;
    m.arch_name = "bitnet";
    m.activation = Activation::kSilu;
    m.rope_type = RopeType::kNeox;
    m.sub_norms = true;
  } else if (h.architecture == "LlamaForCausalLM") {
    h.arch = HfArchitecture::kLlama;
    m.arch = Arch::kLlama;
    m.arch_name = "llama";
    m.activation = Activation::kSilu;
    m.rope_type = RopeType::kNorm;  // after llama.cpp's q/k row permutation
    m.sub_norms = false;
  } else {
    return absl::UnimplementedError(absl::StrCat(
        "config.json: architecture '", h.architecture,
        "' is not supported; supported: BitNetForCausalLM, BitnetForCausalLM, LlamaForCausalLM"));
  }

  const std::string act = absl::AsciiStrToLower(Str(c, "hidden_act"));
  if (act == "relu2" || act == "relu_squared" || act == "squared_relu") {
    m.activation = Activation::kRelu2;
  } else if (act == "silu" || act == "swish") {
    m.activation = Activation::kSilu;
  } else if (!act.empty()) {
    return absl::UnimplementedError(absl::StrCat("config.json: hidden_act '", act,
                                                 "' is not supported (silu or relu2)"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    auto it = c.find(key);
    if (it != c.end() && it->is_boolean() && it->get<bool>()) {
      return absl::UnimplementedError(absl::StrCat("config.json: ", key,
                                                   " = true; linear biases are not supported"));
    }
  }

  auto read = [&]() -> absl::Status {
    absl::StatusOr<int64_t> v;
    if (v = Int(c, "hidden_size"); !v.ok()) return v.status();
    m.n_embd = *v;
    if (v = Int(c, "intermediate_size"); !v.ok()) return v.status();
    m.n_ff = *v;
    if (v = Int(c, "num_hidden_layers"); !v.ok()) return v.status();
    m.n_layer = *v;
    if (v = Int(c, "num_attention_heads"); !v.ok()) return v.status();
    m.n_head = *v;
    if (v = Int(c, "num_key_value_heads", m.n_head); !v.ok()) return v.status();
    m.n_head_kv = *v;
    if (v = Int(c, "vocab_size"); !v.ok()) return v.status();
    m.n_vocab = *v;
    if (v = Int(c, "max_position_embeddings", 2048); !v.ok()) return v.status();
    m.n_ctx_train = *v;
    if (m.n_embd % m.n_head != 0 && c.find("head_dim") == c.end()) {
      return Bad("hidden_size is not a multiple of num_attention_heads and head_dim is not given");
    }
    if (v = Int(c, "head_dim", m.n_embd / m.n_head); !v.ok()) return v.status();
    m.head_dim = *v;
    m.n_rot = m.head_dim;
    if (m.n_head % m.n_head_kv != 0) {
      return Bad("num_attention_heads must be a multiple of num_key_value_heads");
    }
    const double default_eps = h.arch == HfArchitecture::kLlama ? 1e-6 : 1e-5;
    absl::StatusOr<double> f = Float(c, "rms_norm_eps", default_eps);
    if (!f.ok()) return f.status();
    m.rms_eps = static_cast<float>(*f);
    f = Float(c, "rope_theta", h.arch == HfArchitecture::kBitNetB158 ? 500000.0 : 10000.0);
    if (!f.ok()) return f.status();
    m.rope_freq_base = static_cast<float>(*f);
    return ReadRopeScaling(c, h);
  };
  if (absl::Status s = read(); !s.ok()) return s;

  if (auto it = c.find("tie_word_embeddings"); it != c.end() && it->is_boolean()) {
    h.tie_word_embeddings_given = true;
    m.tied_output = it->get<bool>();
  }
  if (auto it = c.find("quantization_config"); it != c.end() && it->is_object()) {
    h.bitnet_quantization = absl::AsciiStrToLower(Str(*it, "quant_method")) == "bitnet";
    if (absl::AsciiStrToLower(Str(*it, "linear_class")) == "autobitlinear") {
      h.packed_scale = PackedScale::kDirect;
    }
  }
  h.torch_dtype = Str(c, "torch_dtype");
  h.bos_token_id = FirstId(c, "bos_token_id");
  h.eos_token_id = FirstId(c, "eos_token_id");
  auto name_it = c.find("_name_or_path");
  if (name_it != c.end() && name_it->is_string()) m.name = name_it->get<std::string>();
  return h;
}

absl::StatusOr<HfConfig> LoadHfConfig(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadTextFile(dir + "/config.json");
  if (!text.ok()) {
    return absl::NotFoundError(
        absl::StrCat(dir, " has no config.json; point at a Hugging Face model directory"));
  }
  absl::StatusOr<HfConfig> h = ParseHfConfig(*text);
  if (!h.ok()) return absl::Status(h.status().code(), absl::StrCat(dir, "/", h.status().message()));
  if (h->config.name.empty()) {
    const size_t slash = dir.find_last_not_of('/');
    const std::string trimmed = dir.substr(0, slash == std::string::npos ? 0 : slash + 1);
    h->config.name = trimmed.substr(trimmed.find_last_of('/') + 1);
  }
  return h;
}

}  // namespace bitnet
