// bitnet-synth and its library: every arch x weight type loads and generates,
// the output is deterministic by seed, and the same seed gives the same
// ternary weights (and greedy tokens) in every encoding.
#include "tools/synth_model.h"

#include <cmath>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using testing::BinDir;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::TempDir;

// Small enough that every synth + run process takes milliseconds.
constexpr char kSmallShape[] =
    " --n-vocab 300 --n-embd 256 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 512 --n-ctx 64 -q";

synth::SynthSpec SmallSpec(ggml::Type type) {
  synth::SynthSpec s;
  s.n_vocab = 300;
  s.n_layer = 2;
  s.n_ff = 512;
  s.n_ctx = 64;
  s.ternary_type = type;
  s.embd_type = ggml::Type::kF16;
  s.seed = 42;
  return s;
}

TEST(SynthToolTest, EveryArchAndTypeLoadsAndGenerates) {
  TempDir dir;
  for (const char* arch : {"bitnet", "bitnet-b1.58", "llama"}) {
    for (const char* type : {"tq1_0", "tq2_0", "i2_s", "f32", "f16"}) {
      SCOPED_TRACE(std::string(arch) + " " + type);
      const std::string path = dir.File(std::string(arch) + "-" + type + ".gguf");
      const auto synth = RunCommand(BinDir() + "/bitnet-synth --out " + path + " --arch " + arch +
                                    " --type " + type + kSmallShape);
      ASSERT_EQ(synth.exit_code, 0) << synth.output;
      const auto run = RunCommand(BinDir() + "/bitnet-run --model " + path +
                                  " --prompt 'Hello there' -n 4 --temp 0 --threads 1 --json");
      ASSERT_EQ(run.exit_code, 0) << run.output;
      EXPECT_NE(run.output.find("\"generated_ids\":["), std::string::npos) << run.output;

      auto file = gguf::File::Open(path);
      ASSERT_TRUE(file.ok()) << file.status();
      auto config = ConfigFromGguf(**file);
      ASSERT_TRUE(config.ok()) << config.status();
      EXPECT_EQ(config->arch_name, arch);
      EXPECT_EQ(config->n_layer, 2);
      EXPECT_EQ(config->sub_norms, std::string(arch) != "llama");
      EXPECT_EQ(config->activation,
                std::string(arch) == "bitnet-b1.58" ? Activation::kRelu2 : Activation::kSilu);
      const gguf::TensorInfo* q = (*file)->FindTensor("blk.1.attn_q.weight");
      ASSERT_NE(q, nullptr);
      EXPECT_EQ(ggml::Traits(q->type).name, type);
    }
  }
}

