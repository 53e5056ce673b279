// GGUF reader/writer: metadata round trips for every value type (v2 and v3),
// typed getters, layout rules, and the four oracle files.
#include "model/gguf.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_support.h"

namespace bitnet::gguf {
namespace {

using ggml::Type;

// One value of every scalar type, strings, and arrays (empty, nested, mixed).
std::vector<std::pair<std::string, Value>> AllKinds() {
  std::vector<std::pair<std::string, Value>> kv;
  kv.push_back({"u8", Value{ValueType::kUint8, uint64_t{255}}});
  kv.push_back({"i8", Value{ValueType::kInt8, int64_t{-128}}});
  kv.push_back({"u16", Value{ValueType::kUint16, uint64_t{65535}}});
  kv.push_back({"i16", Value{ValueType::kInt16, int64_t{-32768}}});
  kv.push_back({"u32", Value::U32(4000000000u)});
  kv.push_back({"i32", Value::I32(-2147483647 - 1)});
  kv.push_back({"u64", Value::U64(std::numeric_limits<uint64_t>::max())});
  kv.push_back({"i64", Value::I64(std::numeric_limits<int64_t>::min())});
  kv.push_back({"f32", Value::F32(1.5e-5f)});
  kv.push_back({"f32.inf", Value::F32(std::numeric_limits<float>::infinity())});
  kv.push_back({"f64", Value::F64(3.141592653589793)});
  kv.push_back({"b.true", Value::Bool(true)});
  kv.push_back({"b.false", Value::Bool(false)});
  kv.push_back({"s", Value::Str("héllo wörld \xF0\x9F\x98\x80")});
  kv.push_back({"s.empty", Value::Str("")});
  kv.push_back({"s.nul", Value::Str(std::string("a\0b", 3))});
  kv.push_back({"arr.str", Value::StrArr({"a", "", "Ġthe", "<s>"})});
  kv.push_back({"arr.i32", Value::I32Arr({1, -2, 3})});
  kv.push_back({"arr.f32", Value::F32Arr({0.5f, -1.25f})});
  kv.push_back({"arr.empty.str", Value::Arr(ValueType::kString, {})});
  kv.push_back({"arr.empty.u8", Value::Arr(ValueType::kUint8, {})});
  kv.push_back({"arr.bool", Value::Arr(ValueType::kBool, {Value::Bool(true), Value::Bool(false)})});
  kv.push_back({"arr.u64", Value::Arr(ValueType::kUint64, {Value::U64(1), Value::U64(1ull << 63)})});
  kv.push_back({"arr.f64", Value::Arr(ValueType::kFloat64, {Value::F64(-0.0), Value::F64(1e300)})});
  kv.push_back({"arr.i16", Value::Arr(ValueType::kInt16, {Value{ValueType::kInt16, int64_t{-7}}})});
  kv.push_back({"arr.nested",
                Value::Arr(ValueType::kArray,
                           {Value::I32Arr({1, 2}), Value::StrArr({"x"}),
                            Value::Arr(ValueType::kFloat32, {}),
                            Value::Arr(ValueType::kArray, {Value::I32Arr({7})})})});
  kv.push_back({"arr.empty.nested", Value::Arr(ValueType::kArray, {})});
  return kv;
}

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

class RoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RoundTrip, EveryValueTypeAndTensorsSurvive) {
  Writer w;
  const auto kv = AllKinds();
  for (const auto& [k, v] : kv) w.SetValue(k, v);
  std::vector<float> a(256 * 3), b(7);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.25f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -static_cast<float>(i);
  ASSERT_TRUE(w.AddTensor("a", {256, 3}, Type::kF32, F32Bytes(a)).ok());
  ASSERT_TRUE(w.AddTensor("b.odd", {7}, Type::kF32, F32Bytes(b)).ok());
  std::vector<uint8_t> tq(66 * 2, 0x55);
  ASSERT_TRUE(w.AddTensor("c.tq2", {256, 1, 2, 1}, Type::kTQ2_0, tq).ok());

