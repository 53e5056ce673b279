// bitnet-import-trained's library: a small export written here (the format
// of tools/train/export.py) becomes a GGUF that loads, holds exactly the
// trained codes and scales in every ternary type, and malformed exports are
// refused with a message naming the problem.
#include "tools/trained_import.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using Json = nlohmann::json;

// A 1-layer bitnet-b1.58 export: n_embd 256, 2 heads of 128 (1 KV head),
// n_ff 256, 260 tokens (256 bytes, one merge, BOS, EOS, one padding).
struct Export {
  Json meta;
  std::vector<uint8_t> bin;

  void AddTensor(const std::string& name, std::vector<int64_t> shape, const void* data,
                 size_t nbytes, bool ternary, float scale = 0) {
    while (bin.size() % 32 != 0) bin.push_back(0);
    Json t = {{"name", name}, {"shape", shape}, {"offset", bin.size()}, {"nbytes", nbytes},
              {"kind", ternary ? "ternary" : "float"}, {"dtype", ternary ? "i8" : "f32"}};
    if (ternary) t["scale"] = scale;
    const auto* p = static_cast<const uint8_t*>(data);
    bin.insert(bin.end(), p, p + nbytes);
    meta["tensors"].push_back(t);
  }

  void Write(const testing::TempDir& dir) const {
    std::ofstream(dir.File("m.json")) << meta.dump();
    testing::WriteFileBytes(dir.File("m.bin"), bin);
  }
};

// Deterministic codes for a tensor: a pattern of -1, 0, 1.
std::vector<int8_t> Codes(int64_t n, int salt) {
  std::vector<int8_t> c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) c[static_cast<size_t>(i)] = static_cast<int8_t>((i * 7 + salt) % 3 - 1);
  return c;
}

Export MakeExport() {
  constexpr int64_t d = 256, ff = 256, vocab = 260, kv = 128;
  Export e;
  // GPT-2's byte-to-unicode mapping: bytes 33-126, 161-172 and 174-255 map
  // to themselves, the others to U+0100 onwards, in byte order.
  std::vector<std::string> tokens(256);
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const uint32_t cp = keep ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(next++);
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    tokens[static_cast<size_t>(b)] = s;
  }
  tokens.push_back("th");
  tokens.push_back("<s>");
  tokens.push_back("</s>");
  tokens.push_back("[PAD259]");
  std::vector<int> types(vocab, 1);
  types[257] = types[258] = 3;
  types[259] = 5;
  e.meta = {{"format", "bitnet-trained"},
            {"version", 1},
            {"arch", "bitnet-b1.58"},
            {"name", "unit-test"},
            {"hparams",
             {{"n_vocab", vocab}, {"n_embd", d}, {"n_layer", 1}, {"n_head", 2}, {"n_head_kv", 1},
              {"n_ff", ff}, {"n_ctx", 64}, {"rope_base", 10000.0}, {"rms_eps", 1e-5}}},
            {"tokenizer",
             {{"model", "gpt2"}, {"pre", "gpt-2"}, {"tokens", tokens}, {"token_types", types},
              {"merges", {"t h"}}, {"bos", 257}, {"eos", 258}, {"add_bos", true}}},
            {"tensors", Json::array()},
            {"provenance", {{"data", "unit test"}}}};
  std::vector<float> embd(static_cast<size_t>(vocab * d));
  for (size_t i = 0; i < embd.size(); ++i) embd[i] = 0.001f * static_cast<float>(i % 97) - 0.05f;
  e.AddTensor("token_embd.weight", {vocab, d}, embd.data(), embd.size() * 4, false);
  std::vector<float> ones(static_cast<size_t>(ff > d ? ff : d), 1.0f);
  e.AddTensor("output_norm.weight", {d}, ones.data(), d * 4, false);
  e.AddTensor("blk.0.attn_norm.weight", {d}, ones.data(), d * 4, false);
  e.AddTensor("blk.0.attn_sub_norm.weight", {d}, ones.data(), d * 4, false);
  e.AddTensor("blk.0.ffn_norm.weight", {d}, ones.data(), d * 4, false);
  e.AddTensor("blk.0.ffn_sub_norm.weight", {ff}, ones.data(), ff * 4, false);
  struct Lin {
    const char* name;
    int64_t rows, cols;
    float scale;
  };
  // Scales are fp16 values, as the trainer writes them.
  const Lin lins[] = {{"attn_q", d, d, 0.03125f},      {"attn_k", kv, d, 0.0234375f},
                      {"attn_v", kv, d, 0.046875f},    {"attn_output", d, d, 0.015625f},
                      {"ffn_gate", ff, d, 0.02734375f}, {"ffn_up", ff, d, 0.03515625f},
                      {"ffn_down", d, ff, 0.01953125f}};
  int salt = 0;
  for (const Lin& l : lins) {
    std::vector<int8_t> c = Codes(l.rows * l.cols, salt++);
    e.AddTensor(std::string("blk.0.") + l.name + ".weight", {l.rows, l.cols}, c.data(), c.size(),
                true, l.scale);
  }
  return e;
}

