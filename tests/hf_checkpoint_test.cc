// Hugging Face checkpoints: config.json parsing, the packed layout checked
// against transformers' published example, every checkpoint family, and
// issue item 2: the same random weights written as HF packed safetensors, HF
// bf16 safetensors and GGUF (I2_S, TQ2_0) load to identical runtime weights
// and give identical logits.
#include "model/hf_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/stage_engine.h"
#include "gtest/gtest.h"
#include "kernels/ternary_matrix.h"
#include "model/gguf.h"
#include "model/hf_config.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"
#include "tools/hf_writer.h"

namespace bitnet {
namespace {

using tools::HfFamily;
using tools::HfTestModelSpec;
using tools::HfTestWeights;

// microsoft/bitnet-b1.58-2B-4T's config.json (hyperparameters as published).
constexpr char k2B4TConfig[] = R"({
  "architectures": ["BitNetForCausalLM"],
  "bos_token_id": 128000, "eos_token_id": 128001,
  "hidden_act": "relu2", "hidden_size": 2560, "initializer_range": 0.02,
  "intermediate_size": 6912, "max_position_embeddings": 4096, "model_type": "bitnet",
  "rms_norm_eps": 1e-05, "num_attention_heads": 20, "num_hidden_layers": 30,
  "num_key_value_heads": 5, "rope_theta": 500000.0, "tie_word_embeddings": true,
  "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256,
  "quantization_config": {"quant_method": "bitnet", "linear_class": "bitlinear",
                          "quantization_mode": "offline"}
})";

TEST(HfConfigTest, Parses2B4T) {
  absl::StatusOr<HfConfig> h = ParseHfConfig(k2B4TConfig);
  ASSERT_TRUE(h.ok()) << h.status();
  const ModelConfig& c = h->config;
  EXPECT_EQ(h->arch, HfArchitecture::kBitNetB158);
  EXPECT_EQ(c.arch, Arch::kBitnetB158);
  EXPECT_EQ(c.arch_name, "bitnet-b1.58");
  EXPECT_EQ(c.n_embd, 2560);
  EXPECT_EQ(c.n_layer, 30);
  EXPECT_EQ(c.n_head, 20);
  EXPECT_EQ(c.n_head_kv, 5);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.n_ff, 6912);
  EXPECT_EQ(c.n_vocab, 128256);
  EXPECT_EQ(c.n_ctx_train, 4096);
  EXPECT_EQ(c.rope_freq_base, 500000.f);
  EXPECT_EQ(c.rope_type, RopeType::kNeox);
  EXPECT_EQ(c.activation, Activation::kRelu2);
  EXPECT_TRUE(c.sub_norms);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(h->packed_scale, PackedScale::kInverse);
  EXPECT_TRUE(h->bitnet_quantization);
  EXPECT_EQ(h->bos_token_id, 128000);
}

TEST(HfConfigTest, ArchitecturesAndOptions) {
  nlohmann::json base = nlohmann::json::parse(k2B4TConfig);
  auto parse = [](const nlohmann::json& j) { return ParseHfConfig(j.dump()); };

  nlohmann::json j = base;
  j["quantization_config"]["linear_class"] = "autobitlinear";
  EXPECT_EQ(parse(j)->packed_scale, PackedScale::kDirect);

  j = base;
  j["architectures"] = {"BitnetForCausalLM"};
  j["hidden_act"] = "silu";
  absl::StatusOr<HfConfig> h = parse(j);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->config.arch_name, "bitnet");
  EXPECT_EQ(h->config.activation, Activation::kSilu);
  EXPECT_EQ(h->config.rope_type, RopeType::kNeox);

  j = base;
  j["architectures"] = {"LlamaForCausalLM"};
  j["hidden_act"] = "silu";
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  h = parse(j);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->config.arch_name, "llama");
  EXPECT_EQ(h->config.rope_type, RopeType::kNorm);
  EXPECT_FALSE(h->config.sub_norms);
  ASSERT_EQ(h->rope_freqs.size(), 64u);
  EXPECT_EQ(h->rope_freqs.front(), 1.f);  // high frequencies are not scaled
  EXPECT_EQ(h->rope_freqs.back(), 8.f);   // the lowest are scaled by the factor

  j = base;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(parse(j)->config.rope_freq_scale, 0.5f);

  j = base;
  j["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_EQ(parse(j).status().code(), absl::StatusCode::kUnimplemented);
  j = base;
  j.erase("hidden_size");
  EXPECT_FALSE(parse(j).ok());
  j = base;
  j["num_key_value_heads"] = 3;
  EXPECT_FALSE(parse(j).ok());
  j = base;
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_EQ(parse(j).status().code(), absl::StatusCode::kUnimplemented);
  j = base;
  j["attention_bias"] = true;
  EXPECT_FALSE(parse(j).ok());
  EXPECT_FALSE(ParseHfConfig("not json").ok());
}