  absl::StatusOr<std::vector<uint8_t>> bytes = w.Serialize(GetParam());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(bytes->data(), bytes->size());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), GetParam());
  EXPECT_EQ((*f)->alignment(), 32u);
  ASSERT_EQ((*f)->metadata().size(), kv.size());
  for (const auto& [k, v] : kv) {
    const Value* got = (*f)->Find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_TRUE(*got == v) << k;
  }
  ASSERT_EQ((*f)->tensors().size(), 3u);
  const TensorInfo* ta = (*f)->FindTensor("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->ne, (std::vector<int64_t>{256, 3}));
  EXPECT_EQ(ta->type, Type::kF32);
  EXPECT_EQ(0, std::memcmp((*f)->TensorData(*ta), a.data(), a.size() * 4));
  const TensorInfo* tb = (*f)->FindTensor("b.odd");
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(tb->offset % 32, 0u);
  EXPECT_EQ(0, std::memcmp((*f)->TensorData(*tb), b.data(), b.size() * 4));
  const TensorInfo* tc = (*f)->FindTensor("c.tq2");
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(tc->n_bytes(), tq.size());
  EXPECT_EQ(tc->ne, (std::vector<int64_t>{256, 1, 2, 1}));
  EXPECT_EQ(0, std::memcmp((*f)->TensorData(*tc), tq.data(), tq.size()));
  // Tensors are laid back to back with padding, as llama.cpp requires.
  EXPECT_EQ(ta->offset, 0u);
  EXPECT_EQ(tb->offset, 3072u);
  EXPECT_EQ(tc->offset, 3072u + 32u);
  EXPECT_EQ(bytes->size() % 32, 0u);

  // Re-serializing what we read gives the same bytes.
  Writer w2;
  for (const auto& [k, v] : kv) w2.SetValue(k, *(*f)->Find(k));
  for (const TensorInfo& t : (*f)->tensors()) {
    const uint8_t* d = (*f)->TensorData(t);
    ASSERT_TRUE(w2.AddTensor(t.name, t.ne, t.type, {d, d + t.n_bytes()}).ok());
  }
  EXPECT_EQ(*w2.Serialize(GetParam()), *bytes);
}

INSTANTIATE_TEST_SUITE_P(Versions, RoundTrip, ::testing::Values(2u, 3u));