TEST(SynthToolTest, SameSeedSameBytesOtherSeedOtherBytes) {
  TempDir dir;
  auto synth = [&](const std::string& name, const std::string& extra) {
    const auto r = RunCommand(BinDir() + "/bitnet-synth --out " + dir.File(name) + kSmallShape +
                              " --type i2_s " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return ReadFileBytes(dir.File(name));
  };
  const auto a = synth("a.gguf", "--seed 7");
  const auto b = synth("b.gguf", "--seed 7");
  const auto c = synth("c.gguf", "--seed 8");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the same seed gave different files";
  EXPECT_EQ(a.size(), c.size());
  EXPECT_FALSE(a == c) << "another seed gave the same file";
}

TEST(SynthToolTest, SentencePieceAndRealVocabulariesAreEmbedded) {
  TempDir dir;
  const std::string spm = dir.File("spm.gguf");
  auto r = RunCommand(BinDir() + "/bitnet-synth --out " + spm + " --arch llama --tokenizer spm" +
                      " --n-vocab 1000 --n-embd 256 --n-layer 1 --n-ff 512 --n-ctx 64 -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto file = gguf::File::Open(spm);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*(*file)->GetString("tokenizer.ggml.model"), "llama");
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->n_vocab(), 1000);
  // "▁the" is a piece: the prefix space joins the word.
  EXPECT_EQ((*tok)->Encode("the", true), (std::vector<TokenId>{1, (*tok)->Find("\xE2\x96\x81the")}));
  r = RunCommand(BinDir() + "/bitnet-run --model " + spm + " --prompt 'the end' -n 2 --temp 0 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // The real LLaMA-3 vocabulary: n_vocab follows it, ids are LLaMA-3's.
  const std::string l3 = dir.File("l3.gguf");
  r = RunCommand(BinDir() + "/bitnet-synth --out " + l3 + " --vocab " + testing::SourceDir() +
                 "/tests/data/llama3_tokenizer.bin --type f16 --n-embd 64 --n-head 1 --n-head-kv 1 --n-layer 1 "
                 "--n-ff 64 --n-ctx 64 -q");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  file = gguf::File::Open(l3);
  ASSERT_TRUE(file.ok()) << file.status();
  tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->n_vocab(), 128256);
  EXPECT_EQ((*tok)->Encode("Hello world", true), (std::vector<TokenId>{128000, 9906, 1917}));
  auto config = ConfigFromGguf(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->n_vocab, 128256);
}

TEST(SynthToolTest, BadArgumentsAreNamed) {
  TempDir dir;
  const std::string synth = BinDir() + "/bitnet-synth --out " + dir.File("x.gguf") + " ";
  const struct {
    std::string args, must_mention;
  } cases[] = {
      {"--n-embd 128", "n_embd"},
      {"--n-embd 100", "head_dim"},
      {"--n-vocab 100", "n_vocab"},
      {"--n-head 3", "n_embd"},
      {"--n-head 4 --n-head-kv 3", "n_head_kv"},
      {"--type q4_0", "--type"},
      {"--embd-type q6_k --n-embd 288 --type f32 --n-head 4", "n_embd"},
      {"--preset huge", "--preset"},
      {"--n-layer -1", "--n-layer"},
      {"--n-layer x", "--n-layer"},
      {"--tied --untied", "--untied"},
      {"--bogus 1", "--bogus"},
      {"--tokenizer wordpiece", "--tokenizer"},
      {"--tokenizer spm --n-vocab 258", "n_vocab"},
      {"--vocab /nonexistent.bin", "--vocab"},
  };
  for (const auto& c : cases) {
    const auto r = RunCommand(synth + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.must_mention), std::string::npos) << c.args << ": " << r.output;
  }
  const auto no_out = RunCommand(BinDir() + "/bitnet-synth");
  EXPECT_NE(no_out.exit_code, 0);
  EXPECT_NE(no_out.output.find("--out"), std::string::npos) << no_out.output;
  const auto help = RunCommand(BinDir() + "/bitnet-synth --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--n-embd"), std::string::npos);
}

// Codes and per-tensor scale of a linear tensor, whatever its type.
struct Ternary {
  std::vector<int8_t> codes;
  float scale = 0;
};

Ternary ReadTernary(const gguf::File& f, const gguf::TensorInfo& t) {
  Ternary out;
  const int64_t n = t.n_elements();
  if (ggml::Traits(t.type).ternary) {
    auto d = ggml::DecodeTernary(t.type, f.TensorData(t), n);
    EXPECT_TRUE(d.ok()) << d.status();
    out.codes = d->codes;
    for (float s : d->scales) out.scale = std::max(out.scale, s);
    return out;
  }
  std::vector<float> x(static_cast<size_t>(n));
  EXPECT_TRUE(ggml::Dequantize(t.type, f.TensorData(t), n, x.data()).ok());
  for (float v : x) {
    out.codes.push_back(static_cast<int8_t>(v > 0 ? 1 : v < 0 ? -1 : 0));
    out.scale = std::max(out.scale, std::fabs(v));
  }
  return out;
}

TEST(SynthModelTest, EveryTypeHoldsTheSameTernaryWeightsAndGivesTheSameTokens) {
  TempDir dir;
  const ggml::Type types[] = {ggml::Type::kF32, ggml::Type::kTQ1_0, ggml::Type::kTQ2_0,
                              ggml::Type::kI2S};
  std::vector<std::unique_ptr<gguf::File>> files;
  for (ggml::Type t : types) {
    const std::string path = dir.File(std::string(ggml::Traits(t).name) + ".gguf");
    ASSERT_TRUE(synth::WriteSynthModel(SmallSpec(t), path).ok());
    auto f = gguf::File::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    files.push_back(*std::move(f));
  }
  // Same codes and scales, tensor by tensor.
  const gguf::File& ref = *files[0];
  int linear = 0;
  for (const gguf::TensorInfo& t : ref.tensors()) {
    if (t.ne.size() != 2 || t.name == "token_embd.weight") continue;
    ++linear;
    const Ternary want = ReadTernary(ref, t);
    for (size_t i = 1; i < files.size(); ++i) {
      const gguf::TensorInfo* o = files[i]->FindTensor(t.name);
      ASSERT_NE(o, nullptr) << t.name;
      const Ternary got = ReadTernary(*files[i], *o);
      EXPECT_EQ(got.codes, want.codes) << t.name << " in " << ggml::Traits(types[i]).name;
      EXPECT_EQ(got.scale, want.scale) << t.name << " in " << ggml::Traits(types[i]).name;
    }
  }
  EXPECT_EQ(linear, 2 * 7);
  // All three code values occur, about equally often.
  const Ternary q = ReadTernary(ref, *ref.FindTensor("blk.0.ffn_up.weight"));
  int count[3] = {0, 0, 0};
  for (int8_t c : q.codes) ++count[c + 1];
  for (int c : count) EXPECT_NEAR(c / static_cast<double>(q.codes.size()), 1.0 / 3, 0.01);

  // Same greedy tokens with the BitNet per-token activations.
  std::vector<TokenId> first_ids;
  for (size_t i = 0; i < files.size(); ++i) {
    auto w = ModelWeights::Load(*files[i]);
    ASSERT_TRUE(w.ok()) << w.status();
    auto tok = Tokenizer::FromGguf(*files[i]);
    ASSERT_TRUE(tok.ok());
    auto engine = StageEngine::Create(*w, EngineOptions{});
    ASSERT_TRUE(engine.ok());
    GenerateOptions g;
    g.sampling = GreedySamplingParams();
    g.max_new_tokens = 12;
    const std::vector<TokenId> prompt = (*tok)->Encode("The quick brown fox", true);
    auto r = Generate(**engine, **tok, prompt, g);
    ASSERT_TRUE(r.ok()) << r.status();
    if (i == 0) {
      first_ids = r->ids;
    } else {
      EXPECT_EQ(r->ids, first_ids) << ggml::Traits(types[i]).name;
    }
  }
}

