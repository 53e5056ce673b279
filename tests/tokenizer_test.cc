// Tokenizer tests: the oracle's llama-tokenize vectors reproduced exactly,
// the pre-tokenizer splitters on tricky input, merge order, special tokens,
// decoding, the streaming detokenizer, and bad vocabularies.
#include "model/tokenizer.h"

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/bpe_byte_map.h"
#include "model/gguf.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

nlohmann::json LoadExpected() {
  std::ifstream in(testing::OracleDir() + "/expected.json");
  return nlohmann::json::parse(in);
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// The oracle model's tokenizer rebuilt from expected.json (token bytes) and
// the merge list in the oracle README, without reading the GGUF file.
TokenizerData OracleTokenizerData(const nlohmann::json& expected) {
  TokenizerData data;
  data.model = "gpt2";
  data.pre = "gpt-2";
  const auto& vocab = expected.at("vocab_bytes_hex");
  for (size_t id = 0; id < vocab.size(); ++id) {
    if (vocab[id].is_null()) {  // the two control tokens
      data.tokens.push_back(id == 288 ? "<s>" : "</s>");
      data.types.push_back(TokenType::kControl);
    } else {
      data.tokens.push_back(bpe::EncodeBytes(FromHex(vocab[id].get<std::string>())));
      data.types.push_back(TokenType::kNormal);
    }
  }
  data.merges = {"Ġ t", "h e",  "i n", "e r", "a n", "Ġ a",  "o n", "r e",
                 "Ġt he", "e n", "o r", "Ġ s", "Ġ w", "i s",  "a t", "o u",
                 "e d", "Ġ o", "i t", "Ġ b", "in g", "Ġ c",  "a r", "l l",
                 "Ġ f", "Ġ m", "Ġ p", "e s", "Ġ in", "a l", "Ġ h", "Ġ d"};
  data.bos = 288;
  data.eos = 289;
  data.add_bos = true;
  return data;
}

std::unique_ptr<Tokenizer> MustCreate(TokenizerData data) {
  auto tok = Tokenizer::Create(std::move(data));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// A vocabulary of the 256 byte tokens (id = byte) plus `extra` tokens, each
// given as raw bytes, with `merges` given as raw byte pairs.
TokenizerData ByteVocab(std::string pre, const std::vector<std::string>& extra = {},
                        const std::vector<std::pair<std::string, std::string>>& merges = {}) {
  TokenizerData data;
  data.model = "gpt2";
  data.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) data.tokens.push_back(bpe::ByteToText(static_cast<uint8_t>(b)));
  for (const std::string& t : extra) data.tokens.push_back(bpe::EncodeBytes(t));
  for (const auto& [l, r] : merges) {
    data.merges.push_back(bpe::EncodeBytes(l) + " " + bpe::EncodeBytes(r));
  }
  data.add_bos = false;
  return data;
}

// ---------------------------------------------------------------------------
// Oracle vectors (llama.cpp's llama-tokenize on the oracle model)

void ExpectOracleVectors(const Tokenizer& tok, const nlohmann::json& expected) {
  size_t checked = 0;
  for (const auto& v : expected.at("tokenizer").at("vectors")) {
    const std::string text = v.at("text").get<std::string>();
    ASSERT_EQ(FromHex(v.at("utf8_hex").get<std::string>()), text);
    const auto ids = v.at("ids").get<std::vector<TokenId>>();
    const auto ids_bos = v.at("ids_with_bos").get<std::vector<TokenId>>();
    EXPECT_THAT(tok.Encode(text, /*add_bos=*/false), ElementsAreArray(ids)) << "text: " << text;
    EXPECT_THAT(tok.Encode(text, /*add_bos=*/true), ElementsAreArray(ids_bos)) << "text: " << text;
    EXPECT_EQ(tok.Decode(ids), text);
    EXPECT_EQ(tok.Decode(ids_bos), text) << "BOS is a control token and must not render";
    ++checked;
  }
  EXPECT_GE(checked, 20u);
  for (const auto& p : expected.at("prompts")) {
    const auto ids = p.at("ids").get<std::vector<TokenId>>();
    const std::string text = p.at("text").is_null() ? "" : p.at("text").get<std::string>();
    EXPECT_THAT(tok.Encode(text, /*add_bos=*/true), ElementsAreArray(ids))
        << "prompt " << p.at("name");
  }
}

TEST(TokenizerOracle, VectorsFromExpectedJsonVocab) {
  SKIP_WITHOUT_ORACLE();
  const nlohmann::json expected = LoadExpected();
  auto tok = MustCreate(OracleTokenizerData(expected));
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->n_vocab(), 290);
  EXPECT_EQ(tok->bos(), 288);
  EXPECT_EQ(tok->eos(), 289);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_TRUE(tok->IsEndOfGeneration(289));
  EXPECT_FALSE(tok->IsEndOfGeneration(288));
  ExpectOracleVectors(*tok, expected);
}

