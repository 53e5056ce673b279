// ModelWeights::Load: layer ranges, conversion of each tensor type to the
// runtime forms, and errors.
#include "model/model_weights.h"

#include <string>
#include <variant>

#include "gtest/gtest.h"
#include "kernels/float16.h"
#include "tests/test_support.h"
#include "tests/tiny_model.h"

namespace bitnet {
namespace {

using kernels::DenseActRounding;
using kernels::DenseMatrix;
using kernels::TernaryMatrix;
using testing::MakeTinyModel;
using testing::TinyModelSpec;

TEST(ModelWeightsTest, FullModelTiedShareEmbedding) {
  testing::TinyModel m = MakeTinyModel({});
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  const ModelWeights& mw = **w;
  EXPECT_TRUE(mw.is_first());
  EXPECT_TRUE(mw.is_last());
  ASSERT_TRUE(mw.token_embd.has_value());
  EXPECT_EQ(mw.token_embd->rows, 48);
  EXPECT_EQ(mw.token_embd->cols, 64);
  EXPECT_EQ(mw.token_embd->act_rounding, DenseActRounding::kNone);
  EXPECT_EQ(mw.layers.size(), 3u);
  // One copy of the embedding serves as the tied output projection.
  EXPECT_FALSE(mw.lm_head.has_value());
  EXPECT_EQ(mw.head(), &*mw.token_embd);
  EXPECT_EQ(mw.output_norm.size(), 64u);
  EXPECT_GT(mw.memory_bytes(), 0u);
}

TEST(ModelWeightsTest, TernaryValuedFloatBecomesTernary) {
  for (ggml::Type t : {ggml::Type::kF32, ggml::Type::kF16}) {
    TinyModelSpec s;
    s.linear_type = t;
    testing::TinyModel m = MakeTinyModel(s);
    auto w = ModelWeights::Load(*m.file);
    ASSERT_TRUE(w.ok()) << w.status();
    const Linear& wq = (*w)->layers[0].wq;
    const auto* tm = std::get_if<TernaryMatrix>(&wq.w);
    ASSERT_NE(tm, nullptr);
    EXPECT_EQ(tm->rows, 64);
    EXPECT_EQ(tm->cols, 64);
    ASSERT_EQ(tm->scales.size(), 1u);
    EXPECT_EQ(tm->scales[0], kernels::RoundToHalf(0.08f));
    EXPECT_EQ(wq.float_act_rounding,
              t == ggml::Type::kF16 ? DenseActRounding::kF16 : DenseActRounding::kNone);
    // The codes reproduce the stored values exactly.
    const gguf::TensorInfo* info = m.file->FindTensor("blk.0.attn_q.weight");
    ASSERT_NE(info, nullptr);
    std::vector<float> raw(static_cast<size_t>(info->n_elements()));
    ASSERT_TRUE(ggml::Dequantize(info->type, m.file->TensorData(*info), info->n_elements(),
                                 raw.data())
                    .ok());
    for (int64_t r = 0; r < tm->rows; ++r) {
      for (int64_t c = 0; c < tm->cols; ++c) {
        ASSERT_EQ(tm->code(r, c) * tm->scale(r, 0), raw[r * tm->cols + c]) << r << "," << c;
      }
    }
  }
}

TEST(ModelWeightsTest, NonTernaryFloatStaysDense) {
  for (ggml::Type t : {ggml::Type::kF32, ggml::Type::kF16}) {
    TinyModelSpec s;
    s.linear_type = t;
    s.dense_linear = true;
    testing::TinyModel m = MakeTinyModel(s);
    auto w = ModelWeights::Load(*m.file);
    ASSERT_TRUE(w.ok()) << w.status();
    const auto* d = std::get_if<DenseMatrix>(&(*w)->layers[1].w_down.w);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->rows, 64);
    EXPECT_EQ(d->cols, 96);
    EXPECT_EQ(d->act_rounding,
              t == ggml::Type::kF16 ? DenseActRounding::kF16 : DenseActRounding::kNone);
  }
}

TEST(ModelWeightsTest, StageRanges) {
  testing::TinyModel m = MakeTinyModel({});
  auto mid = ModelWeights::Load(*m.file, 1, 2);
  ASSERT_TRUE(mid.ok()) << mid.status();
  EXPECT_FALSE((*mid)->is_first());
  EXPECT_FALSE((*mid)->is_last());
  EXPECT_FALSE((*mid)->token_embd.has_value());
  EXPECT_EQ((*mid)->head(), nullptr);
  EXPECT_TRUE((*mid)->output_norm.empty());
  EXPECT_EQ((*mid)->layers.size(), 1u);

  auto last = ModelWeights::Load(*m.file, 2, -1);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE((*last)->is_last());
  EXPECT_FALSE((*last)->token_embd.has_value());
  ASSERT_TRUE((*last)->lm_head.has_value());  // tied: its own copy of token_embd
  EXPECT_EQ((*last)->head(), &*(*last)->lm_head);
  EXPECT_EQ((*last)->lm_head->rows, 48);

  const std::pair<int, int> bad_ranges[] = {{2, 1}, {0, 4}, {-1, 2}, {1, 1}};
  for (auto [b, e] : bad_ranges) {
    auto bad = ModelWeights::Load(*m.file, b, e);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << b << "," << e;
  }
}

TEST(ModelWeightsTest, UntiedOutput) {
  TinyModelSpec s;
  s.tied = false;
  testing::TinyModel m = MakeTinyModel(s);
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->lm_head.has_value());
  EXPECT_NE((*w)->lm_head->ToFloat(), (*w)->token_embd->ToFloat());
}

