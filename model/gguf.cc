// GGUF v2/v3 reader and writer.
//
// Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, then
// n_kv key/value pairs (string key, u32 value type, value), then n_tensors
// tensor infos (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
// u64 offset), padding to general.alignment, then the data section. Strings
// are u64 length + bytes; arrays are u32 element type + u64 count + elements.
// v1 used u32 counts and lengths and is rejected.
#include "model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bitnet::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxDims = 4;
// Arrays of arrays are legal but real files nest at most once or twice; the
// limit keeps a hostile file from recursing us off the stack.
constexpr int kMaxArrayDepth = 8;
// A Value costs ~50 bytes in memory whatever its size on disk, so cap the
// total number of array elements (real vocabularies hold < 1M entries).
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 23;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
constexpr size_t kMaxNameLen = 63;  // GGML_MAX_NAME - 1: llama.cpp rejects longer names

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

// Bytes one element of a scalar type occupies; 0 for string/array.
size_t ScalarSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    default: return 0;
  }
}

// The fewest bytes an element of type t can occupy on disk.
size_t MinEncodedSize(ValueType t) {
  if (t == ValueType::kString) return 8;
  if (t == ValueType::kArray) return 12;
  return ScalarSize(t);
}

bool IsUnsigned(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64;
}
bool IsSigned(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 ||
         t == ValueType::kInt64;
}
bool IsFloat(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

// Bounds-checked cursor over the file. Every read names what it was reading
// and where, so errors point at the broken byte.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  absl::Status Error(size_t at, std::string_view msg) const {
    return absl::InvalidArgumentError(
        absl::StrFormat("GGUF %s: %s (at byte offset %d)", name_, msg, at));
  }

  absl::Status Need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      return Error(pos_, absl::StrFormat("file truncated: %s needs %d bytes but only %d remain "
                                         "of %d; the file is incomplete or corrupt",
                                         what, n, remaining(), size_));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status Read(T* out, std::string_view what) {
    if (absl::Status s = Need(sizeof(T), what); !s.ok()) return s;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, std::string_view what) {
    const size_t at = pos_;
    uint64_t len;
    if (absl::Status s = Read(&len, what); !s.ok()) return s;
    if (len > remaining()) {
      return Error(at, absl::StrFormat("%s has length %d but only %d bytes remain in the file",
                                       what, len, remaining()));
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return absl::OkStatus();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
};

class MetadataParser {
 public:
  explicit MetadataParser(Cursor& c) : c_(c) {}

  // `what` names the value in errors ("value of key 'x'"); built once per key.
  absl::Status ReadValue(ValueType type, int depth, std::string_view key, std::string_view what,
                         Value* out) {
    out->type = type;
    const size_t at = c_.pos();
    switch (type) {
      case ValueType::kUint8: return ReadUnsigned<uint8_t>(what, out);
      case ValueType::kUint16: return ReadUnsigned<uint16_t>(what, out);
      case ValueType::kUint32: return ReadUnsigned<uint32_t>(what, out);
      case ValueType::kUint64: return ReadUnsigned<uint64_t>(what, out);
      case ValueType::kInt8: return ReadSigned<int8_t>(what, out);
      case ValueType::kInt16: return ReadSigned<int16_t>(what, out);
      case ValueType::kInt32: return ReadSigned<int32_t>(what, out);
      case ValueType::kInt64: return ReadSigned<int64_t>(what, out);
      case ValueType::kFloat32: {
        float f;
        if (absl::Status s = c_.Read(&f, what); !s.ok()) return s;
        out->v = double{f};
        return absl::OkStatus();
      }
      case ValueType::kFloat64: {
        double f;
        if (absl::Status s = c_.Read(&f, what); !s.ok()) return s;
        out->v = f;
        return absl::OkStatus();
      }
      case ValueType::kBool: {
        uint8_t b;
        if (absl::Status s = c_.Read(&b, what); !s.ok()) return s;
        if (b > 1) {
          return c_.Error(at, absl::StrFormat("bool value of key '%s' is %d, not 0 or 1", key, b));
        }
        out->v = b == 1;
        return absl::OkStatus();
      }
      case ValueType::kString: {
        std::string str;
        if (absl::Status s = c_.ReadString(&str, what); !s.ok()) return s;
        out->v = std::move(str);
        return absl::OkStatus();
      }
      case ValueType::kArray: return ReadArray(depth, key, what, out);
    }
    return c_.Error(at, "internal: unhandled value type");
  }

  absl::StatusOr<ValueType> ReadType(std::string_view what) {
    const size_t at = c_.pos();
    uint32_t t;
    if (absl::Status s = c_.Read(&t, what); !s.ok()) return s;
    if (!ValidValueType(t)) {
      return c_.Error(at, absl::StrFormat("%s: unknown GGUF value type id %d (valid: 0..12)",
                                          what, t));
    }
    return static_cast<ValueType>(t);
  }

 private:
  template <typename T>
  absl::Status ReadUnsigned(std::string_view what, Value* out) {
    T x;
    if (absl::Status s = c_.Read(&x, what); !s.ok()) return s;
    out->v = uint64_t{x};
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status ReadSigned(std::string_view what, Value* out) {
    T x;
    if (absl::Status s = c_.Read(&x, what); !s.ok()) return s;
    out->v = int64_t{x};
    return absl::OkStatus();
  }

  absl::Status ReadArray(int depth, std::string_view key, std::string_view what, Value* out) {
    const size_t at = c_.pos();
    if (depth >= kMaxArrayDepth) {
      return c_.Error(at, absl::StrFormat("key '%s' nests arrays deeper than %d levels", key,
                                          kMaxArrayDepth));
    }
    absl::StatusOr<ValueType> elem = ReadType(absl::StrFormat("element type of array '%s'", key));
    if (!elem.ok()) return elem.status();
    uint64_t count;
    if (absl::Status s = c_.Read(&count, absl::StrFormat("length of array '%s'", key)); !s.ok()) {
      return s;
    }
    // Check the count against the bytes that are left before allocating.
    const uint64_t min_size = MinEncodedSize(*elem);
    if (count > c_.remaining() / min_size) {
      return c_.Error(at, absl::StrFormat(
                              "array '%s' claims %d elements of type %s (at least %d bytes each) "
                              "but only %d bytes remain",
                              key, count, ValueTypeName(*elem), min_size, c_.remaining()));
    }
    elements_ += count;
    if (elements_ > kMaxArrayElements) {
      return c_.Error(at, absl::StrFormat("metadata arrays hold more than %d elements in total; "
                                          "this reader refuses such files",
                                          kMaxArrayElements));
    }
    Array arr;
    arr.elem_type = *elem;
    arr.items.resize(static_cast<size_t>(count));
    for (Value& item : arr.items) {
      if (absl::Status s = ReadValue(*elem, depth + 1, key, what, &item); !s.ok()) return s;
    }
    out->v = std::move(arr);
    return absl::OkStatus();
  }

  Cursor& c_;
  uint64_t elements_ = 0;
};

bool IsPowerOfTwo(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Rounds x up to a multiple of `align` (a power of two); false on overflow.
bool AlignUp(uint64_t x, uint64_t align, uint64_t* out) {
  uint64_t sum;
  if (__builtin_add_overflow(x, align - 1, &sum)) return false;
  *out = sum & ~(align - 1);
  return true;
}

std::string ShapeString(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) absl::StrAppend(&s, i ? ", " : "", ne[i]);
  return s + "]";
}

}  // namespace

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

Value Value::StrArr(const std::vector<std::string>& xs) {
  std::vector<Value> items;
  items.reserve(xs.size());
  for (const std::string& x : xs) items.push_back(Str(x));
  return Arr(ValueType::kString, std::move(items));
}

Value Value::I32Arr(const std::vector<int32_t>& xs) {
  std::vector<Value> items;
  items.reserve(xs.size());
  for (int32_t x : xs) items.push_back(I32(x));
  return Arr(ValueType::kInt32, std::move(items));
}

Value Value::F32Arr(const std::vector<float>& xs) {
  std::vector<Value> items;
  items.reserve(xs.size());
  for (float x : xs) items.push_back(F32(x));
  return Arr(ValueType::kFloat32, std::move(items));
}

bool operator==(const Array& a, const Array& b) {
  return a.elem_type == b.elem_type && a.items == b.items;
}

bool operator==(const Value& a, const Value& b) { return a.type == b.type && a.v == b.v; }

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

uint64_t TensorInfo::n_bytes() const {
  absl::StatusOr<uint64_t> b = ggml::TensorBytes(type, n_elements());
  return b.ok() ? *b : 0;
}

// ---------------------------------------------------------------- File

absl::StatusOr<std::unique_ptr<File>> File::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrFormat("cannot open GGUF file '%s': %s", path, std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not a regular file; pass the path of a .gguf model", path));
  }
  if (st.st_size == 0) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrFormat("GGUF file '%s' is empty", path));
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot mmap '%s' (%d bytes): %s", path, st.st_size,
                        std::strerror(map_errno)));
  }
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  f->mapping_ = map;
  f->data_ = static_cast<const uint8_t*>(map);
  f->size_ = static_cast<size_t>(st.st_size);
  if (absl::Status s = f->Parse(); !s.ok()) return s;
  return f;
}

