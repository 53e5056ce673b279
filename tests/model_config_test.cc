// ModelConfig from GGUF metadata: per-arch conventions, defaults, and clear
// errors for missing keys, unknown archs and inconsistent shapes.
#include "model/model_config.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/test_support.h"
#include "tests/tiny_model.h"

namespace bitnet {
namespace {

using testing::MakeTinyModel;
using testing::TinyModelSpec;

absl::StatusOr<ModelConfig> ConfigOf(const TinyModelSpec& spec) {
  testing::TinyModel m = MakeTinyModel(spec);
  if (m.file == nullptr) return absl::InternalError("tiny model did not parse");
  return ConfigFromGguf(*m.file);
}

TEST(ModelConfigTest, OracleModel) {
  SKIP_WITHOUT_ORACLE();
  auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-f32.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  auto c = ConfigFromGguf(**f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Arch::kBitnet);
  EXPECT_EQ(c->n_vocab, 290);
  EXPECT_EQ(c->n_embd, 256);
  EXPECT_EQ(c->n_layer, 4);
  EXPECT_EQ(c->n_head, 4);
  EXPECT_EQ(c->n_head_kv, 2);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->n_rot, 64);
  EXPECT_EQ(c->n_ff, 768);
  EXPECT_EQ(c->n_ctx_train, 512);
  EXPECT_FLOAT_EQ(c->rope_freq_base, 500000.f);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-5f);
  EXPECT_EQ(c->rope_type, RopeType::kNeox);
  EXPECT_EQ(c->activation, Activation::kSilu);
  EXPECT_TRUE(c->sub_norms);
  EXPECT_TRUE(c->tied_output);
}

TEST(ModelConfigTest, BitnetDefaults) {
  auto c = ConfigOf({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Arch::kBitnet);
  EXPECT_EQ(c->n_vocab, 48);
  EXPECT_EQ(c->head_dim, 16);  // key_length defaults to n_embd / n_head
  EXPECT_EQ(c->n_rot, 16);
  EXPECT_EQ(c->q_dim(), 64);
  EXPECT_EQ(c->kv_dim(), 32);
  EXPECT_EQ(c->rope_type, RopeType::kNeox);
  EXPECT_EQ(c->activation, Activation::kSilu);
  EXPECT_FLOAT_EQ(c->rope_freq_scale, 1.f);
}

TEST(ModelConfigTest, HiddenActivationSpellings) {
  for (const char* name : {"relu2", "relu\xc2\xb2", "ReLU_squared", "squared_relu", "relu^2",
                           "relu_sqr"}) {
    TinyModelSpec s;
    s.activation = name;
    auto c = ConfigOf(s);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->activation, Activation::kRelu2) << name;
  }
  for (const char* name : {"silu", "SiLU", "swish"}) {
    TinyModelSpec s;
    s.activation = name;
    auto c = ConfigOf(s);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->activation, Activation::kSilu) << name;
  }
  TinyModelSpec bad;
  bad.activation = "gelu";
  auto c = ConfigOf(bad);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("gelu"), std::string::npos) << c.status();
}

TEST(ModelConfigTest, BitnetB158AndItsOldName) {
  for (const char* arch : {"bitnet-b1.58", "bitnet-25"}) {
    TinyModelSpec s;
    s.arch = arch;
    auto c = ConfigOf(s);
    ASSERT_TRUE(c.ok()) << arch << ": " << c.status();
    EXPECT_EQ(c->arch, Arch::kBitnetB158);
    EXPECT_EQ(c->arch_name, arch);
    EXPECT_EQ(c->activation, Activation::kRelu2);
    EXPECT_EQ(c->rope_type, RopeType::kNeox);
    EXPECT_TRUE(c->sub_norms);
  }
}

TEST(ModelConfigTest, LlamaUsesNormRopeAndNoSubNorms) {
  TinyModelSpec s;
  s.arch = "llama";
  s.sub_norms = false;
  s.tied = false;
  auto c = ConfigOf(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->arch, Arch::kLlama);
  EXPECT_EQ(c->rope_type, RopeType::kNorm);
  EXPECT_EQ(c->activation, Activation::kSilu);
  EXPECT_FALSE(c->sub_norms);
  EXPECT_FALSE(c->tied_output);
}

TEST(ModelConfigTest, UnknownArch) {
  TinyModelSpec s;
  s.arch = "gpt2";
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("gpt2"), std::string::npos) << c.status();
}

TEST(ModelConfigTest, MissingRequiredKeyIsNamed) {
  for (const char* key : {"bitnet.block_count", "bitnet.embedding_length",
                          "bitnet.attention.head_count", "bitnet.context_length",
                          "bitnet.attention.layer_norm_rms_epsilon"}) {
    TinyModelSpec s;
    s.drop_keys = {key};
    auto c = ConfigOf(s);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(c.status().message().find(key), std::string::npos) << c.status();
  }
  TinyModelSpec s;
  s.drop_keys = {"general.architecture"};
  EXPECT_FALSE(ConfigOf(s).ok());
}

TEST(ModelConfigTest, OptionalKeysTakeLlamaCppDefaults) {
  TinyModelSpec s;
  s.drop_keys = {"bitnet.attention.head_count_kv", "bitnet.rope.freq_base", "bitnet.vocab_size"};
  s.n_head_kv = s.n_head;  // tensors must match the default (no GQA)
  auto c = ConfigOf(s);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_head_kv, c->n_head);
  EXPECT_FLOAT_EQ(c->rope_freq_base, 10000.f);
  EXPECT_EQ(c->n_vocab, 48);  // from token_embd
}

TEST(ModelConfigTest, InconsistentHeads) {
  TinyModelSpec s;
  s.extra_keys["bitnet.attention.head_count_kv"] = gguf::Value::U32(3);
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("head_count_kv"), std::string::npos) << c.status();
}

TEST(ModelConfigTest, WrongTensorShapeIsNamed) {
  TinyModelSpec s;
  s.reshape["blk.1.attn_k.weight"] = {64, 48};
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("blk.1.attn_k.weight"), std::string::npos) << c.status();
}

TEST(ModelConfigTest, MissingTensorIsNamed) {
  TinyModelSpec s;
  s.drop_tensors = {"blk.2.ffn_sub_norm.weight"};
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("blk.2.ffn_sub_norm.weight"), std::string::npos)
      << c.status();
}

TEST(ModelConfigTest, VocabMismatchWithTokenizer) {
  TinyModelSpec s;
  s.extra_keys["tokenizer.ggml.tokens"] = gguf::Value::StrArr({"a", "b", "c"});
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("tokenizer"), std::string::npos) << c.status();
}

TEST(ModelConfigTest, RopeScaling) {
  TinyModelSpec lin;
  lin.extra_keys["bitnet.rope.scaling.type"] = gguf::Value::Str("linear");
  lin.extra_keys["bitnet.rope.scaling.factor"] = gguf::Value::F32(4.f);
  auto c = ConfigOf(lin);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FLOAT_EQ(c->rope_freq_scale, 0.25f);

  TinyModelSpec yarn;
  yarn.extra_keys["bitnet.rope.scaling.type"] = gguf::Value::Str("yarn");
  yarn.extra_keys["bitnet.rope.scaling.factor"] = gguf::Value::F32(4.f);
  EXPECT_EQ(ConfigOf(yarn).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ModelConfigTest, OddRopeDimensionRejected) {
  TinyModelSpec s;
  s.extra_keys["bitnet.rope.dimension_count"] = gguf::Value::U32(15);
  auto c = ConfigOf(s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("rope.dimension_count"), std::string::npos);
}

}  // namespace
}  // namespace bitnet
