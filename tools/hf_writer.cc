// Hugging Face test checkpoints and tokenizer files (layouts: hf_writer.h).
#include "tools/hf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/ggml_types.h"
#include "model/hf_tokenizer.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"

namespace bitnet::tools {
namespace {

using Json = nlohmann::json;
using safetensors::Dtype;

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

bool IsSpecial(const TokenizerData& d, size_t id) {
  return id < d.types.size() &&
         (d.types[id] == TokenType::kControl || d.types[id] == TokenType::kUserDefined);
}

// Float values encoded as `dtype` (F32 / F16 / BF16), little-endian.
std::vector<uint8_t> Encode(const std::vector<float>& v, Dtype dtype) {
  std::vector<uint8_t> out;
  if (dtype == Dtype::kF32) {
    out.resize(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  out.resize(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = dtype == Dtype::kF16 ? ggml::FloatToHalf(v[i]) : ggml::FloatToBf16(v[i]);
    out[2 * i] = static_cast<uint8_t>(h);
    out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  return out;
}

// The value `dtype` stores for f.
float RoundTo(float f, Dtype dtype) {
  if (dtype == Dtype::kF16) return ggml::HalfToFloat(ggml::FloatToHalf(f));
  if (dtype == Dtype::kBF16) return ggml::Bf16ToFloat(ggml::FloatToBf16(f));
  return f;
}

// Master weights whose absmean quantization is exact (see HfTestModelSpec):
// returns the values and fills the codes; the scale is `m`.
std::vector<float> ExactMasters(int64_t n, float m, std::mt19937_64& rng, std::vector<int8_t>* codes) {
  std::uniform_int_distribution<int> pick(1, 255);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i + 1 < n; i += 2) {
    int j = pick(rng);
    while (j == 64 || j == 192) j = pick(rng);  // W/m = 0.5 or 1.5: rounding ties
    w[i] = m * static_cast<float>(j) / 128.f * (sign(rng) ? 1.f : -1.f);
    w[i + 1] = m * static_cast<float>(256 - j) / 128.f * (sign(rng) ? 1.f : -1.f);
  }
  std::shuffle(w.begin(), w.end(), rng);
  codes->resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    const float q = std::nearbyint(w[i] / m);
    (*codes)[i] = static_cast<int8_t>(std::clamp(q, -1.f, 1.f));
  }
  return w;
}

std::vector<float> Gaussian(int64_t n, float mean, float sd, Dtype dtype, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(mean, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = RoundTo(normal(rng), dtype);
  return v;
}

struct Family {
  const char* architecture;
  const char* model_type;
  const char* hidden_act;
  const char* attn_sub_norm;  // nullptr: no sub-norms
  const char* ffn_sub_norm;
  bool packed;
};

Family FamilyOf(HfFamily f) {
  switch (f) {
    case HfFamily::kBitNetPacked:
      return {"BitNetForCausalLM", "bitnet", "relu2", "self_attn.attn_sub_norm", "mlp.ffn_sub_norm", true};
    case HfFamily::kBitNetBf16:
      return {"BitNetForCausalLM", "bitnet", "relu2", "self_attn.attn_sub_norm", "mlp.ffn_sub_norm", false};
    case HfFamily::kBitnet1bitLLM:
      return {"BitnetForCausalLM", "llama", "silu", "self_attn.inner_attn_ln", "mlp.ffn_layernorm", false};
    case HfFamily::kLlamaPacked:
      return {"LlamaForCausalLM", "llama", "silu", nullptr, nullptr, true};
  }
  return {};
}

Json ConfigJson(const HfTestModelSpec& s, const Family& fam, const TokenizerData* tok) {
  Json c = {
      {"architectures", {fam.architecture}},
      {"model_type", fam.model_type},
      {"hidden_act", fam.hidden_act},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate},
      {"num_attention_heads", s.n_head},
      {"num_key_value_heads", s.n_head_kv},
      {"num_hidden_layers", s.n_layer},
      {"max_position_embeddings", s.max_positions},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", s.rope_theta},
      {"tie_word_embeddings", s.tied},
      {"vocab_size", s.n_vocab},
      {"attention_bias", false},
      {"torch_dtype", s.family == HfFamily::kBitnet1bitLLM && s.master_dtype == "F16" ? "float16"
                      : s.family == HfFamily::kBitnet1bitLLM && s.master_dtype == "F32" ? "float32"
                                                                                          : "bfloat16"},
  };
  if (tok != nullptr) {
    if (tok->bos >= 0) c["bos_token_id"] = tok->bos;
    if (tok->eos >= 0) c["eos_token_id"] = tok->eos;
  }
  if (fam.packed) {
    c["quantization_config"] = {{"quant_method", "bitnet"},
                                {"linear_class", s.linear_class},
                                {"quantization_mode", "offline"}};
  } else if (s.family == HfFamily::kBitNetBf16) {
    c["quantization_config"] = {{"quant_method", "bitnet"},
                                {"linear_class", "autobitlinear"},
                                {"quantization_mode", "online"}};
  } else {
    c["input_bits"] = 8;
    c["weight_bits"] = 1;
  }
  return c;
}

}  // namespace

absl::StatusOr<std::string> HfTokenizerJson(const TokenizerData& data) {
  if (!data.model.empty() && data.model != "gpt2") {
    return absl::UnimplementedError("HfTokenizerJson writes byte-level BPE (gpt2) tokenizers only");
  }
  Json added = Json::array();
  Json vocab = Json::object();
  for (size_t id = 0; id < data.tokens.size(); ++id) {
    if (IsSpecial(data, id)) {
      added.push_back({{"id", id},
                       {"content", data.tokens[id]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"special", data.types[id] == TokenType::kControl}});
    } else {
      vocab[data.tokens[id]] = id;
    }
  }
  Json pre;
  const bool llama3 = data.pre == "llama-bpe" || data.pre == "llama3";
  if (llama3) {
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Split"},
              {"pattern", {{"Regex", std::string(kHfLlama3SplitRegex)}}},
              {"behavior", "Isolated"},
              {"invert", false}},
             {{"type", "ByteLevel"},
              {"add_prefix_space", false},
              {"trim_offsets", true},
              {"use_regex", false}}}}};
  } else if (data.pre == "gpt-2") {
    pre = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  } else {
    return absl::UnimplementedError(absl::StrCat("no tokenizer.json form for pre-tokenizer '", data.pre, "'"));
  }
  Json post = nullptr;
  if (data.add_bos && data.bos >= 0) {
    const std::string bos = data.tokens[data.bos];
    post = {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
                        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"pair", Json::array()},
            {"special_tokens", {{bos, {{"id", bos}, {"ids", {data.bos}}, {"tokens", {bos}}}}}}};
  }
  Json j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", pre},
            {"post_processor", post},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"ignore_merges", llama3},
              {"vocab", vocab},
              {"merges", data.merges}}}};
  return j.dump();
}