absl::StatusOr<std::unique_ptr<File>> File::FromBuffer(const uint8_t* data, size_t size,
                                                       std::string name) {
  std::unique_ptr<File> f(new File());
  f->path_ = std::move(name);
  f->data_ = data;
  f->size_ = size;
  if (absl::Status s = f->Parse(); !s.ok()) return s;
  return f;
}

absl::StatusOr<std::unique_ptr<File>> File::FromOwnedBuffer(std::vector<uint8_t> bytes,
                                                            std::string name) {
  std::unique_ptr<File> f(new File());
  f->path_ = std::move(name);
  f->owned_ = std::move(bytes);
  f->data_ = f->owned_.data();
  f->size_ = f->owned_.size();
  if (absl::Status s = f->Parse(); !s.ok()) return s;
  return f;
}

File::~File() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

absl::Status File::Parse() {
  Cursor c(data_, size_, path_);
  uint32_t magic;
  if (absl::Status s = c.Read(&magic, "the GGUF magic"); !s.ok()) return s;
  if (magic != kMagic) {
    return c.Error(0, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  }
  if (absl::Status s = c.Read(&version_, "the version"); !s.ok()) return s;
  if (version_ == 1) {
    return c.Error(4, "GGUF version 1 is not supported (it used 32-bit counts); re-convert the "
                      "model with a current llama.cpp to get GGUF v3");
  }
  if (version_ != 2 && version_ != 3) {
    const bool big_endian = version_ == 0x02000000 || version_ == 0x03000000;
    return c.Error(4, big_endian ? std::string("big-endian GGUF files are not supported")
                                 : absl::StrFormat("unsupported GGUF version %d (this reader "
                                                   "handles versions 2 and 3)",
                                                   version_));
  }
  uint64_t n_tensors, n_kv;
  if (absl::Status s = c.Read(&n_tensors, "the tensor count"); !s.ok()) return s;
  if (absl::Status s = c.Read(&n_kv, "the metadata count"); !s.ok()) return s;

  // Each key/value needs >= 8 (key length) + 4 (type) + 1 bytes.
  if (n_kv > c.remaining() / 13) {
    return c.Error(16, absl::StrFormat("metadata count %d cannot fit in the %d bytes that remain",
                                       n_kv, c.remaining()));
  }
  MetadataParser mp(c);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const size_t at = c.pos();
    std::string key;
    if (absl::Status s = c.ReadString(&key, absl::StrFormat("key of metadata entry %d", i));
        !s.ok()) {
      return s;
    }
    if (key.empty()) return c.Error(at, absl::StrFormat("metadata entry %d has an empty key", i));
    absl::StatusOr<ValueType> type = mp.ReadType(absl::StrCat("type of key '", key, "'"));
    if (!type.ok()) return type.status();
    Value v;
    const std::string what = absl::StrCat("value of key '", key, "'");
    if (absl::Status s = mp.ReadValue(*type, 0, key, what, &v); !s.ok()) return s;
    if (!metadata_.emplace(key, std::move(v)).second) {
      return c.Error(at, absl::StrFormat("duplicate metadata key '%s'", key));
    }
    keys_.push_back(std::move(key));
  }

  if (const Value* a = Find("general.alignment"); a != nullptr) {
    absl::StatusOr<int64_t> align = GetInt("general.alignment");
    if (!align.ok() || !IsUnsigned(a->type) || !IsPowerOfTwo(static_cast<uint64_t>(*align)) ||
        static_cast<uint64_t>(*align) > kMaxAlignment) {
      return c.Error(c.pos(), "general.alignment must be an unsigned power of two up to 2^30");
    }
    alignment_ = static_cast<uint64_t>(*align);
  } else {
    alignment_ = kDefaultAlignment;
  }

  // Each tensor info needs >= 8 (name) + 4 + 8 (one dim) + 4 + 8 bytes.
  if (n_tensors > c.remaining() / 32) {
    return c.Error(8, absl::StrFormat("tensor count %d cannot fit in the %d bytes that remain",
                                      n_tensors, c.remaining()));
  }
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const size_t at = c.pos();
    TensorInfo t;
    if (absl::Status s = c.ReadString(&t.name, absl::StrFormat("name of tensor %d", i)); !s.ok()) {
      return s;
    }
    if (t.name.empty()) return c.Error(at, absl::StrFormat("tensor %d has an empty name", i));
    const std::string what = absl::StrCat("tensor '", t.name, "'");
    uint32_t n_dims;
    if (absl::Status s = c.Read(&n_dims, what + " dimension count"); !s.ok()) return s;
    if (n_dims == 0 || n_dims > kMaxDims) {
      return c.Error(at, absl::StrFormat("%s has %d dimensions (must be 1..%d)", what, n_dims,
                                         kMaxDims));
    }
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim;
      if (absl::Status s = c.Read(&dim, what + " shape"); !s.ok()) return s;
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return c.Error(at, absl::StrFormat("%s has invalid size %d in dimension %d", what,
                                           static_cast<int64_t>(dim), d));
      }
      t.ne.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(n_elements, t.ne.back(), &n_elements)) {
        return c.Error(at, absl::StrFormat("%s element count overflows int64", what));
      }
    }
    uint32_t type_id;
    if (absl::Status s = c.Read(&type_id, what + " type"); !s.ok()) return s;
    std::optional<ggml::TypeTraits> tr = ggml::Traits(type_id);
    if (!tr.has_value()) {
      return c.Error(at, absl::StrFormat("%s has unknown ggml type id %d", what, type_id));
    }
    t.type = tr->type;
    if (t.ne[0] % tr->block_elems != 0) {
      return c.Error(at, absl::StrFormat("%s of type %s has row length %d, not a multiple of "
                                         "its block size %d",
                                         what, tr->name, t.ne[0], tr->block_elems));
    }
    if (absl::StatusOr<uint64_t> b = ggml::TensorBytes(t.type, n_elements); !b.ok()) {
      return c.Error(at, absl::StrCat(what, ": ", b.status().message()));
    }
    if (absl::Status s = c.Read(&t.offset, what + " data offset"); !s.ok()) return s;
    if (t.offset % alignment_ != 0) {
      return c.Error(at, absl::StrFormat("%s data offset %d is not a multiple of the alignment %d",
                                         what, t.offset, alignment_));
    }
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      return c.Error(at, absl::StrFormat("duplicate tensor name '%s'", t.name));
    }
    tensors_.push_back(std::move(t));
  }

  if (!AlignUp(c.pos(), alignment_, &data_offset_)) {
    return c.Error(c.pos(), "data section offset overflows");
  }
  const uint64_t data_size = data_offset_ <= size_ ? size_ - data_offset_ : 0;
  if (!tensors_.empty() && data_offset_ > size_) {
    return c.Error(c.pos(), absl::StrFormat("file truncated: the data section should start at "
                                            "byte %d but the file has %d bytes",
                                            data_offset_, size_));
  }

  // Every tensor inside the data section; no two overlapping.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  uint64_t prev_end = 0;
  const TensorInfo* prev = nullptr;
  for (size_t i : order) {
    const TensorInfo& t = tensors_[i];
    const uint64_t bytes = t.n_bytes();
    if (t.offset > data_size || bytes > data_size - t.offset) {
      return c.Error(data_offset_ + std::min(t.offset, data_size),
                     absl::StrFormat("tensor '%s' (%s %s, %d bytes at data offset %d) extends "
                                     "past the end of the file (data section holds %d bytes); "
                                     "the file is truncated or corrupt",
                                     t.name, ggml::Traits(t.type).name, ShapeString(t.ne), bytes,
                                     t.offset, data_size));
    }
    if (prev != nullptr && t.offset < prev_end) {
      return c.Error(data_offset_ + t.offset,
                     absl::StrFormat("tensor '%s' (data offset %d) overlaps tensor '%s' "
                                     "(data [%d, %d))%s",
                                     t.name, t.offset, prev->name, prev->offset, prev_end,
                                     prev->type == ggml::Type::kI2S
                                         ? "; type id 36 does not fit the I2_S layout here"
                                         : ""));
    }
    prev = &t;
    prev_end = t.offset + bytes;
  }
  return absl::OkStatus();
}