TEST(TokenizerOracle, VectorsFromGgufFile) {
  SKIP_WITHOUT_ORACLE();
  const nlohmann::json expected = LoadExpected();
  auto file = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-f32.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->n_vocab(), 290);
  EXPECT_EQ((*tok)->bos(), 288);
  EXPECT_EQ((*tok)->eos(), 289);
  EXPECT_TRUE((*tok)->add_bos());
  EXPECT_EQ((*tok)->type(288), TokenType::kControl);
  EXPECT_EQ((*tok)->Find("Ġthe"), 264);
  ExpectOracleVectors(**tok, expected);
}

// ---------------------------------------------------------------------------
// GGUF metadata handling (files built in memory)

// A small llama-bpe tokenizer written as GGUF metadata, loaded back through
// gguf::File::FromBuffer; tests change `writer` first.
struct GgufTokenizer {
  GgufTokenizer() {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(bpe::ByteToText(static_cast<uint8_t>(b)));
    tokens.push_back("Ġt");
    tokens.push_back("<|begin_of_text|>");
    writer.SetValue("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
    writer.SetValue("tokenizer.ggml.pre", gguf::Value::Str("llama-bpe"));
    writer.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr(tokens));
    std::vector<int32_t> types(tokens.size(), 1);
    types.back() = 3;
    writer.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr(types));
    writer.SetValue("tokenizer.ggml.merges", gguf::Value::StrArr({"Ġ t"}));
    writer.SetValue("tokenizer.ggml.bos_token_id", gguf::Value::U32(257));
  }

  absl::StatusOr<std::unique_ptr<Tokenizer>> Load() {
    auto bytes = writer.Serialize();
    if (!bytes.ok()) return bytes.status();
    bytes_ = *std::move(bytes);
    auto file = gguf::File::FromBuffer(bytes_.data(), bytes_.size());
    if (!file.ok()) return file.status();
    return Tokenizer::FromGguf(**file);
  }

  gguf::Writer writer;

 private:
  std::vector<uint8_t> bytes_;
};

TEST(TokenizerGguf, LlamaBpeAddsBosByDefault) {
  GgufTokenizer g;
  auto tok = g.Load();
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE((*tok)->add_bos());
  EXPECT_THAT((*tok)->Encode("a t", true), ElementsAre(257, 'a', 256));
  EXPECT_THAT((*tok)->Encode("<|begin_of_text|>", false), ElementsAre(257));
}

TEST(TokenizerGguf, AddBosKeyOverridesDefault) {
  GgufTokenizer g;
  g.writer.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Bool(false));
  auto tok = g.Load();
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE((*tok)->add_bos());
  EXPECT_THAT((*tok)->Encode("a", true), ElementsAre('a'));
}

TEST(TokenizerGguf, OutOfRangeBosIsIgnoredThenMissing) {
  // llama.cpp ignores an out-of-range id; with add_bos on there is then no BOS.
  GgufTokenizer g;
  g.writer.SetValue("tokenizer.ggml.bos_token_id", gguf::Value::U32(5000));
  auto tok = g.Load();
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("bos_token_id"));
}

TEST(TokenizerGguf, MissingOrMistypedKeysAreClearErrors) {
  auto error_of = [](GgufTokenizer& g) {
    auto tok = g.Load();
    EXPECT_FALSE(tok.ok());
    return tok.status();
  };
  {
    GgufTokenizer g;
    g.writer = gguf::Writer();
    g.writer.SetValue("general.architecture", gguf::Value::Str("bitnet"));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("tokenizer.ggml.model"));
  }
  {
    GgufTokenizer g;
    g.writer = gguf::Writer();
    g.writer.SetValue("tokenizer.ggml.model", gguf::Value::Str("gpt2"));
    g.writer.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr({"a", "b"}));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("tokenizer.ggml.merges"));
  }
  {
    GgufTokenizer g;
    g.writer.SetValue("tokenizer.ggml.model", gguf::Value::Str("t5"));
    EXPECT_EQ(error_of(g).code(), absl::StatusCode::kUnimplemented);
  }
  {
    GgufTokenizer g;
    g.writer.SetValue("tokenizer.ggml.tokens", gguf::Value::I32Arr({1, 2, 3}));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("tokenizer.ggml.tokens"));
  }
  {
    GgufTokenizer g;
    g.writer.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr({1}));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("token types"));
  }
  {
    GgufTokenizer g;
    g.writer.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Str("yes"));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("add_bos_token"));
  }
  {
    GgufTokenizer g;
    g.writer.SetValue("tokenizer.ggml.pre", gguf::Value::Str("no-such-pre"));
    EXPECT_THAT(std::string(error_of(g).message()), HasSubstr("no-such-pre"));
  }
}

