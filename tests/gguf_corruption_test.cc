// The GGUF reader against damaged and hostile input: truncation at every
// header offset, byte overwrites with several patterns, and hand-made headers
// with absurd counts, lengths, shapes and offsets. Every case must either
// parse into a File whose tensors lie inside the buffer, or fail with a
// message; never crash, hang or allocate by an untrusted count. (Run it under
// -DBITNET_ASAN=ON to catch out-of-bounds reads.)
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "model/ggml_types.h"
#include "model/gguf.h"
#include "tests/test_support.h"

namespace bitnet::gguf {
namespace {

using ggml::Type;

// Checks one parse outcome; returns true if the buffer parsed. With
// `decode`, also runs every supported tensor through Dequantize (small files).
bool CheckOutcome(const std::vector<uint8_t>& buf, bool decode, const std::string& what) {
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(buf.data(), buf.size(), what);
  if (!f.ok()) {
    EXPECT_FALSE(f.status().message().empty()) << what;
    return false;
  }
  const uint8_t* begin = buf.data();
  const uint8_t* end = buf.data() + buf.size();
  for (const TensorInfo& t : (*f)->tensors()) {
    const uint8_t* p = (*f)->TensorData(t);
    EXPECT_GT(t.n_elements(), 0) << what << " " << t.name;
    EXPECT_GT(t.n_bytes(), 0u) << what << " " << t.name;
    EXPECT_TRUE(p >= begin && p <= end && t.n_bytes() <= static_cast<uint64_t>(end - p))
        << what << ": tensor " << t.name << " out of bounds";
    EXPECT_EQ((*f)->FindTensor(t.name), &t) << what;
    if (decode && ggml::Traits(t.type).supported) {
      std::vector<float> y(static_cast<size_t>(t.n_elements()));
      (void)ggml::Dequantize(t.type, p, t.n_elements(), y.data());  // may report bad codes
    }
  }
  for (const auto& [key, v] : (*f)->metadata()) {
    (void)(*f)->GetInt(key);
    (void)(*f)->GetStringArray(key);
    (void)(*f)->GetFloatArray(key);
  }
  return true;
}

// A small file with many metadata types and one tensor of each codec.
std::vector<uint8_t> SmallFile() {
  Writer w;
  w.SetValue("general.architecture", Value::Str("bitnet"));
  w.SetValue("general.alignment", Value::U32(32));
  w.SetValue("bitnet.block_count", Value::U32(4));
  w.SetValue("bitnet.rope.freq_base", Value::F32(500000.0f));
  w.SetValue("x.i64", Value::I64(-5));
  w.SetValue("x.f64", Value::F64(0.25));
  w.SetValue("x.bool", Value::Bool(true));
  w.SetValue("tokenizer.ggml.tokens", Value::StrArr({"a", "b", "Ġthe", "<s>", "</s>"}));
  w.SetValue("tokenizer.ggml.token_type", Value::I32Arr({1, 1, 1, 3, 3}));
  w.SetValue("tokenizer.ggml.scores", Value::F32Arr({0.f, -1.f, -2.f, 0.f, 0.f}));
  w.SetValue("x.nested", Value::Arr(ValueType::kArray, {Value::I32Arr({1, 2}), Value::StrArr({"z"})}));
  w.SetValue("x.empty", Value::Arr(ValueType::kUint8, {}));
  std::vector<float> ternary(256 * 2);
  for (size_t i = 0; i < ternary.size(); ++i) ternary[i] = static_cast<float>(i % 3) - 1.0f;
  std::vector<float> gauss(256);
  for (size_t i = 0; i < gauss.size(); ++i) gauss[i] = 0.01f * static_cast<float>((i * 37) % 17) - 0.08f;
  auto add = [&](const char* name, std::vector<int64_t> ne, Type t, const std::vector<float>& x) {
    EXPECT_TRUE(w.AddTensor(name, std::move(ne), t, *ggml::Quantize(t, x)).ok()) << name;
  };
  add("norm", {8}, Type::kF32, {1, 2, 3, 4, 5, 6, 7, 8});
  add("embd.f16", {32, 2}, Type::kF16, std::vector<float>(gauss.begin(), gauss.begin() + 64));
  add("embd.q8", {64}, Type::kQ8_0, std::vector<float>(gauss.begin(), gauss.begin() + 64));
  add("embd.q6k", {256}, Type::kQ6K, gauss);
  add("w.tq1", {256, 2}, Type::kTQ1_0, ternary);
  add("w.tq2", {256, 2}, Type::kTQ2_0, ternary);
  add("w.i2s", {128, 4}, Type::kI2S, ternary);
  add("w.bf16", {16}, Type::kBF16, std::vector<float>(gauss.begin(), gauss.begin() + 16));
  return *w.Serialize();
}

// Where the data section starts (everything before is header) and where the
// last tensor's bytes end.
std::pair<size_t, size_t> HeaderAndDataEnd(const std::vector<uint8_t>& buf) {
  std::unique_ptr<File> f = *File::FromBuffer(buf.data(), buf.size());
  size_t start = buf.size(), end = 0;
  for (const TensorInfo& t : f->tensors()) {
    const size_t at = static_cast<size_t>(f->TensorData(t) - buf.data());
    start = std::min(start, at);
    end = std::max(end, at + static_cast<size_t>(t.n_bytes()));
  }
  return {start, end};
}

// Truncates at every offset below `dense_end`, then every `stride` bytes.
void TruncateEverywhere(const std::vector<uint8_t>& file, size_t dense_end, size_t stride,
                        bool decode) {
  const size_t data_end = HeaderAndDataEnd(file).second;
  for (size_t len = 0; len < file.size(); len += len < dense_end ? 1 : stride) {
    // A fresh exact-size buffer, so ASan sees any read past the end.
    std::vector<uint8_t> cut(file.begin(), file.begin() + static_cast<ptrdiff_t>(len));
    const bool ok = CheckOutcome(cut, decode, "truncated at " + std::to_string(len));
    // Losing any byte of the header or of a tensor must be detected.
    if (len < data_end) {
      ASSERT_FALSE(ok) << "truncation at " << len << " parsed";
    }
  }
}

// Overwrites bytes at every offset below `dense_end` (and a stride beyond)
// with several patterns, restoring the buffer after each case.
void MutateEverywhere(std::vector<uint8_t>& file, size_t dense_end, size_t stride, bool decode) {
  std::mt19937 rng(12345);
  const std::vector<uint8_t> original = file;
  for (size_t at = 0; at < file.size(); at += at < dense_end ? 1 : stride) {
    const uint8_t random_byte = static_cast<uint8_t>(rng());
    for (int pattern = 0; pattern < 5; ++pattern) {
      size_t n = 1;
      switch (pattern) {
        case 0: file[at] = 0x00; break;
        case 1: file[at] = 0xFF; break;
        case 2: file[at] = random_byte == original[at] ? random_byte ^ 0x80 : random_byte; break;
        case 3: file[at] ^= 0x01; break;
        case 4:  // a huge little-endian u64 / big u32 starting here
          n = std::min<size_t>(8, file.size() - at);
          std::memset(&file[at], 0x7F, n);
          break;
      }
      CheckOutcome(file, decode, "pattern " + std::to_string(pattern) + " at " + std::to_string(at));
      std::memcpy(&file[at], &original[at], n);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Corruption, SmallFileTruncatedAnywhere) {
  const std::vector<uint8_t> file = SmallFile();
  ASSERT_TRUE(CheckOutcome(file, true, "intact"));
  TruncateEverywhere(file, file.size(), 1, true);
}

TEST(Corruption, SmallFileBytesOverwritten) {
  std::vector<uint8_t> file = SmallFile();
  MutateEverywhere(file, file.size(), 1, true);
}

TEST(Corruption, OracleFileTruncated) {
  SKIP_WITHOUT_ORACLE();
  const std::vector<uint8_t> file = testing::ReadFileBytes(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
  ASSERT_TRUE(CheckOutcome(file, false, "intact"));
  const size_t header = HeaderAndDataEnd(file).first;
  ASSERT_GT(header, 1000u);
  TruncateEverywhere(file, header, 9973, false);
}

TEST(Corruption, OracleFileHeaderOverwritten) {
  SKIP_WITHOUT_ORACLE();
  std::vector<uint8_t> file = testing::ReadFileBytes(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
  const size_t header = HeaderAndDataEnd(file).first;
  // Only the header matters to the parser; data bytes are sampled sparsely.
  MutateEverywhere(file, header, 49999, false);
}

// ---- Hand-made hostile headers.

class Bytes {
 public:
  Bytes& U32(uint32_t x) { return Raw(&x, 4); }
  Bytes& U64(uint64_t x) { return Raw(&x, 8); }
  Bytes& U8(uint8_t x) { return Raw(&x, 1); }
  Bytes& Str(std::string_view s) {
    U64(s.size());
    return Raw(s.data(), s.size());
  }
  Bytes& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Raw("GGUF", 4);
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  // A tensor info with the given dims.
  Bytes& Tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(ne.size()));
    for (uint64_t d : ne) U64(d);
    U32(type);
    return U64(offset);
  }
  Bytes& Pad(size_t align = 32) {
    b_.resize((b_.size() + align - 1) / align * align, 0);
    return *this;
  }
  Bytes& Zeros(size_t n) {
    b_.resize(b_.size() + n, 0);
    return *this;
  }
  Bytes& Raw(const void* p, size_t n) {
    const size_t at = b_.size();
    b_.resize(at + n);
    if (n != 0) std::memcpy(b_.data() + at, p, n);
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// Expects a clean failure whose message mentions `needle` and a byte offset.
void ExpectRejected(const Bytes& b, std::string_view needle) {
  const std::vector<uint8_t>& buf = b.bytes();
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(buf.data(), buf.size());
  ASSERT_FALSE(f.ok()) << "accepted; expected an error about " << needle;
  const std::string msg(f.status().message());
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  EXPECT_NE(msg.find("byte offset"), std::string::npos) << msg;
}

constexpr uint64_t k2p63 = uint64_t{1} << 63;
constexpr uint32_t kArray = 9, kString = 8, kU8 = 0, kU32 = 4, kU64 = 10, kBool = 7;

TEST(Hostile, HugeCounts) {
  ExpectRejected(Bytes().Header(0, k2p63), "metadata count");
  ExpectRejected(Bytes().Header(k2p63, 0), "tensor count");
  ExpectRejected(Bytes().Header(UINT64_MAX, UINT64_MAX), "count");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kArray).U32(kU8).U64(k2p63), "claims");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kArray).U32(kU64).U64(uint64_t{1} << 61).Zeros(64),
                 "claims");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kArray).U32(kString).U64(1000).Zeros(100),
                 "claims");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kArray).U32(kArray).U64(UINT64_MAX).Zeros(24),
                 "claims");
}