const Value* File::Find(std::string_view key) const {
  auto it = metadata_.find(std::string(key));
  return it == metadata_.end() ? nullptr : &it->second;
}

namespace {

absl::Status WrongType(std::string_view key, const Value& v, std::string_view wanted) {
  std::string got(ValueTypeName(v.type));
  if (v.type == ValueType::kArray) {
    got += absl::StrFormat(" of %s", ValueTypeName(std::get<Array>(v.v).elem_type));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("GGUF key '%s' holds %s, expected %s", key, got, wanted));
}

absl::Status Missing(std::string_view key) {
  return absl::NotFoundError(absl::StrFormat("GGUF key '%s' not found", key));
}

// Integer value of an integer-typed Value; error if it does not fit int64.
absl::StatusOr<int64_t> AsInt(std::string_view key, const Value& v) {
  if (IsSigned(v.type)) return std::get<int64_t>(v.v);
  if (IsUnsigned(v.type)) {
    const uint64_t u = std::get<uint64_t>(v.v);
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::OutOfRangeError(
          absl::StrFormat("GGUF key '%s' holds %d, which does not fit int64", key, u));
    }
    return static_cast<int64_t>(u);
  }
  return WrongType(key, v, "an integer");
}

absl::StatusOr<double> AsFloat(std::string_view key, const Value& v) {
  if (IsFloat(v.type)) return std::get<double>(v.v);
  if (IsSigned(v.type)) return static_cast<double>(std::get<int64_t>(v.v));
  if (IsUnsigned(v.type)) return static_cast<double>(std::get<uint64_t>(v.v));
  return WrongType(key, v, "a number");
}