TEST(SynthModelTest, StreamedTensorsEqualInMemoryTensors) {
  // The writer's streamed path must produce exactly the in-memory path's bytes.
  gguf::Writer a, b;
  std::vector<uint8_t> data(256 * 3 * 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  a.SetValue("k", gguf::Value::U32(1));
  b.SetValue("k", gguf::Value::U32(1));
  ASSERT_TRUE(a.AddTensor("t", {256, 3}, ggml::Type::kF32, data).ok());
  ASSERT_TRUE(a.AddTensor("u", {5}, ggml::Type::kF32, std::vector<uint8_t>(20, 9)).ok());
  ASSERT_TRUE(b.AddStreamedTensor("t", {256, 3}, ggml::Type::kF32,
                                  [&](const gguf::Writer::ChunkSink& sink) {
                                    for (size_t off = 0; off < data.size(); off += 1000) {
                                      const size_t n = std::min<size_t>(1000, data.size() - off);
                                      if (auto s = sink(data.data() + off, n); !s.ok()) return s;
                                    }
                                    return absl::OkStatus();
                                  })
                  .ok());
  ASSERT_TRUE(b.AddTensor("u", {5}, ggml::Type::kF32, std::vector<uint8_t>(20, 9)).ok());
  auto sa = a.Serialize();
  auto sb = b.Serialize();
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_TRUE(*sa == *sb);
  // A filler that writes the wrong amount is an error, not a corrupt file.
  gguf::Writer c;
  ASSERT_TRUE(c.AddStreamedTensor("t", {256}, ggml::Type::kF32,
                                  [](const gguf::Writer::ChunkSink& sink) {
                                    const std::vector<uint8_t> few(10);
                                    return sink(few.data(), few.size());
                                  })
                  .ok());
  EXPECT_FALSE(c.Serialize().ok());
}

TEST(SynthModelTest, TinyPresetTokenizerIsTheOracles) {
  SKIP_WITHOUT_ORACLE();
  TempDir dir;
  const std::string path = dir.File("tiny.gguf");
  ASSERT_TRUE(synth::WriteSynthModel(*synth::Preset("tiny"), path).ok());
  auto ours = gguf::File::Open(path);
  auto oracle = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
  ASSERT_TRUE(ours.ok() && oracle.ok());
  for (const char* key :
       {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token",
        "bitnet.embedding_length", "bitnet.block_count", "bitnet.feed_forward_length",
        "bitnet.attention.head_count", "bitnet.attention.head_count_kv", "bitnet.context_length",
        "bitnet.rope.dimension_count", "bitnet.rope.freq_base",
        "bitnet.attention.layer_norm_rms_epsilon", "bitnet.vocab_size", "general.file_type"}) {
    const gguf::Value* a = (*ours)->Find(key);
    const gguf::Value* b = (*oracle)->Find(key);
    ASSERT_NE(a, nullptr) << key;
    ASSERT_NE(b, nullptr) << key;
    EXPECT_TRUE(*a == *b) << key;
  }
  // Same tensor names and shapes (types differ: our embedding is F16).
  ASSERT_EQ((*ours)->tensors().size(), (*oracle)->tensors().size());
  for (const gguf::TensorInfo& t : (*oracle)->tensors()) {
    const gguf::TensorInfo* o = (*ours)->FindTensor(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(o->ne, t.ne) << t.name;
  }
}

TEST(SynthModelTest, PresetsAreValidAndReportSizes) {
  for (const std::string& name : synth::PresetNames()) {
    auto spec = synth::Preset(name);
    ASSERT_TRUE(spec.ok()) << name;
    for (ggml::Type t : {ggml::Type::kTQ1_0, ggml::Type::kTQ2_0, ggml::Type::kI2S}) {
      spec->ternary_type = t;
      EXPECT_TRUE(synth::ValidateSpec(*spec).ok()) << name;
      EXPECT_TRUE(synth::TensorDataBytes(*spec).ok()) << name;
    }
  }
  auto b2 = *synth::Preset("2b4t");
  EXPECT_EQ(b2.arch, "bitnet-b1.58");
  EXPECT_EQ(b2.n_embd, 2560);
  EXPECT_EQ(b2.n_layer, 30);
  EXPECT_EQ(b2.n_head_kv, 5);
  EXPECT_EQ(b2.n_ff, 6912);
  EXPECT_EQ(b2.n_vocab, 128256);
  b2.ternary_type = ggml::Type::kI2S;
  // 2B-4T in I2_S: ~2.08e9 ternary weights at 2 bits plus a 656 MB F16
  // embedding: about 1.18 GB, like the released file.
  const double gb = static_cast<double>(*synth::TensorDataBytes(b2)) / 1e9;
  EXPECT_GT(gb, 1.1);
  EXPECT_LT(gb, 1.25);
  const auto b100 = *synth::Preset("100b");
  EXPECT_EQ(b100.n_embd, 8192);
  EXPECT_EQ(b100.n_layer, 72);
  EXPECT_EQ(b100.n_ff, 45568);
  EXPECT_FALSE(synth::Preset("13b").ok());
}

TEST(SynthModelTest, ThreadsDoNotChangeTheBytes) {
  TempDir dir;
  // Big enough that token_embd and the FFN tensors span more than one slice
  // (4 Mi elements), so slices are made on several threads.
  auto spec = SmallSpec(ggml::Type::kI2S);
  spec.n_vocab = 20000;
  spec.n_ff = 256 * 80;
  spec.n_layer = 1;
  ASSERT_TRUE(synth::WriteSynthModel(spec, dir.File("1.gguf"), nullptr, 1).ok());
  ASSERT_TRUE(synth::WriteSynthModel(spec, dir.File("3.gguf"), nullptr, 3).ok());
  EXPECT_TRUE(ReadFileBytes(dir.File("1.gguf")) == ReadFileBytes(dir.File("3.gguf")));
  // Multi-slice I2_S tensors still decode to codes in {-1,0,1} with the scale.
  auto f = gguf::File::Open(dir.File("3.gguf"));
  ASSERT_TRUE(f.ok());
  const gguf::TensorInfo* up = (*f)->FindTensor("blk.0.ffn_up.weight");
  const Ternary t = ReadTernary(**f, *up);
  EXPECT_EQ(t.scale, ggml::RoundToHalf(0.02f));
}

TEST(SynthModelTest, ProgressReachesTheEnd) {
  TempDir dir;
  synth::Progress last;
  int calls = 0;
  const auto spec = SmallSpec(ggml::Type::kTQ1_0);
  ASSERT_TRUE(synth::WriteSynthModel(spec, dir.File("p.gguf"), [&](const synth::Progress& p) {
                ++calls;
                EXPECT_LE(p.bytes_done, p.bytes_total);
                last = p;
              }).ok());
  EXPECT_GT(calls, 10);
  EXPECT_EQ(last.bytes_done, *synth::TensorDataBytes(spec));
  EXPECT_EQ(last.tensors_done, last.tensors_total);
}

TEST(SynthModelTest, UntiedWritesAnOutputTensor) {
  TempDir dir;
  auto spec = SmallSpec(ggml::Type::kTQ2_0);
  spec.arch = "llama";
  spec.tied = false;
  spec.embd_type = ggml::Type::kQ6K;
  ASSERT_TRUE(synth::WriteSynthModel(spec, dir.File("u.gguf")).ok());
  auto f = gguf::File::Open(dir.File("u.gguf"));
  ASSERT_TRUE(f.ok());
  auto config = ConfigFromGguf(**f);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->tied_output);
  EXPECT_EQ((*f)->FindTensor("output.weight")->type, ggml::Type::kQ6K);
  EXPECT_EQ(config->rope_type, RopeType::kNorm);
}

}  // namespace
}  // namespace bitnet