TEST(Hostile, HugeStringLengths) {
  ExpectRejected(Bytes().Header(0, 1).U64(uint64_t{1} << 62).Raw("key", 3).Zeros(16), "length");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kString).U64(uint64_t{1} << 62).Zeros(16),
                 "length");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kString).U64(UINT64_MAX), "length");
  ExpectRejected(Bytes().Header(1, 0).U64(UINT64_MAX - 3).Zeros(40), "length");
}

TEST(Hostile, ArrayElementBudget) {
  // 9M one-byte elements: backed by real bytes, but over the element cap,
  // which stops the ~50x in-memory blow-up of Values.
  Bytes b;
  b.Header(0, 1).Str("k").U32(kArray).U32(kU8).U64(9u << 20).Zeros(9u << 20);
  ExpectRejected(b, "elements in total");
}

TEST(Hostile, NestingDepthBomb) {
  Bytes b;
  b.Header(0, 1).Str("k").U32(kArray);
  for (int i = 0; i < 100000; ++i) b.U32(kArray).U64(1);
  b.U32(kU8).U64(0);
  ExpectRejected(b, "deeper");
}

TEST(Hostile, BadValueTypesAndValues) {
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(13).U64(0), "value type");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(0xFFFFFFFF).U64(0), "value type");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kArray).U32(77).U64(0), "value type");
  ExpectRejected(Bytes().Header(0, 1).Str("k").U32(kBool).U8(2).Zeros(8), "bool");
  ExpectRejected(Bytes().Header(0, 1).Str("").U32(kU8).U8(0).Zeros(8), "empty key");
  ExpectRejected(Bytes().Header(0, 2).Str("k").U32(kU8).U8(0).Str("k").U32(kU8).U8(1), "duplicate");
}