// transformers' unpack_weights docstring: the packed uint8 tensor
// [[0b10100001, 0b00011000], [0b10010000, 0b00001010]] unpacks to this 8 x 2
// ternary matrix (bits 2i..2i+1 of row r are row i * rows/4 + r).
TEST(HfPackingTest, MatchesTransformersExample) {
  const std::vector<int8_t> unpacked = {0, -1, -1, 1, -1, 1, -1, 1, 1, 0, 0, -1, 1, -1, 1, -1};
  EXPECT_EQ(tools::PackHfTernary(unpacked, 8, 2),
            (std::vector<uint8_t>{0b10100001, 0b00011000, 0b10010000, 0b00001010}));
}

// A 64-token byte-level vocabulary for the test models: 60 printable ASCII
// characters and four LLaMA-3 control tokens.
TokenizerData TinyVocab() {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "llama-bpe";
  for (int b = 0x21; b < 0x21 + 60; ++b) {
    d.tokens.push_back(std::string(1, static_cast<char>(b)));
    d.types.push_back(TokenType::kNormal);
  }
  for (const char* s : {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>"}) {
    d.tokens.push_back(s);
    d.types.push_back(TokenType::kControl);
  }
  d.bos = 60;
  d.eos = 61;
  d.add_bos = true;
  return d;
}

HfTestModelSpec Spec(HfFamily family, uint64_t seed = 11) {
  HfTestModelSpec s;
  s.family = family;
  s.seed = seed;
  return s;
}

std::shared_ptr<const ModelWeights> Load(const std::string& dir, int begin = 0, int end = -1) {
  absl::StatusOr<std::shared_ptr<const ModelWeights>> w = LoadHfWeights(dir, begin, end);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *w : nullptr;
}

float Value(const Linear& lin, int64_t r, int64_t c) {
  const auto& m = std::get<kernels::TernaryMatrix>(lin.w);
  return static_cast<float>(m.code(r, c)) * m.scale(r, c / m.scale_block) * lin.out_scale;
}

// Element-wise equality of two runtime models (ternary values code * scale,
// floats bit for bit).
void ExpectSameWeights(const ModelWeights& a, const ModelWeights& b) {
  ASSERT_EQ(a.layers.size(), b.layers.size());
  ASSERT_TRUE(a.token_embd && b.token_embd);
  EXPECT_EQ(a.token_embd->ToFloat(), b.token_embd->ToFloat());
  EXPECT_EQ(a.token_embd->act_rounding, b.token_embd->act_rounding);
  EXPECT_EQ(a.output_norm, b.output_norm);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    const LayerWeights& x = a.layers[l];
    const LayerWeights& y = b.layers[l];
    EXPECT_EQ(x.attn_norm, y.attn_norm);
    EXPECT_EQ(x.ffn_norm, y.ffn_norm);
    EXPECT_EQ(x.attn_sub_norm, y.attn_sub_norm);
    EXPECT_EQ(x.ffn_sub_norm, y.ffn_sub_norm);
    for (auto [p, q] : {std::pair{&x.wq, &y.wq}, {&x.wk, &y.wk}, {&x.wv, &y.wv}, {&x.wo, &y.wo},
                        {&x.w_gate, &y.w_gate}, {&x.w_up, &y.w_up}, {&x.w_down, &y.w_down}}) {
      ASSERT_TRUE(std::holds_alternative<kernels::TernaryMatrix>(p->w));
      ASSERT_TRUE(std::holds_alternative<kernels::TernaryMatrix>(q->w));
      ASSERT_EQ(p->rows(), q->rows());
      ASSERT_EQ(p->cols(), q->cols());
      int diffs = 0;
      for (int64_t r = 0; r < p->rows(); ++r) {
        for (int64_t c = 0; c < p->cols(); ++c) diffs += Value(*p, r, c) != Value(*q, r, c);
      }
      EXPECT_EQ(diffs, 0) << "layer " << l;
    }
  }
}