// ---------------------------------------------------------------------------
// Pre-tokenizers

using Words = std::vector<std::string>;

TEST(PreTokenizer, Llama3Splits) {
  auto tok = MustCreate(ByteVocab("llama-bpe"));
  ASSERT_NE(tok, nullptr);
  auto split = [&](std::string_view s) { return tok->PreTokenize(s); };
  // Numbers in groups of three, never joined to letters or a leading space.
  EXPECT_EQ(split("1234567"), (Words{"123", "456", "7"}));
  EXPECT_EQ(split("abc 12345x"), (Words{"abc", " ", "123", "45", "x"}));
  EXPECT_EQ(split("$1,000.50"), (Words{"$", "1", ",", "000", ".", "50"}));
  EXPECT_EQ(split("٣٤٥٦"), (Words{"٣٤٥", "٦"}));  // Arabic-Indic digits are \p{N}
  // Contractions, case-insensitively; "'x" is not one.
  EXPECT_EQ(split("I'M DON'T we'Ll"), (Words{"I", "'M", " DON", "'T", " we", "'Ll"}));
  EXPECT_EQ(split("it's o'x"), (Words{"it", "'s", " o", "'x"}));
  // Any one non-letter, non-number, non-newline may lead a letter run.
  EXPECT_EQ(split("(hello)\tworld"), (Words{"(hello", ")", "\tworld"}));
  // Punctuation takes the newlines after it; whitespace runs up to their last
  // newline; a space run before a word leaves its last space to the word.
  EXPECT_EQ(split("hi!!\n\nyou"), (Words{"hi", "!!\n\n", "you"}));
  EXPECT_EQ(split("a  \n  b"), (Words{"a", "  \n", " ", " b"}));
  EXPECT_EQ(split("x\r\n\r\ny"), (Words{"x", "\r\n\r\n", "y"}));
  EXPECT_EQ(split("\nfoo"), (Words{"\n", "foo"}));
  EXPECT_EQ(split("  lead"), (Words{" ", " lead"}));
  EXPECT_EQ(split("trail   "), (Words{"trail", "   "}));
  EXPECT_EQ(split("a ... b"), (Words{"a", " ...", " b"}));
  // Non-ASCII letters and whitespace.
  EXPECT_EQ(split("Привет мир"), (Words{"Привет", " мир"}));
  EXPECT_EQ(split("日本語のテキスト"), (Words{"日本語のテキスト"}));
  EXPECT_EQ(split("x\u3000y"), (Words{"x", "\u3000y"}));
  EXPECT_EQ(split("🙂🚀 ok"), (Words{"🙂🚀", " ok"}));
  EXPECT_EQ(split(""), Words{});
}

TEST(PreTokenizer, LongRunsSplitInLinearTime) {
  // Long runs of one class are split correctly (a splitter that rescans the
  // run for every word would also take minutes here).
  auto tok = MustCreate(ByteVocab("llama-bpe"));
  ASSERT_NE(tok, nullptr);
  const Words digits = tok->PreTokenize(std::string(300001, '7'));
  ASSERT_EQ(digits.size(), 100001u);
  EXPECT_EQ(digits.front(), "777");
  EXPECT_EQ(digits.back(), "7");
  const Words spaces = tok->PreTokenize("\n" + std::string(300000, ' ') + "x");
  EXPECT_EQ(spaces, (Words{"\n", std::string(299999, ' '), " x"}));
}

