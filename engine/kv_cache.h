// Per-sequence key/value cache of a stage's layers, stored as f32 or fp16.
//
// Each sequence owns, for every layer, one row of kv_dim keys and one of
// kv_dim values per position, contiguous by position, so attention reads a
// sequence's history as one strided array. Storage grows by doubling up to
// the context limit, so short sequences stay small.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bitnet {

using SeqId = uint64_t;

enum class KvType { kF32, kF16 };
std::string_view KvTypeName(KvType t);
absl::StatusOr<KvType> KvTypeFromName(std::string_view name);  // "f32" | "f16"

class KvCache {
 public:
  // One sequence's cached rows for all layers of the stage.
  class Sequence {
   public:
    int64_t length() const { return length_; }
    int64_t capacity() const { return capacity_; }
    // Writes the keys and values (kv_dim floats each) of position `pos` of
    // `layer`, rounding to fp16 for an fp16 cache. pos < capacity().
    void Store(int layer, int64_t pos, const float* k, const float* v);
    // Rows of one layer; position p starts at element p * kv_dim. Only the
    // accessors of the cache's type return non-null.
    const float* keys_f32(int layer) const;
    const float* values_f32(int layer) const;
    const uint16_t* keys_f16(int layer) const;
    const uint16_t* values_f16(int layer) const;

   private:
    friend class KvCache;
    struct Layer {
      std::vector<float> k32, v32;
      std::vector<uint16_t> k16, v16;
    };
    Sequence(KvType type, int n_layers, int64_t kv_dim);
    void Grow(int64_t capacity);
    size_t bytes() const;

    KvType type_;
    int64_t kv_dim_;
    int64_t length_ = 0;
    int64_t capacity_ = 0;
    std::vector<Layer> layers_;
  };

  KvCache(int n_layers, int64_t kv_dim, KvType type, int64_t max_positions);

  KvType type() const { return type_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t max_positions() const { return max_positions_; }

  const Sequence* Find(SeqId seq) const;
  int64_t Length(SeqId seq) const;  // 0 for an unknown sequence

  // Makes room for positions up to `new_length` (exclusive) of `seq`,
  // creating it if needed; the committed length does not change.
  // OUT_OF_RANGE past max_positions.
  absl::StatusOr<Sequence*> Reserve(SeqId seq, int64_t new_length);
  // Marks positions [0, length) as valid (after Store).
  static void Commit(Sequence* s, int64_t length);

  // Keeps the first `keep` positions. INVALID_ARGUMENT if keep is negative or
  // beyond the sequence's length; NOT_FOUND for an unknown sequence (unless
  // keep == 0, which is a no-op).
  absl::Status Truncate(SeqId seq, int64_t keep);
  void Free(SeqId seq);

  size_t live_sequences() const { return seqs_.size(); }
  size_t bytes() const;  // storage held by live sequences

 private:
  int n_layers_;
  int64_t kv_dim_;
  KvType type_;
  int64_t max_positions_;
  absl::flat_hash_map<SeqId, std::unique_ptr<Sequence>> seqs_;
};

}  // namespace bitnet