absl::StatusOr<const Array*> AsArray(const File& f, std::string_view key) {
  const Value* v = f.Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kArray) return WrongType(key, *v, "an array");
  return &std::get<Array>(v->v);
}

}  // namespace

absl::StatusOr<std::string> File::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kString) return WrongType(key, *v, "a string");
  return std::get<std::string>(v->v);
}

absl::StatusOr<int64_t> File::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  return AsInt(key, *v);
}

absl::StatusOr<double> File::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  return AsFloat(key, *v);
}

absl::StatusOr<bool> File::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != ValueType::kBool) return WrongType(key, *v, "a bool");
  return std::get<bool>(v->v);
}

absl::StatusOr<std::vector<std::string>> File::GetStringArray(std::string_view key) const {
  absl::StatusOr<const Array*> a = AsArray(*this, key);
  if (!a.ok()) return a.status();
  if ((*a)->elem_type != ValueType::kString) return WrongType(key, *Find(key), "array of string");
  std::vector<std::string> out;
  out.reserve((*a)->items.size());
  for (const Value& item : (*a)->items) out.push_back(std::get<std::string>(item.v));
  return out;
}

absl::StatusOr<std::vector<int64_t>> File::GetIntArray(std::string_view key) const {
  absl::StatusOr<const Array*> a = AsArray(*this, key);
  if (!a.ok()) return a.status();
  const ValueType et = (*a)->elem_type;
  if (!IsSigned(et) && !IsUnsigned(et)) return WrongType(key, *Find(key), "array of integers");
  std::vector<int64_t> out;
  out.reserve((*a)->items.size());
  for (const Value& item : (*a)->items) {
    absl::StatusOr<int64_t> x = AsInt(key, item);
    if (!x.ok()) return x.status();
    out.push_back(*x);
  }
  return out;
}