// The runtime weights hold exactly the codes and scales the writer drew.
void ExpectWeightsAre(const ModelWeights& w, const HfTestWeights& ref, bool llama_permuted = false) {
  const ModelConfig& c = w.config;
  const char* names[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                         "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const int64_t l = w.layer_begin + static_cast<int64_t>(i);
    const LayerWeights& lw = w.layers[i];
    const Linear* lins[] = {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.w_gate, &lw.w_up, &lw.w_down};
    for (int k = 0; k < 7; ++k) {
      const std::string base = "model.layers." + std::to_string(l) + "." + names[k];
      const std::vector<int8_t>& codes = ref.codes.at(base);
      const float scale = ref.scales.at(base);
      const int64_t rows = lins[k]->rows(), cols = lins[k]->cols();
      const int64_t heads = k == 0 ? c.n_head : k == 1 ? c.n_head_kv : 0;
      int diffs = 0;
      for (int64_t r = 0; r < rows; ++r) {
        int64_t src = r;
        if (llama_permuted && heads > 0) {
          const int64_t hd = rows / heads, half = hd / 2, h = r / hd, within = r % hd;
          src = h * hd + (within % 2) * half + within / 2;
        }
        for (int64_t col = 0; col < cols; ++col) {
          diffs += Value(*lins[k], r, col) != codes[src * cols + col] * scale;
        }
      }
      EXPECT_EQ(diffs, 0) << base;
    }
  }
}

std::vector<float> Logits(std::shared_ptr<const ModelWeights> w, const std::vector<TokenId>& tokens) {
  absl::StatusOr<std::unique_ptr<StageEngine>> e = StageEngine::Create(std::move(w), EngineOptions{});
  EXPECT_TRUE(e.ok()) << e.status();
  if (!e.ok()) return {};
  std::vector<BatchRow> rows;
  for (size_t i = 0; i < tokens.size(); ++i) {
    rows.push_back({0, static_cast<int32_t>(i), tokens[i], true});
  }
  std::vector<float> hidden, logits;
  EXPECT_TRUE((*e)->Forward(rows, hidden).ok());
  EXPECT_TRUE((*e)->Logits(rows, hidden, logits).ok());
  return logits;
}