TEST(PreTokenizer, Gpt2Splits) {
  auto tok = MustCreate(ByteVocab("gpt-2"));
  ASSERT_NE(tok, nullptr);
  auto split = [&](std::string_view s) { return tok->PreTokenize(s); };
  EXPECT_EQ(split("Hello, world!"), (Words{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split("1234567 x1"), (Words{"1234567", " x", "1"}));
  // Contractions are case-sensitive here.
  EXPECT_EQ(split("don't I'M"), (Words{"don", "'t", " I", "'", "M"}));
  EXPECT_EQ(split("a   b"), (Words{"a", "  ", " b"}));
  EXPECT_EQ(split("a \n\nb"), (Words{"a", " \n", "\n", "b"}));
  EXPECT_EQ(split("end  "), (Words{"end", "  "}));
  EXPECT_EQ(split(" ?!x"), (Words{" ?!", "x"}));
  EXPECT_EQ(split("\tx"), (Words{"\t", "x"}));
}

TEST(PreTokenizer, DefaultSplitsLikeLlamaCpp) {
  // llama.cpp's fallback chains four expressions: punctuation runs first (so
  // contractions and " ," never form), then GPT-2, then numbers, then triples.
  for (const char* pre : {"default", ""}) {
    auto tok = MustCreate(ByteVocab(pre));
    ASSERT_NE(tok, nullptr);
    auto split = [&](std::string_view s) { return tok->PreTokenize(s); };
    EXPECT_EQ(split("don't stop, ok"), (Words{"don", "'", "t", " stop", ",", " ok"})) << pre;
    EXPECT_EQ(split("a 1234567"), (Words{"a", " ", "123", "456", "7"})) << pre;
    EXPECT_EQ(split("x+=y`z"), (Words{"x", "+=", "y", "`", "z"})) << pre;
  }
}

TEST(PreTokenizer, UnknownNameIsAnError) {
  auto tok = Tokenizer::Create(ByteVocab("qwen-something"));
  ASSERT_FALSE(tok.ok());
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("qwen-something"));
}

// ---------------------------------------------------------------------------
// Merges

TEST(BpeMerges, LowestRankFirstThenLeftmost) {
  // "ab" outranks "bc": "abc" -> ab + c even though "bc" also exists.
  auto tok = MustCreate(ByteVocab("gpt-2", {"ab", "bc", "aa", "aaa"},
                                  {{"a", "b"}, {"b", "c"}, {"a", "a"}, {"aa", "a"}}));
  ASSERT_NE(tok, nullptr);
  const TokenId ab = 256, bc = 257, aa = 258, aaa = 259;
  EXPECT_THAT(tok->Encode("abc", false), ElementsAre(ab, 'c'));
  EXPECT_THAT(tok->Encode("xbc", false), ElementsAre('x', bc));
  // Equal ranks: leftmost pair first, then the result may merge again.
  EXPECT_THAT(tok->Encode("aaaa", false), ElementsAre(aa, aa));
  EXPECT_THAT(tok->Encode("aaa", false), ElementsAre(aaa));
  EXPECT_THAT(tok->Encode("aaaaa", false), ElementsAre(aa, aaa));
}

TEST(BpeMerges, LlamaBpeIgnoresMergesForWholeTokens) {
  // "xyz" is a token but no merge builds it; llama-bpe still emits it whole,
  // gpt-2 spells it out.
  std::vector<std::string> extra = {"xyz"};
  auto llama = MustCreate(ByteVocab("llama-bpe", extra));
  auto gpt2 = MustCreate(ByteVocab("gpt-2", extra));
  ASSERT_NE(llama, nullptr);
  ASSERT_NE(gpt2, nullptr);
  EXPECT_THAT(llama->Encode("xyz", false), ElementsAre(256));
  EXPECT_THAT(gpt2->Encode("xyz", false), ElementsAre('x', 'y', 'z'));
}

TEST(BpeMerges, LongInputRoundTrips) {
  SKIP_WITHOUT_ORACLE();
  auto tok = MustCreate(OracleTokenizerData(LoadExpected()));
  ASSERT_NE(tok, nullptr);
  // Mixed scripts, long single words and long space runs.
  std::string text;
  std::mt19937 rng(7);
  const std::vector<std::string> parts = {"the ", "string ", "in", "   ", "\n", "é", "日本",
                                          "🙂", "1234", "don't ", "!!", "\t"};
  while (text.size() < 120000) text += parts[rng() % parts.size()];
  text += std::string(20000, 'a');
  const std::vector<TokenId> ids = tok->Encode(text, false);
  EXPECT_EQ(tok->Decode(ids), text);
  EXPECT_LT(ids.size(), text.size());
}

// ---------------------------------------------------------------------------
// Special tokens

TEST(SpecialTokens, ParsedOnlyWhenAsked) {
  SKIP_WITHOUT_ORACLE();
  auto tok = MustCreate(OracleTokenizerData(LoadExpected()));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("<s>a</s>", false), ElementsAre(288, 'a', 289));
  EXPECT_THAT(tok->Encode("</s></s>", false), ElementsAre(289, 289));
  EXPECT_THAT(tok->Encode("<s>", true), ElementsAre(288, 288));
  // Not parsed: spelled out as ordinary text.
  const std::vector<TokenId> plain = tok->Encode("<s>a", false, /*parse_special=*/false);
  EXPECT_THAT(plain, ElementsAre('<', 's', '>', 'a'));
  EXPECT_EQ(tok->Decode({288, 'a', 289}), "a");
  EXPECT_EQ(tok->Decode({288, 'a', 289}, /*render_special=*/true), "<s>a</s>");
  EXPECT_EQ(tok->TokenBytes(289), "");
  EXPECT_EQ(tok->TokenBytes(289, true), "</s>");
}

