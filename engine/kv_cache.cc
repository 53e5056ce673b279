// Per-sequence KV storage; see kv_cache.h.
#include "engine/kv_cache.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "kernels/float16.h"

namespace bitnet {

std::string_view KvTypeName(KvType t) { return t == KvType::kF16 ? "f16" : "f32"; }

absl::StatusOr<KvType> KvTypeFromName(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "f16" || n == "fp16") return KvType::kF16;
  if (n == "f32" || n == "fp32") return KvType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown KV cache type '", std::string(name), "'; use f16 or f32"));
}

KvCache::Sequence::Sequence(KvType type, int n_layers, int64_t kv_dim)
    : type_(type), kv_dim_(kv_dim), layers_(static_cast<size_t>(n_layers)) {}

void KvCache::Sequence::Grow(int64_t capacity) {
  const size_t n = static_cast<size_t>(capacity * kv_dim_);
  for (Layer& l : layers_) {
    if (type_ == KvType::kF32) {
      l.k32.resize(n);
      l.v32.resize(n);
    } else {
      l.k16.resize(n);
      l.v16.resize(n);
    }
  }
  capacity_ = capacity;
}

void KvCache::Sequence::Store(int layer, int64_t pos, const float* k, const float* v) {
  Layer& l = layers_[static_cast<size_t>(layer)];
  const int64_t off = pos * kv_dim_;
  if (type_ == KvType::kF32) {
    std::copy(k, k + kv_dim_, l.k32.begin() + off);
    std::copy(v, v + kv_dim_, l.v32.begin() + off);
  } else {
    for (int64_t i = 0; i < kv_dim_; ++i) {
      l.k16[off + i] = kernels::FloatToHalfBits(k[i]);
      l.v16[off + i] = kernels::FloatToHalfBits(v[i]);
    }
  }
}

const float* KvCache::Sequence::keys_f32(int layer) const {
  return type_ == KvType::kF32 ? layers_[layer].k32.data() : nullptr;
}
const float* KvCache::Sequence::values_f32(int layer) const {
  return type_ == KvType::kF32 ? layers_[layer].v32.data() : nullptr;
}
const uint16_t* KvCache::Sequence::keys_f16(int layer) const {
  return type_ == KvType::kF16 ? layers_[layer].k16.data() : nullptr;
}
const uint16_t* KvCache::Sequence::values_f16(int layer) const {
  return type_ == KvType::kF16 ? layers_[layer].v16.data() : nullptr;
}

size_t KvCache::Sequence::bytes() const {
  const size_t elem = type_ == KvType::kF32 ? sizeof(float) : sizeof(uint16_t);
  return layers_.size() * 2 * static_cast<size_t>(capacity_ * kv_dim_) * elem;
}

KvCache::KvCache(int n_layers, int64_t kv_dim, KvType type, int64_t max_positions)
    : n_layers_(n_layers), kv_dim_(kv_dim), type_(type), max_positions_(max_positions) {}

const KvCache::Sequence* KvCache::Find(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : it->second.get();
}

int64_t KvCache::Length(SeqId seq) const {
  const Sequence* s = Find(seq);
  return s == nullptr ? 0 : s->length();
}

absl::StatusOr<KvCache::Sequence*> KvCache::Reserve(SeqId seq, int64_t new_length) {
  if (new_length > max_positions_) {
    return absl::OutOfRangeError(absl::StrCat("sequence ", seq, " would hold ", new_length,
                                              " positions, past the context limit of ",
                                              max_positions_));
  }
  std::unique_ptr<Sequence>& slot = seqs_[seq];
  if (slot == nullptr) slot.reset(new Sequence(type_, n_layers_, kv_dim_));
  Sequence* s = slot.get();
  if (new_length > s->capacity()) {
    // Doubling keeps appends amortized O(1) without reserving n_ctx up front.
    const int64_t cap = std::min(max_positions_, std::max<int64_t>({16, new_length,
                                                                    2 * s->capacity()}));
    s->Grow(cap);
  }
  return s;
}

void KvCache::Commit(Sequence* s, int64_t length) { s->length_ = length; }

absl::Status KvCache::Truncate(SeqId seq, int64_t keep) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) {
    if (keep == 0) return absl::OkStatus();
    return absl::NotFoundError(absl::StrCat("unknown sequence ", seq));
  }
  Sequence& s = *it->second;
  if (keep < 0 || keep > s.length()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot truncate sequence ", seq, " to ", keep,
                                                   " positions: it holds ", s.length()));
  }
  s.length_ = keep;
  return absl::OkStatus();
}

void KvCache::Free(SeqId seq) { seqs_.erase(seq); }

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& [id, s] : seqs_) n += s->bytes();
  return n;
}

}  // namespace bitnet
