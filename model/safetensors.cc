// Safetensors reader, sharded checkpoints and writer.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ggml_types.h"
#include "nlohmann/json.hpp"

namespace bitnet::safetensors {
namespace {

using Json = nlohmann::json;

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {Dtype::kBool, "BOOL", 1}, {Dtype::kU8, "U8", 1},     {Dtype::kI8, "I8", 1},
    {Dtype::kU16, "U16", 2},   {Dtype::kI16, "I16", 2},   {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2}, {Dtype::kU32, "U32", 4},   {Dtype::kI32, "I32", 4},
    {Dtype::kF32, "F32", 4},   {Dtype::kU64, "U64", 8},   {Dtype::kI64, "I64", 8},
    {Dtype::kF64, "F64", 8},   {Dtype::kF8E4M3, "F8_E4M3", 1}, {Dtype::kF8E5M2, "F8_E5M2", 1},
};

// Largest element count we accept for one tensor, so that n * size cannot
// overflow (and no real tensor comes near it).
constexpr int64_t kMaxElements = int64_t{1} << 48;
// Maximum JSON nesting in a valid header: object -> entry -> shape array.
constexpr int kMaxDepth = 3;

absl::Status Err(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(
      file, ": ", what, "; the safetensors file is corrupt or truncated (re-download it)"));
}

uint64_t ReadU64Le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Non-negative integer that fits int64.
bool AsCount(const Json& j, int64_t* out) {
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    *out = static_cast<int64_t>(v);
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = v;
    return true;
  }
  return false;
}

// Parses the header JSON, rejecting duplicate top-level keys (nlohmann would
// silently keep the last) and nesting deeper than the format has.
absl::StatusOr<Json> ParseHeader(const std::string& file, std::string_view text) {
  std::set<std::string> keys;
  std::string duplicate;
  bool too_deep = false;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxDepth) {
      too_deep = true;
      return false;
    }
    if (event == Json::parse_event_t::key && depth == 1) {
      const std::string k = parsed.get<std::string>();
      if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  Json j = Json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Err(file, "the header is not valid JSON");
  if (too_deep) return Err(file, "the header JSON is nested deeper than the format allows");
  if (!duplicate.empty()) return Err(file, absl::StrCat("tensor '", duplicate, "' is listed twice"));
  if (!j.is_object()) return Err(file, "the header is not a JSON object");
  return j;
}

absl::StatusOr<TensorInfo> ParseEntry(const std::string& file, const std::string& name,
                                      const Json& e, uint64_t data_size) {
  const std::string where = absl::StrCat("tensor '", name, "'");
  if (!e.is_object()) return Err(file, where + " is not a JSON object");
  auto dtype_it = e.find("dtype");
  auto shape_it = e.find("shape");
  auto offsets_it = e.find("data_offsets");
  if (dtype_it == e.end() || shape_it == e.end() || offsets_it == e.end()) {
    return Err(file, where + " lacks dtype, shape or data_offsets");
  }
  TensorInfo t;
  t.name = name;
  if (!dtype_it->is_string()) return Err(file, where + " has a non-string dtype");
  absl::StatusOr<Dtype> dtype = DtypeFromName(dtype_it->get<std::string>());
  if (!dtype.ok()) return Err(file, absl::StrCat(where, ": ", dtype.status().message()));
  t.dtype = *dtype;
  if (!shape_it->is_array()) return Err(file, where + " has a shape that is not an array");
  int64_t n = 1;
  for (const Json& d : *shape_it) {
    int64_t v = 0;
    if (!AsCount(d, &v)) return Err(file, where + " has a negative or non-integer dimension");
    t.shape.push_back(v);
    if (v != 0 && n > kMaxElements / v) return Err(file, where + " has too many elements");
    n *= v;
  }
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return Err(file, where + " has data_offsets that are not [begin, end]");
  }
  int64_t begin = 0, end = 0;
  if (!AsCount((*offsets_it)[0], &begin) || !AsCount((*offsets_it)[1], &end) || begin > end) {
    return Err(file, where + " has invalid data_offsets");
  }
  t.begin = static_cast<uint64_t>(begin);
  t.end = static_cast<uint64_t>(end);
  if (t.end > data_size) {
    return Err(file, absl::StrCat(where, " ends at byte ", t.end, " of a ", data_size,
                                  "-byte data section"));
  }
  const uint64_t expect = static_cast<uint64_t>(n) * DtypeSize(t.dtype);
  if (t.n_bytes() != expect) {
    return Err(file, absl::StrCat(where, " holds ", t.n_bytes(), " bytes, but its dtype and shape need ",
                                  expect));
  }
  return t;
}

