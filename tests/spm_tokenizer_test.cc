// SentencePiece (`llama`) tokenizer tests: merge order by score, the prefix
// space, byte fallback, special tokens, decoding, GGUF metadata defaults and
// round trips on random text.
#include "model/spm_tokenizer.h"

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "model/tokenizer_metadata.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"
#include "tools/synth_model.h"

namespace bitnet {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr TokenId kUnk = 0, kBos = 1, kEos = 2;
constexpr TokenId ByteId(int b) { return 3 + b; }  // "<0xXX>" tokens follow the specials

// <unk>, <s>, </s>, the 256 byte tokens, then `extra` (text, score) normal tokens.
TokenizerData SpmVocab(const std::vector<std::pair<std::string, float>>& extra) {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>"};
  d.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  d.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    d.tokens.push_back(spm::ByteTokenText(static_cast<uint8_t>(b)));
    d.types.push_back(TokenType::kByte);
    d.scores.push_back(0);
  }
  for (const auto& [text, score] : extra) {
    d.tokens.push_back(text);
    d.types.push_back(TokenType::kNormal);
    d.scores.push_back(score);
  }
  d.unk = kUnk;
  d.bos = kBos;
  d.eos = kEos;
  d.add_bos = true;
  d.add_space_prefix = true;
  return d;
}

std::unique_ptr<Tokenizer> MustCreate(TokenizerData data) {
  auto tok = Tokenizer::Create(std::move(data));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// Ids of the extra tokens, in SpmVocab order.
constexpr TokenId kSpace = 259, kA = 260, kB = 261, kC = 262, kAb = 263, kBc = 264, kSpaceA = 265;

std::vector<std::pair<std::string, float>> AbcVocab() {
  return {{"\xE2\x96\x81", -1}, {"a", -2}, {"b", -3}, {"c", -4},
          {"ab", -10}, {"bc", -5}, {"\xE2\x96\x81" "a", -20}};
}

TEST(SpmTokenizer, HighestScoreMergesFirstNotLeftmost) {
  auto tok = MustCreate(SpmVocab(AbcVocab()));
  ASSERT_NE(tok, nullptr);
  // "▁abc": "bc" (-5) beats "ab" (-10) and "▁a" (-20), then "▁a" joins.
  EXPECT_THAT(tok->Encode("abc", true), ElementsAre(kBos, kSpaceA, kBc));
  // Without "bc", "ab" (-10) goes before "▁a" (-20) and blocks it.
  auto v = AbcVocab();
  v[5].first = "zz";
  auto tok2 = MustCreate(SpmVocab(v));
  ASSERT_NE(tok2, nullptr);
  EXPECT_THAT(tok2->Encode("abc", false), ElementsAre(kSpace, kAb, kC));
}

TEST(SpmTokenizer, EqualScoresMergeLeftmostFirst) {
  const TokenId a = 259, aa = 260;
  TokenizerData d = SpmVocab({{"a", -1}, {"aa", -2}});
  d.add_space_prefix = false;
  auto bare = MustCreate(d);
  ASSERT_NE(bare, nullptr);
  EXPECT_THAT(bare->Encode("aaa", false), ElementsAre(aa, a));
}

TEST(SpmTokenizer, SpacesBecomeTheMetaSymbolAndAPrefixIsAdded) {
  auto tok = MustCreate(SpmVocab(AbcVocab()));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a b", false), ElementsAre(kSpaceA, kSpace, kB));
  TokenizerData d = SpmVocab(AbcVocab());
  d.add_space_prefix = false;
  auto bare = MustCreate(d);
  ASSERT_NE(bare, nullptr);
  EXPECT_THAT(bare->Encode("a b", false), ElementsAre(kA, kSpace, kB));
}

TEST(SpmTokenizer, UnknownCharactersFallBackToBytes) {
  auto tok = MustCreate(SpmVocab(AbcVocab()));
  ASSERT_NE(tok, nullptr);
  // "é" is C3 A9 and not in the vocabulary.
  EXPECT_THAT(tok->Encode("a\xC3\xA9", false), ElementsAre(kSpaceA, ByteId(0xC3), ByteId(0xA9)));
  EXPECT_EQ(tok->Decode({kSpaceA, ByteId(0xC3), ByteId(0xA9)}), " a\xC3\xA9");
}

TEST(SpmTokenizer, WithoutByteTokensUnknownCharactersBecomeUnk) {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"};
  d.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
             TokenType::kNormal};
  d.unk = 0;
  d.bos = 1;
  d.eos = 2;
  auto tok = MustCreate(d);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a\xC3\xA9", false), ElementsAre(3, 4, 0, 0));
}