// GGUF written directly from the drawn weights (independently of the HF
// converter): ternary layers quantized to `type`, floats as BF16 (what the
// HF files store), the bitnet-b1.58 keys.
std::vector<uint8_t> GgufFromWeights(const HfTestModelSpec& s, const HfTestWeights& ref, ggml::Type type) {
  gguf::Writer w;
  const std::string a = "bitnet-b1.58.";
  w.SetValue("general.architecture", gguf::Value::Str("bitnet-b1.58"));
  w.SetValue(a + "vocab_size", gguf::Value::U32(static_cast<uint32_t>(s.n_vocab)));
  w.SetValue(a + "context_length", gguf::Value::U32(static_cast<uint32_t>(s.max_positions)));
  w.SetValue(a + "embedding_length", gguf::Value::U32(static_cast<uint32_t>(s.hidden)));
  w.SetValue(a + "block_count", gguf::Value::U32(static_cast<uint32_t>(s.n_layer)));
  w.SetValue(a + "feed_forward_length", gguf::Value::U32(static_cast<uint32_t>(s.intermediate)));
  w.SetValue(a + "attention.head_count", gguf::Value::U32(static_cast<uint32_t>(s.n_head)));
  w.SetValue(a + "attention.head_count_kv", gguf::Value::U32(static_cast<uint32_t>(s.n_head_kv)));
  w.SetValue(a + "rope.freq_base", gguf::Value::F32(s.rope_theta));
  w.SetValue(a + "attention.layer_norm_rms_epsilon", gguf::Value::F32(1e-5f));
  auto add = [&](const std::string& name, std::vector<int64_t> ne, ggml::Type t, const std::vector<float>& v) {
    absl::StatusOr<std::vector<uint8_t>> bytes = ggml::Quantize(t, v);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    ASSERT_TRUE(w.AddTensor(name, std::move(ne), t, *std::move(bytes)).ok());
  };
  add("token_embd.weight", {s.hidden, s.n_vocab}, ggml::Type::kBF16, ref.floats.at("model.embed_tokens.weight"));
  add("output_norm.weight", {s.hidden}, ggml::Type::kF32, ref.floats.at("model.norm.weight"));
  const std::pair<const char*, const char*> lins[] = {
      {"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"}, {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"}, {"ffn_gate", "mlp.gate_proj"}, {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  const std::pair<const char*, const char*> norms[] = {
      {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
      {"attn_sub_norm", "self_attn.attn_sub_norm"}, {"ffn_sub_norm", "mlp.ffn_sub_norm"}};
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto [g, h] : norms) {
      const std::vector<float>& v = ref.floats.at(p + h + ".weight");
      add(b + g + ".weight", {static_cast<int64_t>(v.size())}, ggml::Type::kF32, v);
    }
    for (auto [g, h] : lins) {
      const std::vector<int8_t>& codes = ref.codes.at(p + h);
      const float scale = ref.scales.at(p + h);
      std::vector<float> v(codes.size());
      for (size_t i = 0; i < v.size(); ++i) v[i] = codes[i] * scale;
      const bool down = std::string(g) == "ffn_down", out = std::string(g) == "attn_output";
      const int64_t cols = down ? s.intermediate : s.hidden;
      add(b + g + ".weight", {cols, static_cast<int64_t>(codes.size()) / cols}, type, v);
      (void)out;
    }
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

std::shared_ptr<const ModelWeights> LoadGgufBytes(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<std::unique_ptr<gguf::File>> f = gguf::File::FromBuffer(bytes.data(), bytes.size());
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const ModelWeights>> w = ModelWeights::Load(**f);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *w : nullptr;
}

TEST(HfCheckpointTest, SameWeightsInEveryFormatGiveIdenticalWeightsAndLogits) {
  testing::TempDir dir;
  const HfTestModelSpec packed_spec = Spec(HfFamily::kBitNetPacked);
  const HfTestModelSpec bf16_spec = Spec(HfFamily::kBitNetBf16);
  absl::StatusOr<HfTestWeights> ref = tools::WriteHfTestModel(dir.File("packed"), packed_spec);
  ASSERT_TRUE(ref.ok()) << ref.status();
  absl::StatusOr<HfTestWeights> ref_bf16 = tools::WriteHfTestModel(dir.File("bf16"), bf16_spec);
  ASSERT_TRUE(ref_bf16.ok()) << ref_bf16.status();
  ASSERT_EQ(ref->codes, ref_bf16->codes);  // same draws, two encodings
  ASSERT_EQ(ref->scales, ref_bf16->scales);

  std::shared_ptr<const ModelWeights> from_packed = Load(dir.File("packed"));
  std::shared_ptr<const ModelWeights> from_bf16 = Load(dir.File("bf16"));
  std::shared_ptr<const ModelWeights> from_i2s = LoadGgufBytes(GgufFromWeights(packed_spec, *ref, ggml::Type::kI2S));
  std::shared_ptr<const ModelWeights> from_tq2 = LoadGgufBytes(GgufFromWeights(packed_spec, *ref, ggml::Type::kTQ2_0));
  ASSERT_TRUE(from_packed && from_bf16 && from_i2s && from_tq2);
  EXPECT_EQ(from_packed->config.arch, Arch::kBitnetB158);

  ExpectWeightsAre(*from_packed, *ref);
  ExpectSameWeights(*from_packed, *from_bf16);
  ExpectSameWeights(*from_packed, *from_i2s);
  ExpectSameWeights(*from_packed, *from_tq2);

  // Rows of 256 values are one TQ2_0 block, so even the per-block scale
  // products sum in the same order: the logits must agree bit for bit.
  const std::vector<TokenId> prompt = {60, 5, 17, 42, 3, 3, 59};
  const std::vector<float> logits = Logits(from_packed, prompt);
  ASSERT_EQ(logits.size(), prompt.size() * 64);
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  EXPECT_EQ(Logits(from_bf16, prompt), logits);
  EXPECT_EQ(Logits(from_i2s, prompt), logits);
  EXPECT_EQ(Logits(from_tq2, prompt), logits);
}

TEST(HfCheckpointTest, AutoBitLinearScaleIsDirect) {
  testing::TempDir dir;
  HfTestModelSpec a = Spec(HfFamily::kBitNetPacked, 5);
  HfTestModelSpec b = a;
  b.linear_class = "autobitlinear";  // stores weight_scale = m instead of 1/m
  absl::StatusOr<HfTestWeights> ref = tools::WriteHfTestModel(dir.File("a"), a);
  ASSERT_TRUE(ref.ok());
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("b"), b).ok());
  std::shared_ptr<const ModelWeights> wa = Load(dir.File("a")), wb = Load(dir.File("b"));
  ASSERT_TRUE(wa && wb);
  ExpectWeightsAre(*wb, *ref);
  ExpectSameWeights(*wa, *wb);
}