absl::StatusOr<std::vector<double>> File::GetFloatArray(std::string_view key) const {
  absl::StatusOr<const Array*> a = AsArray(*this, key);
  if (!a.ok()) return a.status();
  const ValueType et = (*a)->elem_type;
  if (!IsSigned(et) && !IsUnsigned(et) && !IsFloat(et)) {
    return WrongType(key, *Find(key), "array of numbers");
  }
  std::vector<double> out;
  out.reserve((*a)->items.size());
  for (const Value& item : (*a)->items) out.push_back(*AsFloat(key, item));
  return out;
}

const TensorInfo* File::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const uint8_t* File::TensorData(const TensorInfo& t) const {
  return data_ + data_offset_ + t.offset;
}

// ---------------------------------------------------------------- Writer

namespace {

// Serializes values into a byte buffer, checking that each Value's variant
// matches its declared type.
class Encoder {
 public:
  explicit Encoder(std::vector<uint8_t>& out) : out_(out) {}

  template <typename T>
  void Put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }

  absl::Status PutValue(std::string_view key, const Value& v) {
    switch (v.type) {
      case ValueType::kUint8: return PutInt<uint8_t>(key, v);
      case ValueType::kUint16: return PutInt<uint16_t>(key, v);
      case ValueType::kUint32: return PutInt<uint32_t>(key, v);
      case ValueType::kUint64: return PutInt<uint64_t>(key, v);
      case ValueType::kInt8: return PutInt<int8_t>(key, v);
      case ValueType::kInt16: return PutInt<int16_t>(key, v);
      case ValueType::kInt32: return PutInt<int32_t>(key, v);
      case ValueType::kInt64: return PutInt<int64_t>(key, v);
      case ValueType::kFloat32:
      case ValueType::kFloat64: {
        const double* d = std::get_if<double>(&v.v);
        if (d == nullptr) return Mismatch(key, v);
        if (v.type == ValueType::kFloat32) {
          Put(static_cast<float>(*d));
        } else {
          Put(*d);
        }
        return absl::OkStatus();
      }
      case ValueType::kBool: {
        const bool* b = std::get_if<bool>(&v.v);
        if (b == nullptr) return Mismatch(key, v);
        Put<uint8_t>(*b ? 1 : 0);
        return absl::OkStatus();
      }
      case ValueType::kString: {
        const std::string* s = std::get_if<std::string>(&v.v);
        if (s == nullptr) return Mismatch(key, v);
        PutString(*s);
        return absl::OkStatus();
      }
      case ValueType::kArray: {
        const Array* a = std::get_if<Array>(&v.v);
        if (a == nullptr || !ValidValueType(static_cast<uint32_t>(a->elem_type))) {
          return Mismatch(key, v);
        }
        Put(static_cast<uint32_t>(a->elem_type));
        Put<uint64_t>(a->items.size());
        for (const Value& item : a->items) {
          if (item.type != a->elem_type) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "GGUF writer: array '%s' of %s holds an element of type %s", key,
                ValueTypeName(a->elem_type), ValueTypeName(item.type)));
          }
          if (absl::Status s = PutValue(key, item); !s.ok()) return s;
        }
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: key '%s' has invalid value type %d", key, static_cast<uint32_t>(v.type)));
  }

 private:
  static absl::Status Mismatch(std::string_view key, const Value& v) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: key '%s' is declared %s but holds another kind of value", key,
        ValueTypeName(v.type)));
  }

  // Integers may be held as either int64_t or uint64_t; they must fit T.
  template <typename T>
  absl::Status PutInt(std::string_view key, const Value& v) {
    bool fits = false;
    T x{};
    if (const uint64_t* u = std::get_if<uint64_t>(&v.v)) {
      fits = *u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
      x = static_cast<T>(*u);
    } else if (const int64_t* s = std::get_if<int64_t>(&v.v)) {
      fits = std::is_signed_v<T>
                 ? (*s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                    *s <= static_cast<int64_t>(std::numeric_limits<T>::max()))
                 : (*s >= 0 && static_cast<uint64_t>(*s) <=
                                   static_cast<uint64_t>(std::numeric_limits<T>::max()));
      x = static_cast<T>(*s);
    }
    if (!fits) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GGUF writer: key '%s' value does not fit its type %s", key, ValueTypeName(v.type)));
    }
    Put(x);
    return absl::OkStatus();
  }

  std::vector<uint8_t>& out_;
};

}  // namespace