TEST(SpmTokenizer, SpecialTokensSplitTheTextAndRestartThePrefix) {
  auto tok = MustCreate(SpmVocab(AbcVocab()));
  ASSERT_NE(tok, nullptr);
  // llama.cpp puts the prefix space before the text after a special token too.
  EXPECT_THAT(tok->Encode("a</s>a", false), ElementsAre(kSpaceA, kEos, kSpaceA));
  EXPECT_THAT(tok->Encode("a</s>a", false, /*parse_special=*/false),
              ElementsAre(kSpaceA, ByteId('<'), ByteId('/'), ByteId('s'), ByteId('>'), kA));
  EXPECT_TRUE(tok->IsEndOfGeneration(kEos));
  EXPECT_EQ(tok->Decode({kBos, kSpaceA, kEos}), " a");
  EXPECT_EQ(tok->Decode({kBos, kSpaceA, kEos}, /*render_special=*/true), "<s> a</s>");
}

TEST(SpmTokenizer, FindUsesVocabularyText) {
  auto tok = MustCreate(SpmVocab(AbcVocab()));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->Find("\xE2\x96\x81" "a"), kSpaceA);
  EXPECT_EQ(tok->Find("<0x41>"), ByteId(0x41));
  EXPECT_EQ(tok->Find("zzz"), -1);
}

TEST(SpmTokenizer, RandomTextRoundTrips) {
  // Every character decomposes to byte tokens at worst, so decoding gives
  // back the text behind the prefix space.
  auto tok = MustCreate(SpmVocab({{"\xE2\x96\x81", -1}, {"th", -2}, {"\xE2\x96\x81" "th", -3},
                                  {"e", -4}, {"the", -5}, {"\xE2\x96\x81" "the", -6},
                                  {"\xC3\xA9", -7}, {"\xF0\x9F\x98\x80", -8}}));
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> alphabet = {"t", "h", "e", " ", "\xC3\xA9", "\xF0\x9F\x98\x80",
                                             "\xE4\xB8\xAD", "\n", "x", "\xE2\x96\x81"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(0, 24)(rng);
    for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
    const std::vector<TokenId> ids = tok->Encode(text, false);
    // A literal "▁" in the input decodes as a space, as in SentencePiece.
    std::string expected = " " + text;
    for (size_t p; (p = expected.find("\xE2\x96\x81")) != std::string::npos;) expected.replace(p, 3, " ");
    EXPECT_EQ(tok->Decode(ids), text.empty() ? "" : expected) << "text: " << text;
  }
}

TEST(SpmTokenizer, ScoresMustMatchTheVocabulary) {
  TokenizerData d = SpmVocab(AbcVocab());
  d.scores.pop_back();
  auto tok = Tokenizer::Create(d);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("scores"));
}

// GGUF metadata: the llama defaults (<unk> 0, <s> 1, </s> 2, add_bos, the
// prefix space) and the keys that override them.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGguf(gguf::Writer& writer, std::vector<uint8_t>* bytes) {
  auto serialized = writer.Serialize();
  if (!serialized.ok()) return serialized.status();
  *bytes = *std::move(serialized);
  auto file = gguf::File::FromBuffer(bytes->data(), bytes->size());
  if (!file.ok()) return file.status();
  return Tokenizer::FromGguf(**file);
}