TEST(HfCheckpointTest, OneBitLlmFloatMasters) {
  for (const char* dtype : {"F16", "F32", "BF16"}) {
    testing::TempDir dir;
    HfTestModelSpec s = Spec(HfFamily::kBitnet1bitLLM, 3);
    s.master_dtype = dtype;
    s.tied = false;
    absl::StatusOr<HfTestWeights> ref = tools::WriteHfTestModel(dir.path(), s);
    ASSERT_TRUE(ref.ok()) << ref.status();
    std::shared_ptr<const ModelWeights> w = Load(dir.path());
    ASSERT_TRUE(w) << dtype;
    EXPECT_EQ(w->config.arch_name, "bitnet");
    EXPECT_EQ(w->config.activation, Activation::kSilu);
    EXPECT_FALSE(w->config.tied_output);
    ASSERT_TRUE(w->lm_head.has_value());
    EXPECT_EQ(w->lm_head->ToFloat(), ref->floats.at("lm_head.weight"));
    EXPECT_EQ(w->layers[0].attn_sub_norm, ref->floats.at("model.layers.0.self_attn.inner_attn_ln.weight"));
    ExpectWeightsAre(*w, *ref);
  }
}

TEST(HfCheckpointTest, LlamaPackedPermutesQueryAndKeyRows) {
  testing::TempDir dir;
  HfTestModelSpec s = Spec(HfFamily::kLlamaPacked, 9);
  absl::StatusOr<HfTestWeights> ref = tools::WriteHfTestModel(dir.path(), s);
  ASSERT_TRUE(ref.ok()) << ref.status();
  std::shared_ptr<const ModelWeights> w = Load(dir.path());
  ASSERT_TRUE(w);
  EXPECT_EQ(w->config.arch, Arch::kLlama);
  EXPECT_EQ(w->config.rope_type, RopeType::kNorm);
  EXPECT_FALSE(w->config.sub_norms);
  EXPECT_TRUE(w->layers[0].attn_sub_norm.empty());
  ExpectWeightsAre(*w, *ref, /*llama_permuted=*/true);
}

TEST(HfCheckpointTest, ShardedEqualsSingleFileAndLayerRangesMatch) {
  testing::TempDir dir;
  HfTestModelSpec one = Spec(HfFamily::kBitNetPacked, 21);
  one.n_layer = 3;
  HfTestModelSpec three = one;
  three.shards = 3;
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("one"), one).ok());
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("three"), three).ok());
  EXPECT_TRUE(std::filesystem::exists(dir.File("three/model.safetensors.index.json")));
  std::shared_ptr<const ModelWeights> a = Load(dir.File("one")), b = Load(dir.File("three"));
  ASSERT_TRUE(a && b);
  ExpectSameWeights(*a, *b);

  std::shared_ptr<const ModelWeights> mid = Load(dir.File("three"), 1, 2);
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->layers.size(), 1u);
  EXPECT_FALSE(mid->token_embd.has_value());
  EXPECT_EQ(mid->head(), nullptr);
  EXPECT_EQ(mid->layers[0].attn_norm, a->layers[1].attn_norm);
  EXPECT_EQ(Value(mid->layers[0].w_down, 3, 7), Value(a->layers[1].w_down, 3, 7));
  std::shared_ptr<const ModelWeights> last = Load(dir.File("three"), 2, 3);
  ASSERT_TRUE(last);
  ASSERT_NE(last->head(), nullptr);
  EXPECT_EQ(last->head()->ToFloat(), a->token_embd->ToFloat());  // tied lm_head
}

TEST(HfCheckpointTest, TokenizerFromTheDirectory) {
  testing::TempDir dir;
  const TokenizerData vocab = TinyVocab();
  ASSERT_TRUE(tools::WriteHfTestModel(dir.path(), Spec(HfFamily::kBitNetPacked), &vocab).ok());
  absl::StatusOr<std::unique_ptr<HfCheckpoint>> ck = HfCheckpoint::Open(dir.path());
  ASSERT_TRUE(ck.ok()) << ck.status();
  ASSERT_TRUE((*ck)->tokenizer().has_value());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create((*ck)->tokenizer()->data);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("AB<|eot_id|>", true), (std::vector<TokenId>{60, 0x41 - 0x21, 0x42 - 0x21, 63}));
  EXPECT_TRUE((*tok)->IsEndOfGeneration(63));
  EXPECT_TRUE(Load(dir.path()));  // the vocabulary size is cross-checked at load
}

