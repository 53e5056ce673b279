// bitnet-convert: GGUF -> GGUF repacking and Hugging Face -> GGUF conversion.
//
// llama.cpp cannot be built here, so "the TQ output loads in llama.cpp" is
// checked against files llama.cpp itself wrote and loaded: the oracle's
// tiny-gqa TQ1_0 / TQ2_0 GGUFs (upstream llama-quantize output). A Hugging Face
// BitnetForCausalLM checkpoint is built from the oracle's weights, converted,
// and the result must have the oracle's metadata keys and value types, tensor
// names, shapes and types, and byte-identical tensor data.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/hf_checkpoint.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"
#include "tools/hf_writer.h"
#include "tools/ternary_repack.h"

namespace bitnet {
namespace {

std::string Oracle(const std::string& type) {
  return testing::OracleDir() + "/tiny-gqa-" + type + ".gguf";
}

std::unique_ptr<gguf::File> OpenGguf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<gguf::File>> f = gguf::File::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *std::move(f) : nullptr;
}

std::string Convert(const std::string& args) {
  return testing::BinDir() + "/bitnet-convert " + args;
}

bool HaveConvertBinary() { return std::filesystem::exists(testing::BinDir() + "/bitnet-convert"); }

#define SKIP_WITHOUT_BINARY()                                                             \
  do {                                                                                    \
    if (!HaveConvertBinary()) GTEST_SKIP() << "bitnet-convert is not built in " << testing::BinDir(); \
  } while (0)

std::vector<uint8_t> Bytes(const gguf::File& f, const gguf::TensorInfo& t) {
  return std::vector<uint8_t>(f.TensorData(t), f.TensorData(t) + t.n_bytes());
}

// Same metadata (keys, value types, values) except the listed keys, and the
// same tensors (names, shapes, types, bytes).
void ExpectSameFile(const gguf::File& got, const gguf::File& want,
                    const std::vector<std::string>& ignore_values = {}) {
  std::map<std::string, gguf::ValueType> got_keys, want_keys;
  for (const auto& [k, v] : got.metadata()) got_keys[k] = v.type;
  for (const auto& [k, v] : want.metadata()) want_keys[k] = v.type;
  EXPECT_EQ(got_keys, want_keys);
  for (const auto& [k, v] : want.metadata()) {
    if (std::find(ignore_values.begin(), ignore_values.end(), k) != ignore_values.end()) continue;
    const gguf::Value* g = got.Find(k);
    if (g != nullptr) EXPECT_TRUE(*g == v) << k;
  }
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const gguf::TensorInfo& w : want.tensors()) {
    const gguf::TensorInfo* g = got.FindTensor(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->ne, w.ne) << w.name;
    EXPECT_EQ(g->type, w.type) << w.name;
    EXPECT_TRUE(Bytes(got, *g) == Bytes(want, w)) << w.name << " differs";
  }
}

std::unique_ptr<gguf::File> Repack(const gguf::File& in, ggml::Type type, std::optional<ggml::Type> embd,
                                   std::vector<uint8_t>* storage) {
  gguf::Writer w;
  tools::RepackOptions o;
  o.ternary_type = type;
  o.embedding_type = embd;
  absl::Status s = tools::RepackGguf(in, o, w);
  EXPECT_TRUE(s.ok()) << s;
  absl::StatusOr<std::vector<uint8_t>> bytes = w.Serialize();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return nullptr;
  *storage = *std::move(bytes);
  absl::StatusOr<std::unique_ptr<gguf::File>> f = gguf::File::FromBuffer(storage->data(), storage->size());
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? *std::move(f) : nullptr;
}