TEST(Gguf, WriteFileAndOpen) {
  testing::TempDir dir;
  Writer w;
  w.SetValue("general.architecture", Value::Str("bitnet"));
  w.SetValue("general.alignment", Value::U32(64));
  ASSERT_TRUE(w.AddTensor("x", {4}, Type::kF32, F32Bytes({1, 2, 3, 4})).ok());
  ASSERT_TRUE(w.AddTensor("y", {2}, Type::kF32, F32Bytes({5, 6})).ok());
  ASSERT_TRUE(w.WriteFile(dir.File("m.gguf")).ok());
  absl::StatusOr<std::unique_ptr<File>> f = File::Open(dir.File("m.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->FindTensor("y")->offset, 64u);
  float y[2];
  std::memcpy(y, (*f)->TensorData(*(*f)->FindTensor("y")), 8);
  EXPECT_EQ(y[1], 6.0f);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "bitnet");
}

TEST(Gguf, OpenErrors) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<File>> f = File::Open(dir.File("missing.gguf"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  testing::WriteFileBytes(dir.File("empty.gguf"), {});
  EXPECT_FALSE(File::Open(dir.File("empty.gguf")).ok());
  testing::WriteFileBytes(dir.File("text.gguf"), {'h', 'e', 'l', 'l', 'o', '\n', 0, 0});
  f = File::Open(dir.File("text.gguf"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("not a GGUF file"), std::string::npos);
}

TEST(Gguf, RejectsVersion1AndUnknownVersions) {
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 0, 0, 0, 0};
    std::memcpy(b.data() + 4, &v, 4);
    b.resize(24, 0);
    absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(b.data(), b.size());
    ASSERT_FALSE(f.ok()) << v;
    if (v == 1) {
      EXPECT_NE(f.status().message().find("version 1"), std::string::npos);
    }
    if (v == 0x03000000u) {
      EXPECT_NE(f.status().message().find("big-endian"), std::string::npos);
    }
  }
}

TEST(Gguf, TypedGetters) {
  Writer w;
  for (const auto& [k, v] : AllKinds()) w.SetValue(k, v);
  std::vector<uint8_t> bytes = *w.Serialize();
  std::unique_ptr<File> f = *File::FromBuffer(bytes.data(), bytes.size());

  EXPECT_EQ(*f->GetInt("u8"), 255);
  EXPECT_EQ(*f->GetInt("i8"), -128);
  EXPECT_EQ(*f->GetInt("u32"), 4000000000);
  EXPECT_EQ(*f->GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->GetInt("u64").status().code(), absl::StatusCode::kOutOfRange);  // > int64 max
  EXPECT_EQ(f->GetInt("missing").status().code(), absl::StatusCode::kNotFound);
  absl::Status wrong = f->GetInt("s").status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("'s'"), std::string::npos);
  EXPECT_NE(wrong.message().find("string"), std::string::npos);
  EXPECT_EQ(f->GetInt("f32").status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_FLOAT_EQ(static_cast<float>(*f->GetFloat("f32")), 1.5e-5f);
  EXPECT_DOUBLE_EQ(*f->GetFloat("f64"), 3.141592653589793);
  EXPECT_DOUBLE_EQ(*f->GetFloat("i16"), -32768.0);  // any numeric converts
  EXPECT_FALSE(f->GetFloat("b.true").ok());

  EXPECT_TRUE(*f->GetBool("b.true"));
  EXPECT_FALSE(*f->GetBool("b.false"));
  EXPECT_FALSE(f->GetBool("u8").ok());

  EXPECT_EQ(*f->GetString("s.nul"), std::string("a\0b", 3));
  EXPECT_FALSE(f->GetString("arr.str").ok());

  EXPECT_EQ(*f->GetStringArray("arr.str"), (std::vector<std::string>{"a", "", "Ġthe", "<s>"}));
  EXPECT_TRUE(f->GetStringArray("arr.empty.str")->empty());
  EXPECT_FALSE(f->GetStringArray("arr.i32").ok());
  EXPECT_FALSE(f->GetStringArray("s").ok());
  EXPECT_EQ(*f->GetIntArray("arr.i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(*f->GetIntArray("arr.i16"), (std::vector<int64_t>{-7}));
  EXPECT_EQ(f->GetIntArray("arr.u64").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_FALSE(f->GetIntArray("arr.f32").ok());
  EXPECT_EQ(*f->GetFloatArray("arr.f32"), (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ(*f->GetFloatArray("arr.i32"), (std::vector<double>{1, -2, 3}));
  EXPECT_FALSE(f->GetFloatArray("arr.str").ok());
  EXPECT_FALSE(f->GetFloatArray("arr.nested").ok());
}

TEST(Gguf, WriterRejectsBadInput) {
  Writer w;
  EXPECT_FALSE(w.AddTensor("t", {256}, Type::kF32, std::vector<uint8_t>(10)).ok());  // size
  EXPECT_FALSE(w.AddTensor("t", {100}, Type::kQ8_0, std::vector<uint8_t>(200)).ok());  // block
  EXPECT_FALSE(w.AddTensor("t", {0}, Type::kF32, {}).ok());
  EXPECT_FALSE(w.AddTensor("t", {1, 1, 1, 1, 1}, Type::kF32, std::vector<uint8_t>(4)).ok());
  EXPECT_FALSE(w.AddTensor("", {1}, Type::kF32, std::vector<uint8_t>(4)).ok());
  EXPECT_FALSE(w.AddTensor(std::string(64, 'x'), {1}, Type::kF32, std::vector<uint8_t>(4)).ok());
  ASSERT_TRUE(w.AddTensor("t", {1}, Type::kF32, std::vector<uint8_t>(4)).ok());
  EXPECT_FALSE(w.AddTensor("t", {1}, Type::kF32, std::vector<uint8_t>(4)).ok());  // duplicate
  EXPECT_FALSE(w.Serialize(1).ok());

  Writer bad_value;
  bad_value.SetValue("k", Value{ValueType::kUint8, uint64_t{256}});
  EXPECT_FALSE(bad_value.Serialize().ok());
  Writer bad_kind;
  bad_kind.SetValue("k", Value{ValueType::kString, uint64_t{1}});
  EXPECT_FALSE(bad_kind.Serialize().ok());
  Writer mixed;
  mixed.SetValue("k", Value::Arr(ValueType::kInt32, {Value::Str("x")}));
  EXPECT_FALSE(mixed.Serialize().ok());
  Writer align;
  align.SetValue("general.alignment", Value::U32(48));
  EXPECT_FALSE(align.Serialize().ok());
}

TEST(Gguf, StreamedTensorsMatchInMemoryOnes) {
  const std::vector<uint8_t> a = F32Bytes({1, 2, 3, 4, 5});
  Writer mem, streamed;
  ASSERT_TRUE(mem.AddTensor("a", {5}, Type::kF32, a).ok());
  ASSERT_TRUE(mem.AddTensor("b", {2}, Type::kF32, F32Bytes({7, 8})).ok());
  ASSERT_TRUE(streamed
                  .AddStreamedTensor("a", {5}, Type::kF32,
                                     [&](const Writer::ChunkSink& sink) {
                                       // In two pieces.
                                       if (absl::Status s = sink(a.data(), 7); !s.ok()) return s;
                                       return sink(a.data() + 7, a.size() - 7);
                                     })
                  .ok());
  ASSERT_TRUE(streamed.AddTensor("b", {2}, Type::kF32, F32Bytes({7, 8})).ok());
  EXPECT_EQ(*streamed.Serialize(), *mem.Serialize());
  testing::TempDir dir;
  ASSERT_TRUE(streamed.WriteFile(dir.File("s.gguf")).ok());
  EXPECT_EQ(testing::ReadFileBytes(dir.File("s.gguf")), *mem.Serialize());

  Writer short_fill;
  ASSERT_TRUE(short_fill
                  .AddStreamedTensor("a", {5}, Type::kF32,
                                     [&](const Writer::ChunkSink& sink) { return sink(a.data(), 4); })
                  .ok());
  EXPECT_FALSE(short_fill.Serialize().ok());
  EXPECT_FALSE(short_fill.WriteFile(dir.File("bad.gguf")).ok());
  Writer long_fill;
  ASSERT_TRUE(long_fill
                  .AddStreamedTensor("a", {1}, Type::kF32,
                                     [&](const Writer::ChunkSink& sink) { return sink(a.data(), 8); })
                  .ok());
  EXPECT_FALSE(long_fill.Serialize().ok());
  EXPECT_FALSE(Writer().AddStreamedTensor("a", {1}, Type::kF32, nullptr).ok());
}

TEST(Gguf, SetValueReplacesInPlace) {
  Writer w;
  w.SetValue("a", Value::I32(1));
  w.SetValue("b", Value::I32(2));
  w.SetValue("a", Value::Str("x"));
  std::vector<uint8_t> bytes = *w.Serialize();
  std::unique_ptr<File> f = *File::FromBuffer(bytes.data(), bytes.size());
  EXPECT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(*f->GetString("a"), "x");
}

TEST(Gguf, I2sTensorSizeIncludesScale) {
  Writer w;
  std::vector<uint8_t> data(256 / 4 + 32, 0x55);
  ASSERT_TRUE(w.AddTensor("w", {128, 2}, Type::kI2S, data).ok());
  ASSERT_TRUE(w.AddTensor("n", {4}, Type::kF32, F32Bytes({1, 2, 3, 4})).ok());
  std::vector<uint8_t> bytes = *w.Serialize();
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->FindTensor("w")->n_bytes(), 96u);
  EXPECT_EQ((*f)->FindTensor("w")->type, Type::kI2S);
  EXPECT_EQ((*f)->FindTensor("n")->offset, 96u);
}

// ---- Oracle files: every tensor listed in expected.json, with its type and shape.

nlohmann::json LoadExpected() {
  std::ifstream in(testing::OracleDir() + "/expected.json");
  return nlohmann::json::parse(in);
}

class OracleFile : public ::testing::TestWithParam<std::string> {};

TEST_P(OracleFile, ParsesWithExpectedTensors) {
  SKIP_WITHOUT_ORACLE();
  const nlohmann::json expected = LoadExpected();
  const nlohmann::json& info = expected["files"][GetParam()];
  const std::string path = testing::OracleDir() + "/tiny-gqa-" + GetParam() + ".gguf";
  absl::StatusOr<std::unique_ptr<File>> f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 3u);
  EXPECT_EQ(*(*f)->GetString("general.architecture"), "bitnet");
  EXPECT_EQ((*f)->GetStringArray("tokenizer.ggml.tokens")->size(), 290u);
  EXPECT_EQ(*(*f)->GetInt("tokenizer.ggml.bos_token_id"), 288);

  const nlohmann::json& tensors = info["tensors"];
  ASSERT_EQ((*f)->tensors().size(), tensors.size());
  for (const nlohmann::json& t : tensors) {
    const std::string name = t["name"];
    const TensorInfo* ti = (*f)->FindTensor(name);
    ASSERT_NE(ti, nullptr) << name;
    EXPECT_EQ(ti->ne, t["ne"].get<std::vector<int64_t>>()) << name;
    std::string type = t["type"];
    type = type.substr(0, type.find(' '));  // "i2_s (BitNet fork only)"
    absl::StatusOr<Type> want = ggml::TypeFromName(type);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(ti->type, *want) << name << " " << type;
  }
}

// llama.cpp's llama-quantize (bitnet.cpp's for i2_s; gguf-py for f32) wrote
// these files; copying one through our reader and writer
// (same key order, same tensor order) must give the identical bytes, which
// shows the writer follows llama.cpp's layout rules.
TEST_P(OracleFile, RewriteIsByteIdentical) {
  SKIP_WITHOUT_ORACLE();
  const std::string path = testing::OracleDir() + "/tiny-gqa-" + GetParam() + ".gguf";
  std::unique_ptr<File> f = *File::Open(path);
  Writer w;
  ASSERT_EQ(f->keys().size(), f->metadata().size());
  for (const std::string& k : f->keys()) w.SetValue(k, *f->Find(k));
  for (const TensorInfo& t : f->tensors()) {
    const uint8_t* d = f->TensorData(t);
    ASSERT_TRUE(w.AddTensor(t.name, t.ne, t.type, {d, d + t.n_bytes()}).ok()) << t.name;
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = w.Serialize(f->version());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(*bytes == testing::ReadFileBytes(path));
}

INSTANTIATE_TEST_SUITE_P(Oracle, OracleFile,
                         ::testing::Values("f32", "tq2_0", "tq1_0", "i2_s"));

}  // namespace
}  // namespace bitnet::gguf