gguf::Writer SpmWriter() {
  const TokenizerData d = SpmVocab(AbcVocab());
  gguf::Writer w;
  w.SetValue("tokenizer.ggml.model", gguf::Value::Str("llama"));
  w.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr(d.tokens));
  std::vector<int32_t> types;
  for (TokenType t : d.types) types.push_back(static_cast<int32_t>(t));
  w.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr(types));
  w.SetValue("tokenizer.ggml.scores", gguf::Value::F32Arr(d.scores));
  return w;
}

TEST(SpmTokenizerGguf, DefaultsFollowLlamaCpp) {
  gguf::Writer w = SpmWriter();
  std::vector<uint8_t> bytes;
  auto tok = LoadGguf(w, &bytes);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE((*tok)->add_bos());
  EXPECT_EQ((*tok)->bos(), kBos);
  EXPECT_EQ((*tok)->eos(), kEos);
  EXPECT_THAT((*tok)->Encode("abc", true), ElementsAre(kBos, kSpaceA, kBc));
}

TEST(SpmTokenizerGguf, KeysOverrideTheDefaults) {
  gguf::Writer w = SpmWriter();
  w.SetValue("tokenizer.ggml.add_space_prefix", gguf::Value::Bool(false));
  w.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Bool(false));
  w.SetValue("tokenizer.ggml.eos_token_id", gguf::Value::U32(1));
  std::vector<uint8_t> bytes;
  auto tok = LoadGguf(w, &bytes);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE((*tok)->add_bos());
  EXPECT_EQ((*tok)->eos(), 1);
  EXPECT_THAT((*tok)->Encode("abc", true), ElementsAre(kA, kBc));
}

TEST(SpmTokenizerGguf, MistypedScoresAreAClearError) {
  gguf::Writer w = SpmWriter();
  w.SetValue("tokenizer.ggml.scores", gguf::Value::Str("high"));
  std::vector<uint8_t> bytes;
  auto tok = LoadGguf(w, &bytes);
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("tokenizer.ggml.scores"));
}

// llama.cpp's own encodings (tests/data/spm_vectors.jsonl, written by
// tools/llamacpp_check/spm_vectors.sh through node-llama-cpp) of 678 strings
// with bitnet-synth's SentencePiece vocabulary, loaded from the same GGUF
// metadata llama.cpp read.
TEST(SpmTokenizerLlamaCpp, EncodesEveryStringAsLlamaCppDoes) {
  absl::StatusOr<TokenizerData> data = synth::SyntheticSpmTokenizer(1000);
  ASSERT_TRUE(data.ok()) << data.status();
  gguf::Writer w;
  SetTokenizerMetadata(*data, w);
  std::vector<uint8_t> bytes;
  auto tok = LoadGguf(w, &bytes);
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::ifstream in(testing::SourceDir() + "/tests/data/spm_vectors.jsonl");
  ASSERT_TRUE(in) << "tests/data/spm_vectors.jsonl is missing";
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json v = nlohmann::json::parse(line);
    const std::string text = v.at("text");
    EXPECT_EQ((*tok)->Encode(text, false, /*parse_special=*/false),
              v.at("ids").get<std::vector<TokenId>>())
        << "text: " << text;
    EXPECT_EQ((*tok)->Encode(text, false, /*parse_special=*/true),
              v.at("ids_special").get<std::vector<TokenId>>())
        << "text (special tokens parsed): " << text;
    // Decoding gives the text back behind the prefix space ("▁" reads as a space).
    std::string expected = text.empty() ? "" : " " + text;
    for (size_t p; (p = expected.find("\xE2\x96\x81")) != std::string::npos;) expected.replace(p, 3, " ");
    EXPECT_EQ((*tok)->Decode((*tok)->Encode(text, false, false)), expected) << "text: " << text;
    ++checked;
  }
  EXPECT_GE(checked, 600);
}

}  // namespace
}  // namespace bitnet