TEST(ConvertTest, RepacksOracleFilesExactlyAsLlamaQuantize) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> f32 = OpenGguf(Oracle("f32"));
  std::unique_ptr<gguf::File> tq2 = OpenGguf(Oracle("tq2_0"));
  std::unique_ptr<gguf::File> tq1 = OpenGguf(Oracle("tq1_0"));
  ASSERT_TRUE(f32 && tq2 && tq1);
  std::vector<uint8_t> a, b, c;
  // F32 (ternary-valued) -> TQ2_0 with a Q6_K embedding: what llama-quantize wrote.
  std::unique_ptr<gguf::File> from_f32 = Repack(*f32, ggml::Type::kTQ2_0, ggml::Type::kQ6K, &a);
  ASSERT_TRUE(from_f32);
  ExpectSameFile(*from_f32, *tq2);
  // TQ2_0 -> TQ1_0 and back: the other llama-quantize outputs, byte for byte.
  std::unique_ptr<gguf::File> to_tq1 = Repack(*tq2, ggml::Type::kTQ1_0, std::nullopt, &b);
  ASSERT_TRUE(to_tq1);
  ExpectSameFile(*to_tq1, *tq1);
  std::unique_ptr<gguf::File> back = Repack(*tq1, ggml::Type::kTQ2_0, std::nullopt, &c);
  ASSERT_TRUE(back);
  ExpectSameFile(*back, *tq2);
}

TEST(ConvertTest, RepacksToI2sLikeBitnetCpp) {
  SKIP_WITHOUT_ORACLE();
  std::unique_ptr<gguf::File> tq2 = OpenGguf(Oracle("tq2_0"));
  std::unique_ptr<gguf::File> i2s = OpenGguf(Oracle("i2_s"));
  ASSERT_TRUE(tq2 && i2s);
  std::vector<uint8_t> a, b;
  // bitnet.cpp's file has an F16 embedding; ask for the same.
  std::unique_ptr<gguf::File> ours = Repack(*tq2, ggml::Type::kI2S, ggml::Type::kF16, &a);
  ASSERT_TRUE(ours);
  EXPECT_EQ(*ours->GetInt("general.file_type"), 40);
  for (const gguf::TensorInfo& t : i2s->tensors()) {
    const gguf::TensorInfo* g = ours->FindTensor(t.name);
    ASSERT_NE(g, nullptr) << t.name;
    EXPECT_EQ(g->type, t.type) << t.name;
    std::vector<uint8_t> want = Bytes(*i2s, t), got = Bytes(*ours, *g);
    if (t.type == ggml::Type::kI2S) {
      // Codes and the f32 scale; bitnet.cpp leaves the 28 padding bytes after
      // the scale uninitialized, so they are not compared.
      const size_t keep = static_cast<size_t>(t.n_elements() / 4 + 4);
      want.resize(keep);
      got.resize(keep);
    }
    if (t.type != ggml::Type::kF16) EXPECT_TRUE(got == want) << t.name;  // token_embd: from Q6_K
  }
  // And I2_S -> TQ2_0 gives back llama.cpp's ternary tensors.
  std::unique_ptr<gguf::File> back = Repack(*ours, ggml::Type::kTQ2_0, std::nullopt, &b);
  ASSERT_TRUE(back);
  for (const gguf::TensorInfo& t : tq2->tensors()) {
    if (t.type != ggml::Type::kTQ2_0) continue;
    EXPECT_TRUE(Bytes(*back, *back->FindTensor(t.name)) == Bytes(*tq2, t)) << t.name;
  }
}

TEST(ConvertTest, RepackErrors) {
  // Different scales in different blocks cannot become I2_S.
  gguf::Writer w;
  w.SetValue("general.architecture", gguf::Value::Str("bitnet"));
  std::vector<float> v(512, 0.f);
  v[0] = 0.5f;
  v[300] = 0.25f;
  ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight", {256, 2}, ggml::Type::kTQ2_0,
                          *ggml::Quantize(ggml::Type::kTQ2_0, v)).ok());
  std::vector<float> dense(256, 0.f);
  dense[0] = 0.5f;
  dense[1] = 0.25f;
  ASSERT_TRUE(w.AddTensor("blk.0.ffn_up.weight", {256, 1}, ggml::Type::kF32,
                          *ggml::Quantize(ggml::Type::kF32, dense)).ok());
  std::vector<uint8_t> bytes = *w.Serialize();
  std::unique_ptr<gguf::File> in = *gguf::File::FromBuffer(bytes.data(), bytes.size());
  auto repack = [&](ggml::Type t) {
    gguf::Writer out;
    tools::RepackOptions o;
    o.ternary_type = t;
    absl::Status s = tools::RepackGguf(*in, o, out);
    if (!s.ok()) return s;
    return out.Serialize().status();
  };
  absl::Status s = repack(ggml::Type::kI2S);
  EXPECT_NE(s.message().find("different scales"), std::string::npos) << s;
  s = repack(ggml::Type::kTQ1_0);
  EXPECT_NE(s.message().find("not ternary-valued"), std::string::npos) << s;
  s = repack(ggml::Type::kF16);
  EXPECT_NE(s.message().find("not a ternary type"), std::string::npos) << s;
  EXPECT_TRUE(tools::IsTernaryLinearName("blk.12.ffn_down.weight"));
  EXPECT_FALSE(tools::IsTernaryLinearName("blk.12.ffn_norm.weight"));
  EXPECT_FALSE(tools::IsTernaryLinearName("token_embd.weight"));
}

