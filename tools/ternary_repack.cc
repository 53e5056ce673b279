// GGUF -> GGUF ternary repacking (see ternary_repack.h).
#include "tools/ternary_repack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model/hf_checkpoint.h"

namespace bitnet::tools {
namespace {

struct Progress {
  std::function<void(const std::string&, uint64_t, uint64_t)> fn;
  uint64_t done = 0, total = 0;
  void Add(const std::string& name, uint64_t n) {
    done += n;
    if (fn) fn(name, done, total);
  }
};

bool IsEmbeddingName(const std::string& name) {
  return name == "token_embd.weight" || name == "output.weight";
}

// Values the tensor stands for, as f32 (ternary types decoded exactly).
absl::StatusOr<std::vector<float>> Values(const gguf::File& in, const gguf::TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  absl::Status s = ggml::Dequantize(t.type, in.TensorData(t), t.n_elements(), v.data());
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("tensor '", t.name, "': ", s.message()));
  return v;
}

// The single scale of a ternary-valued tensor (codes * scale per block):
// every block holding a non-zero code must have the same |scale|. Returns
// -1 when the blocks disagree.
float SingleScale(const ggml::TernaryDecoded& d) {
  float s = 0.f;
  const size_t nb = d.scales.size();
  for (size_t b = 0; b < nb; ++b) {
    const size_t begin = b * static_cast<size_t>(d.scale_block);
    const size_t end = std::min(d.codes.size(), begin + static_cast<size_t>(d.scale_block));
    bool nonzero = false;
    for (size_t i = begin; i < end && !nonzero; ++i) nonzero = d.codes[i] != 0;
    if (!nonzero) continue;
    const float a = std::fabs(d.scales[b]);
    if (s == 0.f) s = a;
    else if (a != s) return -1.f;
  }
  return s;
}

// Re-encodes a ternary (or ternary-valued float) tensor as `type`.
absl::StatusOr<std::vector<uint8_t>> Reencode(const gguf::File& in, const gguf::TensorInfo& t,
                                              ggml::Type type) {
  std::vector<float> values;
  if (ggml::Traits(t.type).ternary) {
    absl::StatusOr<ggml::TernaryDecoded> d = ggml::DecodeTernary(t.type, in.TensorData(t), t.n_elements());
    if (!d.ok()) return absl::Status(d.status().code(), absl::StrCat("tensor '", t.name, "': ", d.status().message()));
    if (type == ggml::Type::kI2S && SingleScale(*d) < 0.f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", t.name, "' has different scales in different blocks, which I2_S (one scale "
          "per tensor) cannot hold; convert to tq1_0 or tq2_0 instead"));
    }
    values.resize(d->codes.size());
    for (size_t i = 0; i < values.size(); ++i) {
      values[i] = static_cast<float>(d->codes[i]) * d->scales[i / static_cast<size_t>(d->scale_block)];
    }
  } else {
    absl::StatusOr<std::vector<float>> v = Values(in, t);
    if (!v.ok()) return v.status();
    float s = 0.f;
    for (float x : *v) {
      const float a = std::fabs(x);
      if (a == 0.f) continue;
      if (!std::isfinite(a) || (s != 0.f && a != s)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor '", t.name, "' (", std::string(ggml::Traits(t.type).name),
            ") is not ternary-valued (it holds more than one magnitude); only ternary models "
            "can be converted to ", std::string(ggml::Traits(type).name)));
      }
      s = a;
    }
    values = *std::move(v);
  }
  const int64_t cols = t.ne.empty() ? 0 : t.ne[0];
  if (type != ggml::Type::kI2S && cols % ggml::Traits(type).block_elems != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", t.name, "' has rows of ", cols, " values; ", std::string(ggml::Traits(type).name),
        " needs a multiple of ", ggml::Traits(type).block_elems));
  }
  absl::StatusOr<std::vector<uint8_t>> out = ggml::Quantize(type, values);
  if (!out.ok()) return absl::Status(out.status().code(), absl::StrCat("tensor '", t.name, "': ", out.status().message()));
  return out;
}

}  // namespace

bool IsTernaryLinearName(const std::string& name) {
  if (!absl::StartsWith(name, "blk.")) return false;
  for (const char* k : {".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight",
                        ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"}) {
    if (absl::EndsWith(name, k)) return true;
  }
  return false;
}

absl::Status RepackGguf(const gguf::File& in, const RepackOptions& o, gguf::Writer& out) {
  if (!ggml::Traits(o.ternary_type).ternary) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--type ", std::string(ggml::Traits(o.ternary_type).name),
        " is not a ternary type; GGUF to GGUF conversion writes i2_s, tq1_0 or tq2_0"));
  }
  for (const std::string& key : in.keys()) {
    if (key == "general.file_type" || key == "general.quantization_version") continue;
    out.SetValue(key, in.metadata().at(key));
  }
  out.SetValue("general.quantization_version", gguf::Value::U32(2));
  out.SetValue("general.file_type", gguf::Value::U32(GgufFileType(o.ternary_type)));

  auto progress = std::make_shared<Progress>();
  progress->fn = o.progress;
  const gguf::File* file = &in;
  for (const gguf::TensorInfo& t : in.tensors()) {
    const gguf::TensorInfo* tp = &t;
    const bool ternary = IsTernaryLinearName(t.name) || ggml::Traits(t.type).ternary;
    ggml::Type type = t.type;
    if (ternary) {
      type = o.ternary_type;
    } else if (IsEmbeddingName(t.name) && o.embedding_type) {
      type = *o.embedding_type;
    }
    absl::StatusOr<uint64_t> bytes = ggml::TensorBytes(type, t.n_elements());
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(), absl::StrCat("tensor '", t.name, "': ", bytes.status().message()));
    }
    progress->total += *bytes;
    absl::Status s;
    if (type == t.type && !ternary) {
      // Copied as is, straight from the mapping.
      s = out.AddStreamedTensor(t.name, t.ne, t.type, [=](const gguf::Writer::ChunkSink& sink) {
        absl::Status st = sink(file->TensorData(*tp), tp->n_bytes());
        progress->Add(tp->name, tp->n_bytes());
        return st;
      });
    } else if (ternary) {
      s = out.AddStreamedTensor(t.name, t.ne, type, [=](const gguf::Writer::ChunkSink& sink) -> absl::Status {
        absl::StatusOr<std::vector<uint8_t>> b = Reencode(*file, *tp, type);
        if (!b.ok()) return b.status();
        progress->Add(tp->name, b->size());
        return sink(b->data(), b->size());
      });
    } else {
      s = out.AddStreamedTensor(t.name, t.ne, type, [=](const gguf::Writer::ChunkSink& sink) -> absl::Status {
        absl::StatusOr<std::vector<float>> v = Values(*file, *tp);
        if (!v.ok()) return v.status();
        absl::StatusOr<std::vector<uint8_t>> b = ggml::Quantize(type, *v);
        if (!b.ok()) return absl::Status(b.status().code(), absl::StrCat("tensor '", tp->name, "': ", b.status().message()));
        progress->Add(tp->name, b->size());
        return sink(b->data(), b->size());
      });
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace bitnet::tools
