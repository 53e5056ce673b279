#include "tools/trained_import.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"

namespace bitnet::trained {
namespace {

using Json = nlohmann::json;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("trained-model export: ", what));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::ostringstream s;
  s << in.rdbuf();
  if (!in.good() && !in.eof()) return absl::DataLossError(absl::StrCat("cannot read '", path, "'"));
  return s.str();
}

// A field of `obj` that must be present with the right JSON type; the
// checks run before any nlohmann getter, so a malformed file never throws.
absl::StatusOr<const Json*> Field(const Json& obj, const std::string& key, Json::value_t type,
                                  const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return Bad(absl::StrCat(where, ": missing \"", key, "\""));
  const bool ok = type == Json::value_t::number_float ? it->is_number()
                  : type == Json::value_t::number_unsigned
                      ? it->is_number_unsigned() ||
                            (it->is_number_integer() && it->get<int64_t>() >= 0)
                      : it->type() == type;
  if (!ok) return Bad(absl::StrCat(where, ": \"", key, "\" has the wrong type"));
  return &*it;
}

absl::StatusOr<int64_t> PositiveInt(const Json& obj, const std::string& key,
                                    const std::string& where) {
  absl::StatusOr<const Json*> f = Field(obj, key, Json::value_t::number_unsigned, where);
  if (!f.ok()) return f.status();
  const uint64_t v = (*f)->get<uint64_t>();
  if (v == 0 || v > 0xffffffffull) {
    return Bad(absl::StrCat(where, ": \"", key, "\" must be in [1, 2^32), got ", v));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<double> PositiveFloat(const Json& obj, const std::string& key,
                                     const std::string& where) {
  absl::StatusOr<const Json*> f = Field(obj, key, Json::value_t::number_float, where);
  if (!f.ok()) return f.status();
  const double v = (*f)->get<double>();
  if (!(v > 0) || !std::isfinite(v)) {
    return Bad(absl::StrCat(where, ": \"", key, "\" must be a positive number"));
  }
  return v;
}

absl::StatusOr<std::vector<std::string>> StringList(const Json& obj, const std::string& key,
                                                    const std::string& where) {
  absl::StatusOr<const Json*> f = Field(obj, key, Json::value_t::array, where);
  if (!f.ok()) return f.status();
  std::vector<std::string> out;
  out.reserve((*f)->size());
  for (const Json& v : **f) {
    if (!v.is_string()) return Bad(absl::StrCat(where, ": \"", key, "\" must hold strings"));
    out.push_back(v.get<std::string>());
  }
  return out;
}

// Hyperparameters -> `bitnet-b1.58.*` keys, with llama.cpp's names.
absl::Status AddHparams(const Json& meta, gguf::Writer& w) {
  absl::StatusOr<const Json*> hp = Field(meta, "hparams", Json::value_t::object, "top level");
  if (!hp.ok()) return hp.status();
  const std::string a = "bitnet-b1.58.";
  struct IntKey {
    const char* field;
    const char* key;
  };
  const IntKey ints[] = {{"n_ctx", "context_length"},         {"n_embd", "embedding_length"},
                         {"n_layer", "block_count"},          {"n_ff", "feed_forward_length"},
                         {"n_head", "attention.head_count"},  {"n_head_kv", "attention.head_count_kv"},
                         {"n_vocab", "vocab_size"}};
  int64_t n_embd = 0, n_head = 0;
  for (const IntKey& k : ints) {
    absl::StatusOr<int64_t> v = PositiveInt(**hp, k.field, "hparams");
    if (!v.ok()) return v.status();
    w.SetValue(a + k.key, gguf::Value::U32(static_cast<uint32_t>(*v)));
    if (std::strcmp(k.field, "n_embd") == 0) n_embd = *v;
    if (std::strcmp(k.field, "n_head") == 0) n_head = *v;
  }
  if (n_embd % n_head != 0) return Bad("hparams: n_embd must be a multiple of n_head");
  w.SetValue(a + "rope.dimension_count", gguf::Value::U32(static_cast<uint32_t>(n_embd / n_head)));
  absl::StatusOr<double> base = PositiveFloat(**hp, "rope_base", "hparams");
  if (!base.ok()) return base.status();
  absl::StatusOr<double> eps = PositiveFloat(**hp, "rms_eps", "hparams");
  if (!eps.ok()) return eps.status();
  w.SetValue(a + "rope.freq_base", gguf::Value::F32(static_cast<float>(*base)));
  w.SetValue(a + "attention.layer_norm_rms_epsilon", gguf::Value::F32(static_cast<float>(*eps)));
  return absl::OkStatus();
}

// The trained byte-level BPE vocabulary -> tokenizer.ggml.* keys.
absl::Status AddTokenizer(const Json& meta, gguf::Writer& w) {
  absl::StatusOr<const Json*> tk = Field(meta, "tokenizer", Json::value_t::object, "top level");
  if (!tk.ok()) return tk.status();
  const Json& t = **tk;
  absl::StatusOr<std::vector<std::string>> tokens = StringList(t, "tokens", "tokenizer");
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::vector<std::string>> merges = StringList(t, "merges", "tokenizer");
  if (!merges.ok()) return merges.status();
  absl::StatusOr<const Json*> types = Field(t, "token_types", Json::value_t::array, "tokenizer");
  if (!types.ok()) return types.status();
  if ((*types)->size() != tokens->size()) {
    return Bad("tokenizer: token_types and tokens differ in length");
  }
  std::vector<int32_t> type_ids;
  for (const Json& v : **types) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 6) {
      return Bad("tokenizer: token_types must be llama.cpp token types (0-6)");
    }
    type_ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  std::vector<std::string> strings;
  for (const char* key : {"model", "pre"}) {
    absl::StatusOr<const Json*> s = Field(t, key, Json::value_t::string, "tokenizer");
    if (!s.ok()) return s.status();
    strings.push_back((*s)->get<std::string>());
  }
  std::vector<uint32_t> ids;
  for (const char* key : {"bos", "eos"}) {
    absl::StatusOr<const Json*> v = Field(t, key, Json::value_t::number_unsigned, "tokenizer");
    if (!v.ok()) return v.status();
    if ((*v)->get<uint64_t>() >= tokens->size()) {
      return Bad(absl::StrCat("tokenizer: ", key, " id is outside the vocabulary"));
    }
    ids.push_back(static_cast<uint32_t>((*v)->get<uint64_t>()));
  }
  absl::StatusOr<const Json*> add_bos = Field(t, "add_bos", Json::value_t::boolean, "tokenizer");
  if (!add_bos.ok()) return add_bos.status();
  w.SetValue("tokenizer.ggml.model", gguf::Value::Str(strings[0]));
  w.SetValue("tokenizer.ggml.pre", gguf::Value::Str(strings[1]));
  w.SetValue("tokenizer.ggml.tokens", gguf::Value::StrArr(*tokens));
  w.SetValue("tokenizer.ggml.token_type", gguf::Value::I32Arr(type_ids));
  w.SetValue("tokenizer.ggml.merges", gguf::Value::StrArr(*merges));
  w.SetValue("tokenizer.ggml.bos_token_id", gguf::Value::U32(ids[0]));
  w.SetValue("tokenizer.ggml.eos_token_id", gguf::Value::U32(ids[1]));
  w.SetValue("tokenizer.ggml.add_bos_token", gguf::Value::Bool((*add_bos)->get<bool>()));
  w.SetValue("tokenizer.ggml.add_eos_token", gguf::Value::Bool(false));
  return absl::OkStatus();
}

// llama_ftype of the linear weights' type (bitnet.cpp's 40 for I2_S).
uint32_t FileType(ggml::Type t) {
  switch (t) {
    case ggml::Type::kTQ1_0: return 36;
    case ggml::Type::kTQ2_0: return 37;
    case ggml::Type::kI2S: return 40;
    default: return 0;
  }
}

struct TensorEntry {
  std::string name, kind, dtype;
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  uint64_t offset = 0, nbytes = 0;
  float scale = 0;
  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

absl::StatusOr<TensorEntry> ParseEntry(const Json& e, size_t index) {
  const std::string where = absl::StrCat("tensors[", index, "]");
  if (!e.is_object()) return Bad(absl::StrCat(where, " is not an object"));
  TensorEntry t;
  for (auto [key, dst] : {std::pair<const char*, std::string*>{"name", &t.name},
                          {"kind", &t.kind}, {"dtype", &t.dtype}}) {
    absl::StatusOr<const Json*> f = Field(e, key, Json::value_t::string, where);
    if (!f.ok()) return f.status();
    *dst = (*f)->get<std::string>();
  }
  const std::string at = absl::StrCat(where, " (", t.name, ")");
  absl::StatusOr<const Json*> shape = Field(e, "shape", Json::value_t::array, at);
  if (!shape.ok()) return shape.status();
  if ((*shape)->empty() || (*shape)->size() > 2) return Bad(absl::StrCat(at, ": shape must have 1 or 2 dimensions"));
  for (const Json& d : **shape) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t{1} << 31)) {
      return Bad(absl::StrCat(at, ": shape entries must be positive integers"));
    }
    t.shape.push_back(d.get<int64_t>());
  }
  for (auto [key, dst] : {std::pair<const char*, uint64_t*>{"offset", &t.offset}, {"nbytes", &t.nbytes}}) {
    absl::StatusOr<const Json*> f = Field(e, key, Json::value_t::number_unsigned, at);
    if (!f.ok()) return f.status();
    *dst = (*f)->get<uint64_t>();
  }
  if (t.kind == "ternary") {
    if (t.dtype != "i8" || t.shape.size() != 2) {
      return Bad(absl::StrCat(at, ": a ternary tensor is an i8 matrix of codes"));
    }
    absl::StatusOr<const Json*> s = Field(e, "scale", Json::value_t::number_float, at);
    if (!s.ok()) return s.status();
    t.scale = static_cast<float>((*s)->get<double>());
    if (!(t.scale >= 0) || !std::isfinite(t.scale)) {
      return Bad(absl::StrCat(at, ": scale must be a finite non-negative number"));
    }
  } else if (t.kind == "float") {
    if (t.dtype != "f32") return Bad(absl::StrCat(at, ": a float tensor has dtype f32"));
  } else {
    return Bad(absl::StrCat(at, ": kind must be \"ternary\" or \"float\", got \"", t.kind, "\""));
  }
  const uint64_t want = static_cast<uint64_t>(t.elements()) * (t.kind == "ternary" ? 1 : 4);
  if (t.nbytes != want) {
    return Bad(absl::StrCat(at, ": nbytes is ", t.nbytes, " but the shape needs ", want));
  }
  return t;
}