TEST(Hostile, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u, 0x80000000u}) {
    ExpectRejected(Bytes().Header(0, 1).Str("general.alignment").U32(kU32).U32(a), "alignment");
  }
  ExpectRejected(Bytes().Header(0, 1).Str("general.alignment").U32(kString).Str("32"), "alignment");
}

TEST(Hostile, BadTensorInfos) {
  auto one = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data = 4096) {
    Bytes b;
    b.Header(1, 0).Tensor("t", std::move(ne), type, offset).Pad().Zeros(data);
    return b;
  };
  ASSERT_TRUE(File::FromBuffer(one({8}, 0, 0).bytes().data(), one({8}, 0, 0).bytes().size()).ok());
  ExpectRejected(one(std::vector<uint64_t>(100, 1), 0, 0), "dimensions");
  ExpectRejected(one({}, 0, 0), "dimensions");
  ExpectRejected(one({0}, 0, 0), "invalid size");
  ExpectRejected(one({UINT64_MAX}, 0, 0), "invalid size");  // -1 as int64
  ExpectRejected(one({uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0), "overflows");
  ExpectRejected(one({uint64_t{1} << 62}, 0, 0), "overflow");  // bytes overflow
  ExpectRejected(one({256}, 37, 0), "unknown ggml type id 37");
  ExpectRejected(one({256}, 1000, 0), "unknown ggml type");
  ExpectRejected(one({33}, static_cast<uint32_t>(Type::kQ8_0), 0), "multiple of");
  ExpectRejected(one({64}, static_cast<uint32_t>(Type::kI2S), 0), "multiple of");
  ExpectRejected(one({8}, 0, 1), "not a multiple of the alignment");
  ExpectRejected(one({8}, 0, k2p63), "past the end");
  ExpectRejected(one({8}, 0, UINT64_MAX - 31), "past the end");
  ExpectRejected(one({2048}, 0, 0, 100), "past the end");
  ExpectRejected(one({8}, 0, 0, 0), "past the end");
  // Two tensors sharing bytes, or the same name twice.
  ExpectRejected(Bytes().Header(2, 0).Tensor("a", {8}, 0, 0).Tensor("b", {8}, 0, 0).Pad().Zeros(64),
                 "overlaps");
  ExpectRejected(Bytes().Header(2, 0).Tensor("a", {16}, 0, 0).Tensor("b", {8}, 0, 32).Pad().Zeros(96),
                 "overlaps");
  ExpectRejected(Bytes().Header(2, 0).Tensor("a", {8}, 0, 0).Tensor("a", {8}, 0, 32).Pad().Zeros(64),
                 "duplicate tensor name");
  ExpectRejected(Bytes().Header(1, 0).Tensor("", {8}, 0, 0).Pad().Zeros(32), "empty name");
}