std::string HfTokenizerConfigJson(const TokenizerData& data, const std::string& chat_template) {
  Json c = Json::object();
  if (data.bos >= 0) c["bos_token"] = data.tokens[data.bos];
  if (data.eos >= 0) c["eos_token"] = data.tokens[data.eos];
  c["add_bos_token"] = data.add_bos;
  c["add_eos_token"] = data.add_eos;
  c["clean_up_tokenization_spaces"] = true;
  c["model_max_length"] = 4096;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  if (!chat_template.empty()) c["chat_template"] = chat_template;
  return c.dump(2);
}

std::vector<uint8_t> PackHfTernary(const std::vector<int8_t>& codes, int64_t rows, int64_t cols) {
  const int64_t p = rows / 4;
  std::vector<uint8_t> packed(static_cast<size_t>(p * cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t lane = r / p, pr = r % p;
    for (int64_t c = 0; c < cols; ++c) {
      const uint8_t field = static_cast<uint8_t>(codes[r * cols + c] + 1);
      packed[pr * cols + c] |= static_cast<uint8_t>(field << (2 * lane));
    }
  }
  return packed;
}

absl::StatusOr<HfTestWeights> WriteHfTestModel(const std::string& dir, const HfTestModelSpec& s,
                                               const TokenizerData* tokenizer) {
  const Family fam = FamilyOf(s.family);
  if (s.hidden % s.n_head != 0 || s.n_head % s.n_head_kv != 0) {
    return absl::InvalidArgumentError("hidden must divide into heads, heads into kv heads");
  }
  const int64_t hd = s.hidden / s.n_head, q = s.n_head * hd, kv = s.n_head_kv * hd;
  if (q % 4 || kv % 4 || s.intermediate % 4 || s.hidden % 4) {
    return absl::InvalidArgumentError("packed rows must be multiples of 4");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));

  const Dtype float_dtype = s.family == HfFamily::kBitnet1bitLLM
                                ? (s.master_dtype == "F16" ? Dtype::kF16
                                   : s.master_dtype == "F32" ? Dtype::kF32 : Dtype::kBF16)
                                : Dtype::kBF16;
  std::mt19937_64 rng(s.seed);
  std::uniform_int_distribution<int> exponent(1, 5);
  HfTestWeights w;
  std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, std::pair<Dtype, std::vector<uint8_t>>>>> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, Dtype dtype, std::vector<uint8_t> bytes) {
    tensors.push_back({name, {std::move(shape), {dtype, std::move(bytes)}}});
  };
  auto add_float = [&](const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
    w.floats[name] = v;
    add(name, std::move(shape), float_dtype, Encode(v, float_dtype));
  };
  auto add_linear = [&](const std::string& base, int64_t rows, int64_t cols) {
    const float m = std::ldexp(1.f, -exponent(rng));
    std::vector<int8_t> codes;
    std::vector<float> masters = ExactMasters(rows * cols, m, rng, &codes);
    w.codes[base] = codes;
    w.scales[base] = m;
    if (fam.packed) {
      add(base + ".weight", {rows / 4, cols}, Dtype::kU8, PackHfTernary(codes, rows, cols));
      const float ws = s.linear_class == "autobitlinear" ? m : 1.f / m;
      add(base + ".weight_scale", {1}, Dtype::kBF16, Encode({ws}, Dtype::kBF16));
    } else {
      add(base + ".weight", {rows, cols}, float_dtype, Encode(masters, float_dtype));
    }
  };

  add_float("model.embed_tokens.weight", {s.n_vocab, s.hidden},
            Gaussian(s.n_vocab * s.hidden, 0.f, 1.f, float_dtype, rng));
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    add_float(p + "input_layernorm.weight", {s.hidden}, Gaussian(s.hidden, 1.f, 0.1f, float_dtype, rng));
    add_linear(p + "self_attn.q_proj", q, s.hidden);
    add_linear(p + "self_attn.k_proj", kv, s.hidden);
    add_linear(p + "self_attn.v_proj", kv, s.hidden);
    if (fam.attn_sub_norm) {
      add_float(p + fam.attn_sub_norm + ".weight", {q}, Gaussian(q, 1.f, 0.1f, float_dtype, rng));
    }
    add_linear(p + "self_attn.o_proj", s.hidden, q);
    add_float(p + "post_attention_layernorm.weight", {s.hidden},
              Gaussian(s.hidden, 1.f, 0.1f, float_dtype, rng));
    add_linear(p + "mlp.gate_proj", s.intermediate, s.hidden);
    add_linear(p + "mlp.up_proj", s.intermediate, s.hidden);
    if (fam.ffn_sub_norm) {
      add_float(p + fam.ffn_sub_norm + ".weight", {s.intermediate},
                Gaussian(s.intermediate, 1.f, 0.1f, float_dtype, rng));
    }
    add_linear(p + "mlp.down_proj", s.hidden, s.intermediate);
  }
  add_float("model.norm.weight", {s.hidden}, Gaussian(s.hidden, 1.f, 0.1f, float_dtype, rng));
  if (!s.tied) {
    add_float("lm_head.weight", {s.n_vocab, s.hidden}, Gaussian(s.n_vocab * s.hidden, 0.f, 1.f, float_dtype, rng));
  }

  // Shards: consecutive runs of tensors, like save_pretrained's size-based split.
  const int shards = std::max(1, s.shards);
  std::vector<safetensors::Writer> writers(static_cast<size_t>(shards));
  std::map<std::string, std::string> weight_map;
  auto shard_name = [&](int i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", i + 1, shards);
    return shards == 1 ? std::string("model.safetensors") : std::string(buf);
  };
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int shard = static_cast<int>(i * static_cast<size_t>(shards) / tensors.size());
    auto& [name, rest] = tensors[i];
    if (absl::Status st = writers[shard].AddTensor(name, rest.second.first, rest.first,
                                                   std::move(rest.second.second));
        !st.ok()) {
      return st;
    }
    weight_map[name] = shard_name(shard);
  }
  uint64_t total = 0;
  for (int i = 0; i < shards; ++i) {
    writers[i].SetMetadata("format", "pt");
    total += writers[i].data_bytes();
    if (absl::Status st = writers[i].WriteFile(dir + "/" + shard_name(i)); !st.ok()) return st;
  }
  if (shards > 1) {
    if (absl::Status st = WriteText(dir + "/model.safetensors.index.json",
                                    safetensors::IndexJson(weight_map, total));
        !st.ok()) {
      return st;
    }
  }
  if (absl::Status st = WriteText(dir + "/config.json", ConfigJson(s, fam, tokenizer).dump(2)); !st.ok()) {
    return st;
  }
  if (tokenizer != nullptr) {
    absl::StatusOr<std::string> tj = HfTokenizerJson(*tokenizer);
    if (!tj.ok()) return tj.status();
    if (absl::Status st = WriteText(dir + "/tokenizer.json", *tj); !st.ok()) return st;
    if (absl::Status st = WriteText(dir + "/tokenizer_config.json", HfTokenizerConfigJson(*tokenizer));
        !st.ok()) {
      return st;
    }
  }
  return w;
}

}  // namespace bitnet::tools
