// Safetensors reader, writer and sharded checkpoints, including hostile and
// corrupted inputs (which must give errors, never crashes or out-of-bounds
// reads: run this under -DBITNET_ASAN=ON to check the latter).
#include "model/safetensors.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "tests/test_support.h"

namespace bitnet::safetensors {
namespace {

std::vector<uint8_t> F32Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<uint8_t> U16Bytes(const std::vector<uint16_t>& v) {
  std::vector<uint8_t> b;
  for (uint16_t x : v) {
    b.push_back(static_cast<uint8_t>(x));
    b.push_back(static_cast<uint8_t>(x >> 8));
  }
  return b;
}

std::vector<uint8_t> SmallFile() {
  Writer w;
  w.SetMetadata("format", "pt");
  EXPECT_TRUE(w.AddTensor("a", Dtype::kF32, {2, 3}, F32Bytes({1, 2, 3, 4, 5, 6})).ok());
  EXPECT_TRUE(w.AddTensor("b.weight", Dtype::kU8, {4}, {0, 1, 2, 255}).ok());
  EXPECT_TRUE(w.AddTensor("c", Dtype::kBF16, {1},
                          U16Bytes({ggml::FloatToBf16(0.5f)})).ok());
  return w.Serialize();
}

// A file with a hand-written header (padding is added to keep it valid JSON).
std::vector<uint8_t> RawFile(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}

absl::Status ParseStatus(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(bytes.data(), bytes.size(), "t.safetensors");
  return f.status();
}

TEST(SafetensorsTest, RoundTripsTensorsAndMetadata) {
  const std::vector<uint8_t> bytes = SmallFile();
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  ASSERT_EQ((*f)->tensors().size(), 3u);
  const TensorInfo* a = (*f)->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, Dtype::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->n_elements(), 6);
  absl::StatusOr<std::vector<float>> av = ReadFloats(**f, *a);
  ASSERT_TRUE(av.ok());
  EXPECT_EQ(*av, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const TensorInfo* b = (*f)->Find("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(std::vector<uint8_t>((*f)->Data(*b), (*f)->Data(*b) + 4),
            (std::vector<uint8_t>{0, 1, 2, 255}));
  absl::StatusOr<std::vector<float>> cv = ReadFloats(**f, *(*f)->Find("c"));
  ASSERT_TRUE(cv.ok());
  EXPECT_EQ((*cv)[0], 0.5f);
  EXPECT_EQ((*f)->Find("missing"), nullptr);
  // The data section starts 8-byte aligned, as the reference writer does it.
  EXPECT_EQ(((*f)->Data(*(*f)->tensors().begin()) - bytes.data()) % 8, 0);
}

TEST(SafetensorsTest, ReadsEveryFloatAndIntegerDtype) {
  Writer w;
  ASSERT_TRUE(w.AddTensor("f16", Dtype::kF16, {2}, U16Bytes({ggml::FloatToHalf(1.5f), ggml::FloatToHalf(-2.f)})).ok());
  ASSERT_TRUE(w.AddTensor("i8", Dtype::kI8, {2}, {0xff, 0x05}).ok());
  ASSERT_TRUE(w.AddTensor("i32", Dtype::kI32, {1}, {0xfe, 0xff, 0xff, 0xff}).ok());
  double d = 0.25;
  std::vector<uint8_t> db(8);
  std::memcpy(db.data(), &d, 8);
  ASSERT_TRUE(w.AddTensor("f64", Dtype::kF64, {}, db).ok());  // a scalar
  const std::vector<uint8_t> bytes = w.Serialize();
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(*ReadFloats(**f, *(*f)->Find("f16")), (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(*ReadFloats(**f, *(*f)->Find("i8")), (std::vector<float>{-1.f, 5.f}));
  EXPECT_EQ(*ReadFloats(**f, *(*f)->Find("i32")), (std::vector<float>{-2.f}));
  EXPECT_EQ((*f)->Find("f64")->n_elements(), 1);
  EXPECT_EQ(*ReadFloats(**f, *(*f)->Find("f64")), (std::vector<float>{0.25f}));
}

TEST(SafetensorsTest, WriterRejectsBadTensors) {
  Writer w;
  EXPECT_FALSE(w.AddTensor("x", Dtype::kF32, {2}, {1, 2, 3}).ok());  // wrong byte count
  EXPECT_FALSE(w.AddTensor("__metadata__", Dtype::kU8, {1}, {1}).ok());
  EXPECT_TRUE(w.AddTensor("y", Dtype::kU8, {1}, {1}).ok());
  EXPECT_FALSE(w.AddTensor("y", Dtype::kU8, {1}, {1}).ok());  // duplicate
  EXPECT_FALSE(w.AddTensor("z", Dtype::kU8, {-1}, {}).ok());
}

TEST(SafetensorsTest, RejectsHostileHeaders) {
  struct Case {
    const char* what;
    std::string header;
    size_t data;
  };
  const std::string ok_entry = R"("t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]})";
  const Case cases[] = {
      {"not JSON", "{\"t\":", 4},
      {"not an object", "[1,2]", 0},
      {"no opening brace", " {}", 0},
      {"unknown dtype", R"({"t":{"dtype":"Q4","shape":[4],"data_offsets":[0,4]}})", 4},
      {"non-string dtype", R"({"t":{"dtype":3,"shape":[4],"data_offsets":[0,4]}})", 4},
      {"negative dim", R"({"t":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}})", 4},
      {"fractional dim", R"({"t":{"dtype":"U8","shape":[1.5],"data_offsets":[0,4]}})", 4},
      {"overflowing shape",
       R"({"t":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", 4},
      {"missing offsets", R"({"t":{"dtype":"U8","shape":[4]}})", 4},
      {"three offsets", R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,2,4]}})", 4},
      {"begin after end", R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4},
      {"end past the data", R"({"t":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", 4},
      {"size mismatch", R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,4]}})", 4},
      {"huge offsets", R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551612,18446744073709551616]}})", 4},
      {"overlap",
       "{" + ok_entry + R"(,"u":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4},
      {"hole", R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", 4},
      {"uncovered tail", "{" + ok_entry + "}", 6},
      {"duplicate name", "{" + ok_entry + "," + ok_entry + "}", 4},
      {"non-string metadata", "{\"__metadata__\":{\"a\":1}," + ok_entry + "}", 4},
      {"metadata not an object", "{\"__metadata__\":[]," + ok_entry + "}", 4},
      {"entry not an object", R"({"t":[1]})", 0},
      {"deep nesting", std::string(500, '[') + std::string(500, ']'), 0},
      {"deep nesting in an entry",
       R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":[[[[[1]]]]]}})", 4},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(ParseStatus(RawFile(c.header, c.data)).ok()) << c.what;
  }
  // The valid baseline of those cases parses.
  EXPECT_TRUE(ParseStatus(RawFile("{" + ok_entry + "}", 4)).ok());
  EXPECT_TRUE(ParseStatus(RawFile("{}", 0)).ok());
}