void Writer::SetValue(const std::string& key, Value v) {
  for (auto& [k, old] : kv_) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

absl::StatusOr<TensorInfo> Writer::CheckNewTensor(const std::string& name, std::vector<int64_t> ne,
                                                  ggml::Type type) const {
  if (name.empty() || name.size() > kMaxNameLen) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor name '%s' must have 1..%d characters", name, kMaxNameLen));
  }
  for (const Pending& p : tensors_) {
    if (p.info.name == name) {
      return absl::InvalidArgumentError(
          absl::StrFormat("GGUF writer: tensor '%s' added twice", name));
    }
  }
  if (ne.empty() || ne.size() > kMaxDims) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s' has %d dimensions (must be 1..%d)", name, ne.size(), kMaxDims));
  }
  const ggml::TypeTraits& tr = ggml::Traits(type);
  if (!ggml::Traits(static_cast<uint32_t>(type)).has_value()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s' has unknown type id %d", name, static_cast<uint32_t>(type)));
  }
  TensorInfo info{name, std::move(ne), type, 0};
  for (int64_t d : info.ne) {
    if (d <= 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GGUF writer: tensor '%s' has non-positive shape %s", name, ShapeString(info.ne)));
    }
  }
  if (info.n_elements() < 0 || info.ne[0] % tr.block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s' shape %s does not suit type %s (row length must be a multiple "
        "of %d and the size must fit int64)",
        name, ShapeString(info.ne), tr.name, tr.block_elems));
  }
  if (absl::StatusOr<uint64_t> bytes = ggml::TensorBytes(type, info.n_elements()); !bytes.ok()) {
    return bytes.status();
  }
  return info;
}

