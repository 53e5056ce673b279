// GGUF v2/v3 container: a bounds-checked reader over an mmap'd file and a writer.
//
// The reader never trusts the file: every length, count, offset and type id is
// checked against the mapped size before use, so a truncated, corrupted or
// hostile file yields an absl::Status naming the problem (and the byte offset
// where it was found), never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/ggml_types.h"

namespace bitnet::gguf {

// GGUF metadata value types (the numbering is the file format's).
enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5,
  kFloat32 = 6, kBool = 7, kString = 8, kArray = 9, kUint64 = 10,
  kInt64 = 11, kFloat64 = 12,
};
std::string_view ValueTypeName(ValueType t);

struct Value;
// An array keeps its element type so that an empty array round-trips.
struct Array {
  ValueType elem_type = ValueType::kUint8;
  std::vector<Value> items;
};

struct Value {
  ValueType type = ValueType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> v;

  static Value U8(uint8_t x) { return {ValueType::kUint8, uint64_t{x}}; }
  static Value U32(uint32_t x) { return {ValueType::kUint32, uint64_t{x}}; }
  static Value U64(uint64_t x) { return {ValueType::kUint64, x}; }
  static Value I32(int32_t x) { return {ValueType::kInt32, int64_t{x}}; }
  static Value F32(float x) { return {ValueType::kFloat32, double{x}}; }
  static Value Bool(bool x) { return {ValueType::kBool, x}; }
  static Value Str(std::string x) { return {ValueType::kString, std::move(x)}; }
  static Value Arr(ValueType elem, std::vector<Value> items) {
    return {ValueType::kArray, Array{elem, std::move(items)}};
  }
  static Value StrArr(const std::vector<std::string>& xs);
  static Value I32Arr(const std::vector<int32_t>& xs);
  static Value F32Arr(const std::vector<float>& xs);
  static Value I64(int64_t x) { return {ValueType::kInt64, x}; }
  static Value F64(double x) { return {ValueType::kFloat64, x}; }
};
// Deep equality (type, element type and value), for round-trip checks.
bool operator==(const Array& a, const Array& b);
bool operator==(const Value& a, const Value& b);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;   // ne[0] is the innermost (contiguous) dimension
  ggml::Type type = ggml::Type::kF32;
  uint64_t offset = 0;       // relative to the start of the data section
  int64_t n_elements() const;
  uint64_t n_bytes() const;  // from the type's block size; I2_S adds its scale+pad
};

// A parsed file. Metadata is copied out; tensor data stays in the mapping.
class File {
 public:
  // Opens and fully validates header, metadata and tensor table: every tensor's
  // [offset, offset+n_bytes) must lie inside the file, be aligned, and not
  // overflow. I2_S (id 36, the bitnet.cpp fork) is told apart from the upstream
  // meaning of 36 by the file's own context (see ggml_types.h).
  static absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path);
  // Same, over bytes the caller keeps alive (tests, fuzzing).
  static absl::StatusOr<std::unique_ptr<File>> FromBuffer(const uint8_t* data, size_t size,
                                                          std::string name = "<buffer>");
  // Same, over bytes the file keeps (an image built in memory).
  static absl::StatusOr<std::unique_ptr<File>> FromOwnedBuffer(std::vector<uint8_t> bytes,
                                                               std::string name);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }

  const std::map<std::string, Value>& metadata() const { return metadata_; }
  // Metadata keys in file order (to copy a file's metadata faithfully).
  const std::vector<std::string>& keys() const { return keys_; }
  const Value* Find(std::string_view key) const;
  // Typed getters: NOT_FOUND if absent, INVALID_ARGUMENT naming key and types
  // if the stored type cannot represent the request (integers convert across
  // widths when the value fits).
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;
  absl::StatusOr<double> GetFloat(std::string_view key) const;  // any numeric
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;
  // Pointer to the tensor's bytes (n_bytes() long) inside the mapping.
  const uint8_t* TensorData(const TensorInfo& t) const;

 private:
  File() = default;
  absl::Status Parse();

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  std::vector<uint8_t> owned_;  // the bytes, for FromOwnedBuffer
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value> metadata_;
  std::vector<std::string> keys_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file. Metadata keys keep insertion order; tensors are laid
// out in the order added, each aligned to `general.alignment` (default 32).
class Writer {
 public:
  void SetValue(const std::string& key, Value v);
  // `data` must be exactly TensorInfo::n_bytes() for (ne, type).
  absl::Status AddTensor(const std::string& name, std::vector<int64_t> ne, ggml::Type type,
                         std::vector<uint8_t> data);
  // A tensor whose bytes are produced only while the file is written: `fill`
  // is called once per write, in tensor order, and must pass exactly n_bytes() bytes to
  // its sink (in as many pieces as it likes). Lets a tool write a model larger
  // than memory, one tensor (or one slice of one) at a time.
  using ChunkSink = std::function<absl::Status(const void* data, size_t size)>;
  using TensorFiller = std::function<absl::Status(const ChunkSink& sink)>;
  absl::Status AddStreamedTensor(const std::string& name, std::vector<int64_t> ne,
                                 ggml::Type type, TensorFiller fill);
  // version 3 (default) or 2 (same layout; for tests and old readers).
  absl::Status WriteFile(const std::string& path, uint32_t version = 3) const;
  absl::StatusOr<std::vector<uint8_t>> Serialize(uint32_t version = 3) const;

 private:
  using Sink = std::function<absl::Status(const void* data, size_t size)>;
  absl::Status Emit(uint32_t version, const Sink& sink) const;
  absl::StatusOr<TensorInfo> CheckNewTensor(const std::string& name, std::vector<int64_t> ne,
                                            ggml::Type type) const;

  std::vector<std::pair<std::string, Value>> kv_;
  struct Pending {
    TensorInfo info;
    std::vector<uint8_t> data;
    uint64_t size = 0;  // bytes of the tensor (data.size(), or what fill writes)
    TensorFiller fill;  // set for streamed tensors
  };
  std::vector<Pending> tensors_;
};

}  // namespace bitnet::gguf