// Encodes codes * scale in `type` and checks that decoding gives back the
// same codes and scale, so the file holds exactly the trained weights.
absl::StatusOr<std::vector<uint8_t>> EncodeTernary(const TensorEntry& t, const int8_t* codes,
                                                   ggml::Type type) {
  const int64_t n = t.elements();
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    if (codes[i] < -1 || codes[i] > 1) {
      return Bad(absl::StrCat(t.name, ": code ", int{codes[i]}, " at ", i, " is not in {-1, 0, 1}"));
    }
    values[static_cast<size_t>(i)] = static_cast<float>(codes[i]) * t.scale;
  }
  if (absl::StatusOr<uint64_t> b = ggml::TensorBytes(type, n); !b.ok() || t.shape[1] % ggml::Traits(type).block_elems != 0) {
    return Bad(absl::StrCat(t.name, ": rows of ", t.shape[1], " values do not fit ",
                            std::string(ggml::Traits(type).name), " blocks of ",
                            ggml::Traits(type).block_elems, "; choose another --type"));
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = ggml::Quantize(type, values);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<ggml::TernaryDecoded> back = ggml::DecodeTernary(type, bytes->data(), n);
  if (!back.ok()) return back.status();
  for (int64_t i = 0; i < n; ++i) {
    const float scale = back->scales[static_cast<size_t>(i / back->scale_block)];
    if (back->codes[static_cast<size_t>(i)] != codes[i] || (codes[i] != 0 && scale != t.scale)) {
      return Bad(absl::StrCat(t.name, ": ", std::string(ggml::Traits(type).name),
                              " cannot store this tensor exactly (scale ", t.scale,
                              " is not representable?); the trainer rounds scales to fp16 values"));
    }
  }
  return bytes;
}