TEST(SafetensorsTest, RejectsBadHeaderLengths) {
  std::vector<uint8_t> bytes = SmallFile();
  EXPECT_FALSE(ParseStatus({}).ok());
  EXPECT_FALSE(ParseStatus({1, 2, 3}).ok());
  std::vector<uint8_t> too_long = bytes;
  too_long[0] = 0xff;
  too_long[1] = 0xff;
  too_long[2] = 0xff;  // past the end of the file
  EXPECT_FALSE(ParseStatus(too_long).ok());
  std::vector<uint8_t> beyond_limit(8 + 16, ' ');
  const uint64_t n = kMaxHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) beyond_limit[i] = static_cast<uint8_t>(n >> (8 * i));
  absl::Status s = ParseStatus(beyond_limit);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("limit"), std::string::npos) << s;
}

TEST(SafetensorsTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> bytes = SmallFile();
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_FALSE(ParseStatus(cut).ok()) << "length " << len;
  }
}

TEST(SafetensorsTest, OverwrittenBytesNeverCrashAndStayInBounds) {
  const std::vector<uint8_t> bytes = SmallFile();
  const uint64_t header = 8 + bytes[0] + (uint64_t{bytes[1]} << 8);
  int rejected = 0;
  for (size_t pos = 0; pos < header; ++pos) {
    for (uint8_t v : {uint8_t{0}, uint8_t{'"'}, uint8_t{'9'}, uint8_t{'-'}, uint8_t{'}'}, uint8_t{0xff}}) {
      std::vector<uint8_t> b = bytes;
      if (b[pos] == v) continue;
      b[pos] = v;
      absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(b.data(), b.size());
      if (!f.ok()) {
        ++rejected;
        continue;
      }
      // Whatever was accepted describes bytes inside the buffer.
      for (const TensorInfo& t : (*f)->tensors()) {
        EXPECT_LE((*f)->Data(t) + t.n_bytes(), b.data() + b.size());
        EXPECT_EQ(t.n_bytes(), static_cast<uint64_t>(t.n_elements()) * DtypeSize(t.dtype));
        absl::StatusOr<std::vector<float>> v = ReadFloats(**f, t);
        EXPECT_TRUE(v.ok() || t.dtype == Dtype::kF8E4M3 || t.dtype == Dtype::kF8E5M2);
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(SafetensorsTest, OpensFilesAndReportsMissingOnes) {
  testing::TempDir dir;
  testing::WriteFileBytes(dir.File("m.safetensors"), SmallFile());
  absl::StatusOr<std::unique_ptr<File>> f = File::Open(dir.File("m.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->tensors().size(), 3u);
  EXPECT_TRUE(absl::IsNotFound(File::Open(dir.File("nope.safetensors")).status()));
  EXPECT_FALSE(File::Open(dir.path()).ok());  // a directory
  testing::WriteFileBytes(dir.File("empty.safetensors"), {});
  EXPECT_FALSE(File::Open(dir.File("empty.safetensors")).ok());
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(SafetensorsTest, ShardedCheckpoint) {
  testing::TempDir dir;
  Writer a, b;
  ASSERT_TRUE(a.AddTensor("x", Dtype::kF32, {1}, F32Bytes({1})).ok());
  ASSERT_TRUE(b.AddTensor("y", Dtype::kF32, {2}, F32Bytes({2, 3})).ok());
  ASSERT_TRUE(a.WriteFile(dir.File("model-00001-of-00002.safetensors")).ok());
  ASSERT_TRUE(b.WriteFile(dir.File("model-00002-of-00002.safetensors")).ok());
  WriteText(dir.File("model.safetensors.index.json"),
            IndexJson({{"x", "model-00001-of-00002.safetensors"},
                       {"y", "model-00002-of-00002.safetensors"}},
                      12));
  absl::StatusOr<std::unique_ptr<Checkpoint>> cp = Checkpoint::Open(dir.path());
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ((*cp)->n_files(), 2u);
  EXPECT_EQ((*cp)->TensorNames(), (std::vector<std::string>{"x", "y"}));
  std::optional<Checkpoint::Ref> y = (*cp)->Find("y");
  ASSERT_TRUE(y.has_value());
  EXPECT_EQ(*ReadFloats(*y->file, *y->info), (std::vector<float>{2, 3}));
  EXPECT_FALSE((*cp)->Find("z").has_value());
}

TEST(SafetensorsTest, ShardedCheckpointErrors) {
  Writer a;
  ASSERT_TRUE(a.AddTensor("x", Dtype::kF32, {1}, F32Bytes({1})).ok());
  auto open_with_index = [&](const std::string& index) {
    testing::TempDir dir;
    EXPECT_TRUE(a.WriteFile(dir.File("s1.safetensors")).ok());
    EXPECT_TRUE(a.WriteFile(dir.File("s2.safetensors")).ok());
    WriteText(dir.File("model.safetensors.index.json"), index);
    return Checkpoint::Open(dir.path()).status();
  };
  EXPECT_FALSE(open_with_index("not json").ok());
  EXPECT_FALSE(open_with_index(R"({"weight_map": {}})").ok());
  EXPECT_FALSE(open_with_index(R"({"weight_map": {"x": "../s1.safetensors"}})").ok());
  EXPECT_FALSE(open_with_index(R"({"weight_map": {"x": "/etc/passwd"}})").ok());
  EXPECT_FALSE(open_with_index(R"({"weight_map": {"x": 3}})").ok());
  EXPECT_FALSE(open_with_index(R"({"weight_map": {"x": "missing.safetensors"}})").ok());
  // The index names a tensor its shard lacks.
  EXPECT_FALSE(open_with_index(R"({"weight_map": {"x": "s1.safetensors", "q": "s1.safetensors"}})").ok());
  // The same tensor in two listed shards.
  EXPECT_FALSE(open_with_index(
                   R"({"weight_map": {"x": "s1.safetensors", "y": "s2.safetensors"}})")
                   .ok());
  EXPECT_TRUE(open_with_index(R"({"weight_map": {"x": "s1.safetensors"}})").ok());

  testing::TempDir empty;
  absl::Status s = Checkpoint::Open(empty.path()).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos);
}

TEST(SafetensorsTest, SingleFileCheckpoint) {
  testing::TempDir dir;
  testing::WriteFileBytes(dir.File("model.safetensors"), SmallFile());
  absl::StatusOr<std::unique_ptr<Checkpoint>> cp = Checkpoint::Open(dir.path());
  ASSERT_TRUE(cp.ok()) << cp.status();
  EXPECT_EQ((*cp)->n_files(), 1u);
  EXPECT_TRUE((*cp)->Find("b.weight").has_value());
}

}  // namespace
}  // namespace bitnet::safetensors
