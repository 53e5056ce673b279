// Hugging Face safetensors: a bounds-checked reader over an mmap'd file, the
// sharded form (model.safetensors.index.json), and a writer.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON (an object
// mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// plus an optional "__metadata__" object of strings), then the data section.
// Offsets are relative to the data section. Like the GGUF reader, nothing in
// the file is trusted: the header length, the JSON, every dtype, shape and
// offset are validated (shape x dtype size == end - begin without overflow,
// offsets inside the data section, tensors neither overlapping nor leaving
// holes, no duplicate names), so a corrupt or hostile file gives an
// absl::Status naming the problem, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bitnet::safetensors {

enum class Dtype {
  kBool, kU8, kI8, kU16, kI16, kF16, kBF16, kU32, kI32, kF32, kU64, kI64, kF64,
  kF8E4M3, kF8E5M2,
};
std::string_view DtypeName(Dtype d);  // "F32", "BF16", "U8", ... (the file's spelling)
absl::StatusOr<Dtype> DtypeFromName(std::string_view name);
size_t DtypeSize(Dtype d);

// The largest header we accept (the reference implementation's limit).
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;  // outermost dimension first (row-major)
  uint64_t begin = 0;          // [begin, end) inside the data section
  uint64_t end = 0;
  int64_t n_elements() const;  // 1 for a scalar (empty shape)
  uint64_t n_bytes() const { return end - begin; }
};

class File {
 public:
  static absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path);
  // Over bytes the caller keeps alive (tests, fuzzing).
  static absl::StatusOr<std::unique_ptr<File>> FromBuffer(const uint8_t* data, size_t size,
                                                          std::string name = "<buffer>");
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // In data-offset order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* Find(std::string_view name) const;
  // The tensor's n_bytes() bytes inside the mapping (no alignment promised).
  const uint8_t* Data(const TensorInfo& t) const { return data_ + data_offset_ + t.begin; }

 private:
  File() = default;
  absl::Status Parse();

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // non-null when we own an mmap
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// A tensor's values as f32 (F16, BF16, F32, F64 and the integer types).
absl::StatusOr<std::vector<float>> ReadFloats(const File& file, const TensorInfo& t);

// A checkpoint: <dir>/model.safetensors, or the shards listed by
// <dir>/model.safetensors.index.json ({"weight_map": {tensor: file}}). Shard
// names must be plain file names in <dir>; each listed tensor must be in its
// shard, and no tensor may be in two shards.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  struct Ref {
    const File* file;
    const TensorInfo* info;
  };
  std::optional<Ref> Find(std::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted
  const std::string& dir() const { return dir_; }
  size_t n_files() const { return files_.size(); }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, Ref, std::less<>> tensors_;
};

// Builds a safetensors file; tensors are laid out in the order added.
class Writer {
 public:
  void SetMetadata(const std::string& key, const std::string& value);
  // `data` must hold exactly n_elements(shape) * DtypeSize(dtype) bytes.
  absl::Status AddTensor(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
                         std::vector<uint8_t> data);
  std::vector<uint8_t> Serialize() const;
  absl::Status WriteFile(const std::string& path) const;
  uint64_t data_bytes() const { return data_bytes_; }
  std::vector<std::string> names() const;

 private:
  struct Pending {
    std::string name;
    Dtype dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<Pending> tensors_;
  uint64_t data_bytes_ = 0;
};

// model.safetensors.index.json text for shards (tensor name -> file name).
std::string IndexJson(const std::map<std::string, std::string>& weight_map, uint64_t total_size);

}  // namespace bitnet::safetensors