TEST(TrainedImportTest, EveryTernaryTypeHoldsTheTrainedWeightsExactly) {
  const Export e = MakeExport();
  for (ggml::Type type : {ggml::Type::kTQ2_0, ggml::Type::kTQ1_0, ggml::Type::kI2S}) {
    SCOPED_TRACE(std::string(ggml::Traits(type).name));
    testing::TempDir dir;
    e.Write(dir);
    trained::ImportOptions o;
    o.ternary_type = type;
    ASSERT_TRUE(trained::ImportTrained(dir.File("m.json"), dir.File("m.bin"), dir.File("m.gguf"), o)
                    .ok());
    auto f = gguf::File::Open(dir.File("m.gguf"));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(*(*f)->GetString("general.architecture"), "bitnet-b1.58");
    EXPECT_EQ(*(*f)->GetInt("bitnet-b1.58.attention.head_count_kv"), 1);
    EXPECT_EQ((*f)->FindTensor("token_embd.weight")->type, ggml::Type::kF16);
    EXPECT_EQ((*f)->FindTensor("blk.0.attn_norm.weight")->type, ggml::Type::kF32);
    int salt = 0;
    for (const char* name : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                             "ffn_down"}) {
      const gguf::TensorInfo* t = (*f)->FindTensor(std::string("blk.0.") + name + ".weight");
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->type, type);
      auto dec = ggml::DecodeTernary(type, (*f)->TensorData(*t), t->n_elements());
      ASSERT_TRUE(dec.ok()) << dec.status();
      EXPECT_EQ(dec->codes, Codes(t->n_elements(), salt++)) << name;
      const float want = e.meta["tensors"][6 + salt - 1]["scale"].get<float>();
      for (float s : dec->scales) EXPECT_EQ(s, want) << name;
    }
    auto w = ModelWeights::Load(**f);
    ASSERT_TRUE(w.ok()) << w.status();
    EXPECT_EQ((*w)->config.n_ff, 256);
    EXPECT_TRUE((*w)->config.tied_output);
    auto tok = Tokenizer::FromGguf(**f);
    ASSERT_TRUE(tok.ok()) << tok.status();
    EXPECT_EQ(Tokenizer::FromGguf(**f).value()->Encode("the", true),
              (std::vector<TokenId>{257, 256, 'e'}));
  }
}

TEST(TrainedImportTest, EmbeddingTypeIsSelectable) {
  const Export e = MakeExport();
  testing::TempDir dir;
  e.Write(dir);
  trained::ImportOptions o;
  o.embd_type = ggml::Type::kF32;
  ASSERT_TRUE(
      trained::ImportTrained(dir.File("m.json"), dir.File("m.bin"), dir.File("m.gguf"), o).ok());
  auto f = gguf::File::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok());
  const gguf::TensorInfo* t = (*f)->FindTensor("token_embd.weight");
  EXPECT_EQ(t->type, ggml::Type::kF32);
  float first;
  std::memcpy(&first, (*f)->TensorData(*t), 4);
  EXPECT_EQ(first, -0.05f);
}

// Each corruption must be refused with a message containing `expect`, and
// leave no output file behind.
void ExpectRefused(const Export& e, const std::string& expect) {
  testing::TempDir dir;
  e.Write(dir);
  absl::Status s =
      trained::ImportTrained(dir.File("m.json"), dir.File("m.bin"), dir.File("m.gguf"), {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(expect), std::string::npos) << s;
  EXPECT_FALSE(std::ifstream(dir.File("m.gguf")).good());
}

TEST(TrainedImportTest, MalformedExportsAreRefused) {
  {
    Export e = MakeExport();
    e.meta["format"] = "something-else";
    ExpectRefused(e, "not a bitnet-trained version 1 export");
  }
  {
    Export e = MakeExport();
    e.meta["hparams"].erase("n_ff");
    ExpectRefused(e, "missing \"n_ff\"");
  }
  {
    Export e = MakeExport();
    e.meta["hparams"]["n_head"] = "two";
    ExpectRefused(e, "\"n_head\" has the wrong type");
  }
  {
    Export e = MakeExport();  // a code outside {-1, 0, 1}
    const uint64_t off = e.meta["tensors"][6]["offset"].get<uint64_t>();
    e.bin[off + 5] = 2;
    ExpectRefused(e, "is not in {-1, 0, 1}");
  }
  {
    Export e = MakeExport();  // bytes past the end of the .bin
    e.meta["tensors"][6]["offset"] = e.bin.size();
    ExpectRefused(e, "outside the .bin file");
  }
  {
    Export e = MakeExport();  // shape and byte count disagree
    e.meta["tensors"][6]["shape"] = {256, 128};
    ExpectRefused(e, "nbytes is");
  }
  {
    Export e = MakeExport();  // a scale TQ2_0 cannot store (not an fp16 value)
    e.meta["tensors"][6]["scale"] = 0.0312345678;
    ExpectRefused(e, "cannot store this tensor exactly");
  }
  {
    Export e = MakeExport();  // a tensor the architecture needs is missing
    e.meta["tensors"].erase(e.meta["tensors"].size() - 1);
    ExpectRefused(e, "ffn_down");
  }
  {
    testing::TempDir dir;
    std::ofstream(dir.File("m.json")) << "{ not json";
    testing::WriteFileBytes(dir.File("m.bin"), {});
    absl::Status s =
        trained::ImportTrained(dir.File("m.json"), dir.File("m.bin"), dir.File("m.gguf"), {});
    EXPECT_NE(s.message().find("is not a JSON object"), std::string::npos) << s;
  }
  {
    absl::Status s = trained::ImportTrained("/nonexistent/m.json", "/nonexistent/m.bin",
                                            "/nonexistent/m.gguf", {});
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  }
}

}  // namespace
}  // namespace bitnet