// Writes a model, lets `mutate` damage it, and returns the load status.
absl::Status LoadAfter(HfFamily family, const std::function<void(const std::string&)>& mutate) {
  testing::TempDir dir;
  EXPECT_TRUE(tools::WriteHfTestModel(dir.path(), Spec(family)).ok());
  mutate(dir.path());
  return LoadHfWeights(dir.path()).status();
}

void EditConfig(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(dir + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump();
}

// Rewrites model.safetensors with one tensor replaced, added or removed.
void EditTensors(const std::string& dir, const std::string& name,
                 std::optional<std::pair<safetensors::Dtype, std::pair<std::vector<int64_t>, std::vector<uint8_t>>>> repl) {
  absl::StatusOr<std::unique_ptr<safetensors::File>> f = safetensors::File::Open(dir + "/model.safetensors");
  ASSERT_TRUE(f.ok());
  safetensors::Writer w;
  bool done = false;
  for (const safetensors::TensorInfo& t : (*f)->tensors()) {
    if (t.name == name) {
      done = true;
      if (repl) ASSERT_TRUE(w.AddTensor(name, repl->first, repl->second.first, repl->second.second).ok());
      continue;
    }
    ASSERT_TRUE(w.AddTensor(t.name, t.dtype, t.shape,
                            std::vector<uint8_t>((*f)->Data(t), (*f)->Data(t) + t.n_bytes())).ok());
  }
  if (!done && repl) ASSERT_TRUE(w.AddTensor(name, repl->first, repl->second.first, repl->second.second).ok());
  f->reset();
  ASSERT_TRUE(w.WriteFile(dir + "/model.safetensors").ok());
}

TEST(HfCheckpointTest, ClearErrors) {
  using safetensors::Dtype;
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  auto expect_error = [](const absl::Status& s, const std::string& needle) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(needle), std::string::npos) << s;
  };
  expect_error(LoadAfter(HfFamily::kBitNetPacked, [&](const std::string& d) { EditTensors(d, q, std::nullopt); }),
               "missing tensor '" + q);
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) {
                           EditTensors(d, q, {{Dtype::kU8, {{32, 256}, std::vector<uint8_t>(32 * 256, 0x55)}}});
                         }),
               "expected [64, 256]");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) {
                           EditTensors(d, q, {{Dtype::kU8, {{64, 256}, std::vector<uint8_t>(64 * 256, 0xff)}}});
                         }),
               "invalid 2-bit code 3");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) {
                           EditTensors(d, "model.layers.0.self_attn.q_proj.weight_scale",
                                       {{Dtype::kF32, {{1}, std::vector<uint8_t>(4, 0)}}});
                         }),
               "must be positive");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) {
                           EditTensors(d, "model.layers.0.self_attn.q_proj.bias",
                                       {{Dtype::kF32, {{256}, std::vector<uint8_t>(1024, 0)}}});
                         }),
               "does not know");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) {
                           EditConfig(d, [](nlohmann::json& j) { j["tie_word_embeddings"] = false; });
                         }),
               "lm_head.weight");
  expect_error(LoadAfter(HfFamily::kLlamaPacked,
                         [&](const std::string& d) {
                           EditTensors(d, q, {{Dtype::kF32, {{256, 256}, std::vector<uint8_t>(256 * 256 * 4, 0)}}});
                           EditConfig(d, [](nlohmann::json& j) { j.erase("quantization_config"); });
                         }),
               "full-precision");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) { std::filesystem::remove(d + "/config.json"); }),
               "config.json");
  expect_error(LoadAfter(HfFamily::kBitNetPacked,
                         [&](const std::string& d) { std::filesystem::remove(d + "/model.safetensors"); }),
               "model.safetensors");
}

TEST(HfCheckpointTest, IsHfCheckpointDir) {
  testing::TempDir dir;
  EXPECT_FALSE(IsHfCheckpointDir(dir.path()));
  ASSERT_TRUE(tools::WriteHfTestModel(dir.path(), Spec(HfFamily::kBitNetPacked)).ok());
  EXPECT_TRUE(IsHfCheckpointDir(dir.path()));
  EXPECT_FALSE(IsHfCheckpointDir(dir.File("config.json")));
}

}  // namespace
}  // namespace bitnet