absl::StatusOr<std::vector<uint8_t>> EncodeFloat(const TensorEntry& t, const uint8_t* raw,
                                                 ggml::Type embd_type) {
  std::vector<float> values(static_cast<size_t>(t.elements()));
  std::memcpy(values.data(), raw, t.nbytes);  // little-endian f32, as on every supported host
  for (float v : values) {
    if (!std::isfinite(v)) return Bad(absl::StrCat(t.name, ": holds a non-finite value"));
  }
  // Norm weights stay f32; only the embedding takes the chosen type.
  const ggml::Type type = t.name == "token_embd.weight" ? embd_type : ggml::Type::kF32;
  if (type == ggml::Type::kF32) {
    std::vector<uint8_t> out(t.nbytes);
    std::memcpy(out.data(), raw, t.nbytes);
    return out;
  }
  return ggml::Quantize(type, values);
}

absl::Status AddTensors(const Json& meta, const std::string& bin, const ImportOptions& o,
                        gguf::Writer& w) {
  absl::StatusOr<const Json*> list = Field(meta, "tensors", Json::value_t::array, "top level");
  if (!list.ok()) return list.status();
  for (size_t i = 0; i < (*list)->size(); ++i) {
    absl::StatusOr<TensorEntry> t = ParseEntry((**list)[i], i);
    if (!t.ok()) return t.status();
    if (t->offset > bin.size() || t->nbytes > bin.size() - t->offset) {
      return Bad(absl::StrCat(t->name, ": bytes [", t->offset, ", ", t->offset + t->nbytes,
                              ") lie outside the .bin file (", bin.size(), " bytes)"));
    }
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(bin.data()) + t->offset;
    const bool ternary = t->kind == "ternary";
    absl::StatusOr<std::vector<uint8_t>> bytes =
        ternary ? EncodeTernary(*t, reinterpret_cast<const int8_t*>(raw), o.ternary_type)
                : EncodeFloat(*t, raw, o.embd_type);
    if (!bytes.ok()) return bytes.status();
    // ggml order: ne[0] is the row length.
    std::vector<int64_t> ne(t->shape.rbegin(), t->shape.rend());
    const ggml::Type type = ternary                          ? o.ternary_type
                            : t->name == "token_embd.weight" ? o.embd_type
                                                             : ggml::Type::kF32;
    if (absl::Status s = w.AddTensor(t->name, std::move(ne), type, std::move(*bytes)); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLoads(const std::string& path) {
  absl::StatusOr<std::unique_ptr<gguf::File>> f = gguf::File::Open(path);
  if (!f.ok()) return f.status();
  absl::StatusOr<std::shared_ptr<const ModelWeights>> w = ModelWeights::Load(**f);
  if (!w.ok()) return w.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::FromGguf(**f);
  return t.status();
}

}  // namespace

absl::StatusOr<gguf::Writer> BuildGguf(const std::string& json_path, const std::string& bin_path,
                                       const ImportOptions& options) {
  if (!ggml::Traits(options.ternary_type).ternary) {
    return absl::InvalidArgumentError("the linear weight type must be tq1_0, tq2_0 or i2_s");
  }
  absl::StatusOr<std::string> text = ReadFile(json_path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::string> bin = ReadFile(bin_path);
  if (!bin.ok()) return bin.status();
  const Json meta = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Bad(absl::StrCat(json_path, " is not a JSON object"));
  }
  absl::StatusOr<const Json*> format = Field(meta, "format", Json::value_t::string, "top level");
  if (!format.ok()) return format.status();
  absl::StatusOr<const Json*> version = Field(meta, "version", Json::value_t::number_unsigned, "top level");
  if (!version.ok()) return version.status();
  if ((*format)->get<std::string>() != "bitnet-trained" || (*version)->get<uint64_t>() != 1) {
    return Bad(absl::StrCat(json_path, " is not a bitnet-trained version 1 export (written by "
                                       "tools/train/export.py)"));
  }
  absl::StatusOr<const Json*> arch = Field(meta, "arch", Json::value_t::string, "top level");
  if (!arch.ok()) return arch.status();
  if ((*arch)->get<std::string>() != "bitnet-b1.58") {
    return Bad(absl::StrCat("arch \"", (*arch)->get<std::string>(), "\" is not bitnet-b1.58"));
  }
  std::string name = options.name;
  if (name.empty()) {
    auto it = meta.find("name");
    name = it != meta.end() && it->is_string() ? it->get<std::string>() : "bitnet-trained";
  }

  gguf::Writer w;
  w.SetValue("general.architecture", gguf::Value::Str("bitnet-b1.58"));
  w.SetValue("general.name", gguf::Value::Str(name));
  w.SetValue("general.alignment", gguf::Value::U32(32));
  if (auto it = meta.find("provenance"); it != meta.end() && it->is_object()) {
    w.SetValue("general.description", gguf::Value::Str(it->dump()));
  }
  if (absl::Status s = AddHparams(meta, w); !s.ok()) return s;
  w.SetValue("general.file_type", gguf::Value::U32(FileType(options.ternary_type)));
  w.SetValue("general.quantization_version", gguf::Value::U32(2));
  if (absl::Status s = AddTokenizer(meta, w); !s.ok()) return s;
  if (absl::Status s = AddTensors(meta, *bin, options, w); !s.ok()) return s;
  return w;
}

absl::Status ImportTrained(const std::string& json_path, const std::string& bin_path,
                           const std::string& out_path, const ImportOptions& options) {
  absl::StatusOr<gguf::Writer> w = BuildGguf(json_path, bin_path, options);
  if (!w.ok()) return w.status();
  absl::Status s = w->WriteFile(out_path);
  if (s.ok()) {
    s = CheckLoads(out_path);
    if (!s.ok()) {
      s = absl::Status(s.code(), absl::StrCat("the written model does not load: ", s.message()));
    }
  }
  if (!s.ok()) std::remove(out_path.c_str());
  return s;
}

}  // namespace bitnet::trained