// A BitnetForCausalLM checkpoint holding the oracle model's weights: packed
// ternary codes with the exact f32 scale (weight_scale read directly, as
// AutoBitLinear does), F32 embedding and norms, the oracle's tokenizer.
void WriteOracleAsHf(const gguf::File& f32, const std::string& dir) {
  std::filesystem::create_directories(dir);
  safetensors::Writer w;
  auto floats = [&](const std::string& gguf_name) {
    const gguf::TensorInfo* t = f32.FindTensor(gguf_name);
    EXPECT_NE(t, nullptr) << gguf_name;
    std::vector<float> v(static_cast<size_t>(t->n_elements()));
    EXPECT_TRUE(ggml::Dequantize(t->type, f32.TensorData(*t), t->n_elements(), v.data()).ok());
    return std::make_pair(v, t->ne);
  };
  auto add_float = [&](const std::string& hf, const std::string& gguf_name) {
    auto [v, ne] = floats(gguf_name);
    std::vector<int64_t> shape(ne.rbegin(), ne.rend());
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    ASSERT_TRUE(w.AddTensor(hf, safetensors::Dtype::kF32, shape, b).ok());
  };
  auto add_linear = [&](const std::string& hf, const std::string& gguf_name) {
    auto [v, ne] = floats(gguf_name);
    const int64_t cols = ne[0], rows = ne[1];
    float s = 0.f;
    std::vector<int8_t> codes(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] != 0.f) s = std::fabs(v[i]);
      codes[i] = v[i] > 0.f ? 1 : v[i] < 0.f ? -1 : 0;
    }
    ASSERT_TRUE(w.AddTensor(hf + ".weight", safetensors::Dtype::kU8, {rows / 4, cols},
                            tools::PackHfTernary(codes, rows, cols)).ok());
    std::vector<uint8_t> sb(4);
    std::memcpy(sb.data(), &s, 4);
    ASSERT_TRUE(w.AddTensor(hf + ".weight_scale", safetensors::Dtype::kF32, {1}, sb).ok());
  };
  add_float("model.embed_tokens.weight", "token_embd.weight");
  add_float("model.norm.weight", "output_norm.weight");
  const std::pair<const char*, const char*> lins[] = {
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
      {"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  const std::pair<const char*, const char*> norms[] = {
      {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"},
      {"self_attn.inner_attn_ln", "attn_sub_norm"}, {"mlp.ffn_layernorm", "ffn_sub_norm"}};
  for (int l = 0; l < 4; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string b = "blk." + std::to_string(l) + ".";
    for (auto [hf, g] : lins) add_linear(p + hf, b + g + ".weight");
    for (auto [hf, g] : norms) add_float(p + hf + ".weight", b + g + ".weight");
  }
  ASSERT_TRUE(w.WriteFile(dir + "/model.safetensors").ok());

  const nlohmann::json config = {
      {"architectures", {"BitnetForCausalLM"}}, {"model_type", "llama"}, {"hidden_act", "silu"},
      {"hidden_size", 256}, {"intermediate_size", 768}, {"num_attention_heads", 4},
      {"num_key_value_heads", 2}, {"num_hidden_layers", 4}, {"max_position_embeddings", 512},
      {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"tie_word_embeddings", true},
      {"vocab_size", 290}, {"_name_or_path", "tiny-gqa"},
      {"quantization_config",
       {{"quant_method", "bitnet"}, {"linear_class", "autobitlinear"}, {"quantization_mode", "offline"}}}};
  std::ofstream(dir + "/config.json") << config.dump(2);

  TokenizerData tok;
  tok.model = "gpt2";
  tok.pre = "gpt-2";
  tok.tokens = *f32.GetStringArray("tokenizer.ggml.tokens");
  for (int64_t t : *f32.GetIntArray("tokenizer.ggml.token_type")) tok.types.push_back(static_cast<TokenType>(t));
  tok.merges = *f32.GetStringArray("tokenizer.ggml.merges");
  tok.bos = static_cast<TokenId>(*f32.GetInt("tokenizer.ggml.bos_token_id"));
  tok.eos = static_cast<TokenId>(*f32.GetInt("tokenizer.ggml.eos_token_id"));
  tok.add_bos = true;
  std::ofstream(dir + "/tokenizer.json") << *tools::HfTokenizerJson(tok);
  std::ofstream(dir + "/tokenizer_config.json") << tools::HfTokenizerConfigJson(tok);
}

TEST(ConvertTest, HuggingFaceToTqMatchesWhatLlamaCppWroteAndLoaded) {
  SKIP_WITHOUT_ORACLE();
  SKIP_WITHOUT_BINARY();
  std::unique_ptr<gguf::File> f32 = OpenGguf(Oracle("f32"));
  ASSERT_TRUE(f32);
  testing::TempDir dir;
  WriteOracleAsHf(*f32, dir.File("hf"));
  for (const char* type : {"tq2_0", "tq1_0"}) {
    const std::string out = dir.File(std::string("out-") + type + ".gguf");
    testing::CommandResult r = testing::RunCommand(
        Convert("--input " + dir.File("hf") + " --output " + out + " --type " + type + " --embedding-type q6_k"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("100%"), std::string::npos) << r.output;  // the progress bar ran
    std::unique_ptr<gguf::File> got = OpenGguf(out);
    std::unique_ptr<gguf::File> want = OpenGguf(Oracle(type));
    ASSERT_TRUE(got && want);
    ExpectSameFile(*got, *want);
    EXPECT_FALSE(std::filesystem::exists(out + ".part"));
  }
}

// Every tool that takes --model takes a Hugging Face directory too, and gives
// what the converted GGUF gives: bitnet-run, and bitnet-serve (coordinator +
// 2 workers, each converting only its layers).
TEST(ConvertTest, ToolsServeAHuggingFaceDirectoryLikeItsGguf) {
  SKIP_WITHOUT_ORACLE();
  SKIP_WITHOUT_BINARY();
  std::unique_ptr<gguf::File> f32 = OpenGguf(Oracle("f32"));
  ASSERT_TRUE(f32);
  testing::TempDir dir;
  WriteOracleAsHf(*f32, dir.File("hf"));
  testing::CommandResult r =
      testing::RunCommand(Convert("-q -i " + dir.File("hf") + " -o " + dir.File("m.gguf") + " --type i2_s"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto run = [&](const std::string& model) {
    return testing::RunCommand("(" + testing::BinDir() + "/bitnet-run --model " + model +
                               " --prompt 'The quick brown fox' -n 12 --temp 0 --threads 1 --json"
                               " 2>/dev/null)");
  };
  const testing::CommandResult from_hf = run(dir.File("hf")), from_gguf = run(dir.File("m.gguf"));
  ASSERT_EQ(from_hf.exit_code, 0) << from_hf.output;
  ASSERT_EQ(from_gguf.exit_code, 0) << from_gguf.output;
  const nlohmann::json a = nlohmann::json::parse(from_hf.output);
  const nlohmann::json b = nlohmann::json::parse(from_gguf.output);
  EXPECT_EQ(a.at("prompt_ids"), b.at("prompt_ids"));
  EXPECT_EQ(a.at("generated_ids"), b.at("generated_ids"));
  EXPECT_EQ(a.at("generated_ids").size(), 12u);

  auto serve = [&](const std::string& model) {
    return testing::RunCommand("(" + testing::BinDir() + "/bitnet-serve --model " + model +
                               " --workers 2 --threads 1 --wire fp32 --prompt 'The quick brown fox'"
                               " --max_tokens 12 --temperature 0 2>/dev/null)");
  };
  const testing::CommandResult served_hf = serve(dir.File("hf")), served_gguf = serve(dir.File("m.gguf"));
  ASSERT_EQ(served_hf.exit_code, 0) << served_hf.output;
  ASSERT_EQ(served_gguf.exit_code, 0) << served_gguf.output;
  EXPECT_EQ(served_hf.output, served_gguf.output);
  EXPECT_GT(served_hf.output.size(), std::string("The quick brown fox").size());
}

TEST(ConvertTest, HuggingFaceToI2sLoadsLikeTheDirectLoader) {
  SKIP_WITHOUT_BINARY();
  testing::TempDir dir;
  tools::HfTestModelSpec s;
  s.family = tools::HfFamily::kBitNetBf16;
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("hf"), s).ok());
  testing::CommandResult r = testing::RunCommand(
      Convert("-q -i " + dir.File("hf") + " -o " + dir.File("m.gguf") + " --type i2_s --embedding-type bf16"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "");  // --quiet
  std::unique_ptr<gguf::File> f = OpenGguf(dir.File("m.gguf"));
  ASSERT_TRUE(f);
  EXPECT_EQ(*f->GetString("general.architecture"), "bitnet-b1.58");
  absl::StatusOr<std::shared_ptr<const ModelWeights>> from_gguf = ModelWeights::Load(*f);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  absl::StatusOr<std::shared_ptr<const ModelWeights>> direct = LoadHfWeights(dir.File("hf"));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ((*from_gguf)->token_embd->ToFloat(), (*direct)->token_embd->ToFloat());
  const auto& a = std::get<kernels::TernaryMatrix>((*from_gguf)->layers[1].w_up.w);
  const auto& b = std::get<kernels::TernaryMatrix>((*direct)->layers[1].w_up.w);
  EXPECT_EQ(a.scales, b.scales);
  for (int64_t i = 0; i < a.rows; i += 7) {
    for (int64_t j = 0; j < a.cols; j += 5) EXPECT_EQ(a.code(i, j), b.code(i, j));
  }
}

TEST(ConvertTest, CommandLineErrors) {
  SKIP_WITHOUT_BINARY();
  testing::TempDir dir;
  testing::CommandResult r = testing::RunCommand(Convert("--output " + dir.File("x.gguf")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--input"), std::string::npos) << r.output;
  r = testing::RunCommand(Convert("--input " + dir.File("nope.gguf") + " --output " + dir.File("x.gguf")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("nope.gguf"), std::string::npos) << r.output;
  r = testing::RunCommand(Convert("--input " + dir.path() + " --output " + dir.File("x.gguf")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  r = testing::RunCommand(Convert("--input a --output b --type q4_0"));
  EXPECT_EQ(r.exit_code, 2) << r.output;

  // An existing output is kept unless --force.
  tools::HfTestModelSpec s;
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("hf"), s).ok());
  testing::WriteFileBytes(dir.File("exists.gguf"), {1, 2, 3});
  r = testing::RunCommand(Convert("-q -i " + dir.File("hf") + " -o " + dir.File("exists.gguf")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--force"), std::string::npos) << r.output;
  r = testing::RunCommand(Convert("-q -f -i " + dir.File("hf") + " -o " + dir.File("exists.gguf")));
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // TQ types need rows of 256: a 128-wide model cannot be TQ2_0.
  s.hidden = 128;
  s.intermediate = 128;
  s.n_head = 2;
  s.n_head_kv = 1;
  ASSERT_TRUE(tools::WriteHfTestModel(dir.File("narrow"), s).ok());
  r = testing::RunCommand(Convert("-q -i " + dir.File("narrow") + " -o " + dir.File("n.gguf") + " --type tq2_0"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("multiple of 256"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir.File("n.gguf")));
  EXPECT_FALSE(std::filesystem::exists(dir.File("n.gguf.part")));
}

}  // namespace
}  // namespace bitnet