float ToFloat(Dtype d, const uint8_t* p) {
  auto le = [p](int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  };
  switch (d) {
    case Dtype::kBool: return p[0] != 0 ? 1.f : 0.f;
    case Dtype::kU8: return p[0];
    case Dtype::kI8: return static_cast<int8_t>(p[0]);
    case Dtype::kU16: return static_cast<float>(le(2));
    case Dtype::kI16: return static_cast<int16_t>(le(2));
    case Dtype::kF16: return ggml::HalfToFloat(static_cast<uint16_t>(le(2)));
    case Dtype::kBF16: return ggml::Bf16ToFloat(static_cast<uint16_t>(le(2)));
    case Dtype::kU32: return static_cast<float>(le(4));
    case Dtype::kI32: return static_cast<float>(static_cast<int32_t>(le(4)));
    case Dtype::kF32: {
      const uint32_t bits = static_cast<uint32_t>(le(4));
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case Dtype::kU64: return static_cast<float>(le(8));
    case Dtype::kI64: return static_cast<float>(static_cast<int64_t>(le(8)));
    case Dtype::kF64: {
      const uint64_t bits = le(8);
      double f;
      std::memcpy(&f, &bits, 8);
      return static_cast<float>(f);
    }
    default: return 0.f;
  }
}

// A shard name from the index must be a plain file name in the checkpoint
// directory (no path components that could escape it).
bool IsPlainFileName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string_view DtypeName(Dtype d) {
  for (const DtypeInfo& i : kDtypes) {
    if (i.dtype == d) return i.name;
  }
  return "?";
}

absl::StatusOr<Dtype> DtypeFromName(std::string_view name) {
  for (const DtypeInfo& i : kDtypes) {
    if (i.name == name) return i.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype '", std::string(name), "'"));
}

size_t DtypeSize(Dtype d) {
  for (const DtypeInfo& i : kDtypes) {
    if (i.dtype == d) return i.size;
  }
  return 1;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------
// File

absl::StatusOr<std::unique_ptr<File>> File::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrFormat("cannot open safetensors file '%s': %s", path, std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrFormat("'%s' is not a regular file", path));
  }
  if (st.st_size < 8) {
    ::close(fd);
    return Err(path, absl::StrCat("the file has ", st.st_size, " bytes, fewer than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot mmap '%s' (%d bytes): %s", path, st.st_size, std::strerror(map_errno)));
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

File::~File() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

absl::Status File::Parse() {
  if (size_ < 8) return Err(path_, "the file is shorter than its 8-byte header length");
  const uint64_t n = ReadU64Le(data_);
  if (n > kMaxHeaderBytes) {
    return Err(path_, absl::StrCat("the header length ", n, " exceeds the format's limit of ",
                                   kMaxHeaderBytes, " bytes"));
  }
  if (n > size_ - 8) {
    return Err(path_, absl::StrCat("the header length ", n, " runs past the end of the ", size_,
                                   "-byte file"));
  }
  if (n < 2 || data_[8] != '{') return Err(path_, "the header does not start with '{'");
  std::string_view text(reinterpret_cast<const char*>(data_ + 8), n);
  // The header may be padded with trailing spaces (writers align the data).
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  absl::StatusOr<Json> header = ParseHeader(path_, text);
  if (!header.ok()) return header.status();
  data_offset_ = 8 + n;
  const uint64_t data_size = size_ - data_offset_;

  for (auto it = header->begin(); it != header->end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Err(path_, "__metadata__ is not a JSON object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          return Err(path_, absl::StrCat("__metadata__ value '", m.key(), "' is not a string"));
        }
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    absl::StatusOr<TensorInfo> t = ParseEntry(path_, it.key(), *it, data_size);
    if (!t.ok()) return t.status();
    tensors_.push_back(*std::move(t));
  }
  // The tensors must tile the data section exactly: sorted by offset, each
  // starts where the previous ended, and the last ends at the file's end.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expect = 0;
  for (const TensorInfo& t : tensors_) {
    if (t.begin != expect) {
      return Err(path_, absl::StrCat("tensor '", t.name, "' starts at data byte ", t.begin,
                                     " but the previous tensor ends at ", expect,
                                     " (tensors overlap or leave a hole)"));
    }
    expect = t.end;
  }
  if (expect != data_size) {
    return Err(path_, absl::StrCat("the tensors cover ", expect, " bytes of a ", data_size,
                                   "-byte data section"));
  }
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  return absl::OkStatus();
}

const TensorInfo* File::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<std::vector<float>> ReadFloats(const File& file, const TensorInfo& t) {
  if (t.dtype == Dtype::kF8E4M3 || t.dtype == Dtype::kF8E5M2) {
    return absl::UnimplementedError(absl::StrCat(file.path(), ": tensor '", t.name, "' has dtype ",
                                                 std::string(DtypeName(t.dtype)),
                                                 ", which this loader does not read"));
  }
  const size_t size = DtypeSize(t.dtype);
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const uint8_t* p = file.Data(t);
  for (size_t i = 0; i < out.size(); ++i) out[i] = ToFloat(t.dtype, p + i * size);
  return out;
}

// ---------------------------------------------------------------------------
// Checkpoint

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  auto cp = std::make_unique<Checkpoint>();
  cp->dir_ = dir;
  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  std::map<std::string, std::string> weight_map;  // tensor -> shard
  if (FileExists(index_path)) {
    std::ifstream in(index_path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
        !j["weight_map"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_path, " is not a valid index (a JSON object with a \"weight_map\" object)"));
    }
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string() || !IsPlainFileName(it->get<std::string>())) {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": tensor '", it.key(),
            "' maps to something that is not a file name in the checkpoint directory"));
      }
      weight_map[it.key()] = it->get<std::string>();
    }
    if (weight_map.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, " lists no tensors"));
    }
  } else if (FileExists(single_path)) {
    weight_map.clear();
  } else {
    return absl::NotFoundError(absl::StrCat(
        dir, " has neither model.safetensors nor model.safetensors.index.json; point at a "
        "Hugging Face model directory"));
  }

  std::set<std::string> shards;
  for (const auto& [tensor, shard] : weight_map) shards.insert(shard);
  if (weight_map.empty()) shards.insert("model.safetensors");
  std::map<std::string, const File*> by_name;
  for (const std::string& shard : shards) {
    absl::StatusOr<std::unique_ptr<File>> f = File::Open(dir + "/" + shard);
    if (!f.ok()) return f.status();
    by_name[shard] = f->get();
    cp->files_.push_back(*std::move(f));
  }
  for (const auto& file : cp->files_) {
    for (const TensorInfo& t : file->tensors()) {
      if (!weight_map.empty()) {
        // Only the shard the index names counts; a stray copy elsewhere is an error.
        auto w = weight_map.find(t.name);
        if (w == weight_map.end()) continue;
        if (by_name[w->second] != file.get()) {
          return absl::InvalidArgumentError(absl::StrCat(
              file->path(), " also holds tensor '", t.name, "', which the index assigns to ",
              w->second));
        }
      }
      cp->tensors_.emplace(t.name, Ref{file.get(), &t});
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (cp->tensors_.find(tensor) == cp->tensors_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, " says tensor '", tensor,
                                                     "' is in ", shard, ", but it is not there"));
    }
  }
  return cp;
}