absl::Status Writer::AddTensor(const std::string& name, std::vector<int64_t> ne, ggml::Type type,
                               std::vector<uint8_t> data) {
  absl::StatusOr<TensorInfo> info = CheckNewTensor(name, std::move(ne), type);
  if (!info.ok()) return info.status();
  const uint64_t bytes = info->n_bytes();
  const ggml::TypeTraits& tr = ggml::Traits(type);
  if (bytes != data.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GGUF writer: tensor '%s' (%s %s) needs %d bytes of data, got %d", name, tr.name,
        ShapeString(info->ne), bytes, data.size()));
  }
  tensors_.push_back({*std::move(info), std::move(data), bytes, nullptr});
  return absl::OkStatus();
}

absl::Status Writer::AddStreamedTensor(const std::string& name, std::vector<int64_t> ne,
                                       ggml::Type type, TensorFiller fill) {
  if (!fill) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GGUF writer: streamed tensor '%s' has no fill function", name));
  }
  absl::StatusOr<TensorInfo> info = CheckNewTensor(name, std::move(ne), type);
  if (!info.ok()) return info.status();
  const uint64_t bytes = info->n_bytes();
  tensors_.push_back({*std::move(info), {}, bytes, std::move(fill)});
  return absl::OkStatus();
}

absl::Status Writer::Emit(uint32_t version, const Sink& sink) const {
  if (version != 2 && version != 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("GGUF writer: can write versions 2 and 3, not %d", version));
  }
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [k, v] : kv_) {
    if (k != "general.alignment") continue;
    const uint64_t* a = std::get_if<uint64_t>(&v.v);
    if (v.type != ValueType::kUint32 || a == nullptr || !IsPowerOfTwo(*a) || *a > kMaxAlignment) {
      return absl::InvalidArgumentError(
          "GGUF writer: general.alignment must be a uint32 power of two up to 2^30");
    }
    alignment = *a;
  }

  std::vector<uint8_t> head;
  Encoder enc(head);
  enc.Put(kMagic);
  enc.Put(version);
  enc.Put<uint64_t>(tensors_.size());
  enc.Put<uint64_t>(kv_.size());
  for (const auto& [k, v] : kv_) {
    if (k.empty()) return absl::InvalidArgumentError("GGUF writer: empty metadata key");
    enc.PutString(k);
    enc.Put(static_cast<uint32_t>(v.type));
    if (absl::Status s = enc.PutValue(k, v); !s.ok()) return s;
  }
  // Tensors are laid out back to back in the order added, each padded to the
  // alignment, which is what llama.cpp expects.
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const Pending& p : tensors_) {
    offsets.push_back(offset);
    enc.PutString(p.info.name);
    enc.Put(static_cast<uint32_t>(p.info.ne.size()));
    for (int64_t d : p.info.ne) enc.Put(static_cast<uint64_t>(d));
    enc.Put(static_cast<uint32_t>(p.info.type));
    enc.Put(offset);
    AlignUp(offset + p.size, alignment, &offset);
  }
  uint64_t data_start = head.size();
  AlignUp(head.size(), alignment, &data_start);
  head.resize(data_start, 0);
  if (absl::Status s = sink(head.data(), head.size()); !s.ok()) return s;

  const std::vector<uint8_t> zeros(alignment, 0);
  for (const Pending& p : tensors_) {
    if (p.fill) {
      // Count what the filler writes: the offsets above assumed p.size bytes.
      uint64_t written = 0;
      absl::Status s = p.fill([&](const void* d, size_t n) {
        if (written + n > p.size) {
          return absl::InternalError(absl::StrFormat(
              "GGUF writer: streamed tensor '%s' wrote more than its %d bytes", p.info.name, p.size));
        }
        written += n;
        return sink(d, n);
      });
      if (!s.ok()) return s;
      if (written != p.size) {
        return absl::InternalError(absl::StrFormat(
            "GGUF writer: streamed tensor '%s' wrote %d of its %d bytes", p.info.name, written,
            p.size));
      }
    } else if (absl::Status s = sink(p.data.data(), p.data.size()); !s.ok()) {
      return s;
    }
    const uint64_t pad = (alignment - p.size % alignment) % alignment;
    if (absl::Status s = sink(zeros.data(), pad); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> Writer::Serialize(uint32_t version) const {
  std::vector<uint8_t> out;
  absl::Status s = Emit(version, [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status Writer::WriteFile(const std::string& path, uint32_t version) const {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrFormat("cannot create '%s': %s", path, std::strerror(errno)));
  }
  absl::Status s = Emit(version, [&](const void* p, size_t n) {
    if (n != 0 && std::fwrite(p, 1, n, f) != n) {
      return absl::DataLossError(
          absl::StrFormat("writing '%s' failed: %s", path, std::strerror(errno)));
    }
    return absl::OkStatus();
  });
  if (std::fclose(f) != 0 && s.ok()) {
    s = absl::DataLossError(absl::StrFormat("closing '%s' failed: %s", path, std::strerror(errno)));
  }
  if (!s.ok()) std::remove(path.c_str());
  return s;
}

}  // namespace bitnet::gguf