TEST(SpecialTokens, UserDefinedAlwaysMatchedLongestFirst) {
  TokenizerData data = ByteVocab("gpt-2");
  data.tokens.push_back("<tag>");       // 256
  data.tokens.push_back("<tag>long>");  // 257
  data.tokens.push_back("<ctl>");       // 258
  data.types.assign(256, TokenType::kNormal);
  data.types.push_back(TokenType::kUserDefined);
  data.types.push_back(TokenType::kUserDefined);
  data.types.push_back(TokenType::kControl);
  auto tok = MustCreate(std::move(data));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a<tag>long>b<tag>", false), ElementsAre('a', 257, 'b', 256));
  EXPECT_THAT(tok->Encode("<tag><ctl>", false, /*parse_special=*/false),
              ElementsAre(256, '<', 'c', 't', 'l', '>'));
  EXPECT_EQ(tok->Decode({256, 258}), "<tag>");  // user-defined renders, control does not
  EXPECT_EQ(tok->Find("<ctl>"), 258);
  EXPECT_EQ(tok->Find("nope"), -1);
}

TEST(SpecialTokens, EndOfGenerationByTextAndId) {
  TokenizerData data = ByteVocab("llama-bpe", {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"});
  data.types.assign(data.tokens.size(), TokenType::kNormal);
  data.types[256] = data.types[257] = TokenType::kControl;
  // 258 "<|eot_id|>" is mistyped as normal: llama.cpp finds it by text and
  // treats it as a control token that ends generation.
  data.tokens[256] = "<|begin_of_text|>";
  data.tokens[257] = "<|end_of_text|>";
  data.tokens[258] = "<|eot_id|>";
  data.bos = 256;
  data.eos = 257;
  data.add_bos = true;
  auto tok = MustCreate(std::move(data));
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsEndOfGeneration(257));
  EXPECT_TRUE(tok->IsEndOfGeneration(258));
  EXPECT_FALSE(tok->IsEndOfGeneration(256));
  EXPECT_EQ(tok->type(258), TokenType::kControl);
  EXPECT_THAT(tok->Encode("hi<|eot_id|>", true), ElementsAre(256, 'h', 'i', 258));
  EXPECT_EQ(tok->Decode({256, 'h', 'i', 258}), "hi");
}

// ---------------------------------------------------------------------------
// Decoding and invalid input

TEST(Decode, InvalidUtf8InputBecomesReplacementChar) {
  // llama.cpp replaces each byte it cannot decode with U+FFFD before BPE.
  auto tok = MustCreate(ByteVocab("gpt-2"));
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("a\xff", false), ElementsAre('a', 0xEF, 0xBF, 0xBD));
  EXPECT_EQ(tok->Decode(tok->Encode("\xc3", false)), "\xEF\xBF\xBD");
  EXPECT_EQ(tok->TokenBytes(-1), "");
  EXPECT_EQ(tok->TokenBytes(100000), "");
  EXPECT_EQ(tok->Decode({-5, 'o', 'k', 1 << 30}), "ok");
}

// ---------------------------------------------------------------------------
// Streaming detokenizer

std::string PushAll(StreamingDetokenizer& d, std::string_view bytes,
                    std::vector<std::string>* steps = nullptr) {
  std::string out;
  for (char c : bytes) {
    std::string s = d.Push(static_cast<uint8_t>(c));  // ids 0-255 are bytes
    if (steps) steps->push_back(s);
    out += s;
  }
  return out;
}