TEST(Hostile, TypeId36IsI2sSizedAndMustFit) {
  // 256 elements of I2_S need 256/4 + 32 = 96 bytes: a neighbour at 64 overlaps.
  ExpectRejected(Bytes().Header(2, 0).Tensor("w", {256}, 36, 0).Tensor("n", {8}, 0, 64).Pad().Zeros(128),
                 "I2_S");
  Bytes ok;
  ok.Header(2, 0).Tensor("w", {256}, 36, 0).Tensor("n", {8}, 0, 96).Pad().Zeros(128);
  absl::StatusOr<std::unique_ptr<File>> f = File::FromBuffer(ok.bytes().data(), ok.bytes().size());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->FindTensor("w")->type, Type::kI2S);
  EXPECT_EQ((*f)->FindTensor("w")->n_bytes(), 96u);
}

TEST(Hostile, TruncatedMagicAndVersion) {
  for (size_t n = 0; n < 24; ++n) {
    std::vector<uint8_t> b = Bytes().Header(0, 0).bytes();
    b.resize(n);
    EXPECT_FALSE(File::FromBuffer(b.data(), b.size()).ok()) << n;
  }
  std::vector<uint8_t> empty_ok = Bytes().Header(0, 0).bytes();
  EXPECT_TRUE(File::FromBuffer(empty_ok.data(), empty_ok.size()).ok());
  ExpectRejected(Bytes().Header(0, 0, 1), "version 1");
  ExpectRejected(Bytes().Raw("GGML", 4).U32(3).U64(0).U64(0), "not a GGUF file");
}

}  // namespace
}  // namespace bitnet::gguf