TEST(ModelWeightsTest, OutputScaleTensor) {
  TinyModelSpec s;
  s.extra_tensors["blk.0.attn_q.scale"] = {0.5f};
  testing::TinyModel m = MakeTinyModel(s);
  auto w = ModelWeights::Load(*m.file);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->layers[0].wq.out_scale, 0.5f);
  EXPECT_EQ((*w)->layers[0].wk.out_scale, 1.f);
}

TEST(ModelWeightsTest, BiasIsRefusedNotIgnored) {
  TinyModelSpec s;
  s.extra_tensors["blk.1.attn_v.bias"] = std::vector<float>(32, 0.1f);
  testing::TinyModel m = MakeTinyModel(s);
  auto w = ModelWeights::Load(*m.file);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(w.status().message().find("blk.1.attn_v.bias"), std::string::npos) << w.status();
}

// Every oracle encoding decodes to the same ternary weights (the README
// states the four files hold bit-identical ternary weights).
TEST(ModelWeightsTest, OracleEncodingsAgree) {
  SKIP_WITHOUT_ORACLE();
  struct Want {
    const char* type;
    DenseActRounding embd;
  };
  const Want files[] = {{"f32", DenseActRounding::kNone},
                        {"tq2_0", DenseActRounding::kQ8K},
                        {"tq1_0", DenseActRounding::kQ8K},
                        {"i2_s", DenseActRounding::kF16}};
  std::vector<std::vector<float>> first;  // effective weights of the f32 file
  for (const Want& want : files) {
    auto f = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-" + want.type + ".gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    auto w = ModelWeights::Load(**f);
    ASSERT_TRUE(w.ok()) << want.type << ": " << w.status();
    EXPECT_EQ((*w)->token_embd->act_rounding, want.embd) << want.type;
    std::vector<std::vector<float>> eff;
    for (const LayerWeights& l : (*w)->layers) {
      for (const Linear* lin : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
        const auto* t = std::get_if<TernaryMatrix>(&lin->w);
        ASSERT_NE(t, nullptr) << want.type;
        std::vector<float> v(static_cast<size_t>(t->rows * t->cols));
        for (int64_t r = 0; r < t->rows; ++r) {
          for (int64_t c = 0; c < t->cols; ++c) {
            v[r * t->cols + c] = t->code(r, c) * t->scale(r, c / t->scale_block);
          }
        }
        eff.push_back(std::move(v));
      }
    }
    if (first.empty()) {
      first = std::move(eff);
    } else {
      ASSERT_EQ(eff.size(), first.size());
      for (size_t i = 0; i < eff.size(); ++i) EXPECT_EQ(eff[i], first[i]) << want.type << " #" << i;
    }
  }
}

}  // namespace
}  // namespace bitnet