TEST(StreamingDetokenizer, HoldsSplitCharactersUntilComplete) {
  auto tok = MustCreate(ByteVocab("gpt-2"));
  ASSERT_NE(tok, nullptr);
  StreamingDetokenizer d(*tok);
  std::vector<std::string> steps;
  EXPECT_EQ(PushAll(d, "aé🙂日", &steps), "aé🙂日");
  EXPECT_THAT(steps, ElementsAre("a", "", "é", "", "", "", "🙂", "", "", "日"));
  EXPECT_EQ(d.Flush(), "");
}

TEST(StreamingDetokenizer, ReplacesImpossibleSequencesOnce) {
  auto tok = MustCreate(ByteVocab("gpt-2"));
  ASSERT_NE(tok, nullptr);
  const std::string fffd = "\xEF\xBF\xBD";
  {
    StreamingDetokenizer d(*tok);
    std::vector<std::string> steps;
    // A truncated 3-byte sequence is replaced as soon as 'A' shows it cannot
    // complete; a stray continuation byte and 0xFF are replaced at once.
    EXPECT_EQ(PushAll(d, "\xE2\x82" "A\x80\xFF", &steps), fffd + "A" + fffd + fffd);
    EXPECT_THAT(steps, ElementsAre("", "", fffd + "A", fffd, fffd));
  }
  {
    StreamingDetokenizer d(*tok);
    // Overlong, surrogate and above-U+10FFFF forms are never valid.
    std::string seven;
    for (int i = 0; i < 7; ++i) seven += fffd;
    EXPECT_EQ(PushAll(d, "\xC0\xAF" "\xED\xA0\x80" "\xF4\x90"), seven);
  }
  {
    StreamingDetokenizer d(*tok);
    EXPECT_EQ(PushAll(d, "ok\xF0\x9F\x99"), "ok");
    EXPECT_EQ(d.Flush(), fffd);  // an unfinished character at the end
    EXPECT_EQ(d.Flush(), "");
  }
}

TEST(StreamingDetokenizer, MultiByteTokensAndSpecials) {
  SKIP_WITHOUT_ORACLE();
  auto tok = MustCreate(OracleTokenizerData(LoadExpected()));
  ASSERT_NE(tok, nullptr);
  // "é" split across two byte tokens, then a merged token " the".
  StreamingDetokenizer d(*tok);
  EXPECT_EQ(d.Push(288), "");  // BOS: control, not rendered
  EXPECT_EQ(d.Push(0xC3), "");
  EXPECT_EQ(d.Push(0xA9), "é");
  EXPECT_EQ(d.Push(264), " the");
  EXPECT_EQ(d.Push(289), "");
  StreamingDetokenizer special(*tok, /*render_special=*/true);
  EXPECT_EQ(special.Push(0xC3), "");
  EXPECT_EQ(special.Push(288), "\xEF\xBF\xBD<s>");
}

// ---------------------------------------------------------------------------
// Bad vocabularies

TEST(TokenizerCreate, RejectsBadData) {
  {
    TokenizerData d = ByteVocab("gpt-2");
    d.model = "bert";
    EXPECT_EQ(Tokenizer::Create(d).status().code(), absl::StatusCode::kUnimplemented);
  }
  {
    TokenizerData d = ByteVocab("gpt-2");
    d.tokens.push_back(d.tokens[65]);
    auto t = Tokenizer::Create(d);
    ASSERT_FALSE(t.ok());
    EXPECT_THAT(std::string(t.status().message()), HasSubstr("twice"));
  }
  {
    TokenizerData d = ByteVocab("gpt-2");
    d.types = {TokenType::kNormal};
    EXPECT_FALSE(Tokenizer::Create(d).ok());
  }
  {
    TokenizerData d = ByteVocab("gpt-2");
    d.bos = 256;
    EXPECT_FALSE(Tokenizer::Create(d).ok());
  }
  {
    TokenizerData d = ByteVocab("gpt-2");
    d.add_bos = true;  // but no BOS id
    EXPECT_FALSE(Tokenizer::Create(d).ok());
  }
  EXPECT_FALSE(Tokenizer::Create(TokenizerData{}).ok());
  {
    // Odd merges (no space, unknown parts, results that are not tokens) are
    // tolerated and never crash.
    TokenizerData d = ByteVocab("gpt-2");
    d.merges = {"nospace", " ", "a b", "ab c", "zz zz"};
    auto t = Tokenizer::Create(d);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->Decode((*t)->Encode("abc zz", false)), "abc zz");
  }
}

}  // namespace
}  // namespace bitnet