std::optional<Checkpoint::Ref> Checkpoint::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  for (const auto& [name, ref] : tensors_) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------
// Writer

void Writer::SetMetadata(const std::string& key, const std::string& value) {
  metadata_[key] = value;
}

absl::Status Writer::AddTensor(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
                               std::vector<uint8_t> data) {
  if (name == "__metadata__") return absl::InvalidArgumentError("'__metadata__' is reserved");
  for (const Pending& p : tensors_) {
    if (p.name == name) return absl::InvalidArgumentError(absl::StrCat("duplicate tensor '", name, "'"));
  }
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has a negative dimension"));
    n *= d;
  }
  if (data.size() != static_cast<uint64_t>(n) * DtypeSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has ", data.size(),
                                                   " bytes; its dtype and shape need ",
                                                   static_cast<uint64_t>(n) * DtypeSize(dtype)));
  }
  data_bytes_ += data.size();
  tensors_.push_back({name, dtype, std::move(shape), std::move(data)});
  return absl::OkStatus();
}

std::vector<std::string> Writer::names() const {
  std::vector<std::string> out;
  for (const Pending& p : tensors_) out.push_back(p.name);
  return out;
}

std::vector<uint8_t> Writer::Serialize() const {
  Json header = Json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Pending& p : tensors_) {
    header[p.name] = {{"dtype", std::string(DtypeName(p.dtype))},
                      {"shape", p.shape},
                      {"data_offsets", {offset, offset + p.data.size()}}};
    offset += p.data.size();
  }
  std::string text = header.dump();
  // Pad so the data section starts 8-byte aligned, as the reference writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::vector<uint8_t> out(8);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), text.begin(), text.end());
  for (const Pending& p : tensors_) out.insert(out.end(), p.data.begin(), p.data.end());
  return out;
}

absl::Status Writer::WriteFile(const std::string& path) const {
  const std::vector<uint8_t> bytes = Serialize();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string IndexJson(const std::map<std::string, std::string>& weight_map, uint64_t total_size) {
  Json j = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  return j.dump(2);
}

}  // namespace bitnet::safetensors
