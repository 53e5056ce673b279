#include "kernels/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace bitnet::kernels {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kChunkBytes = size_t{64} << 20;

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Raw 2 MiB-aligned memory with the huge-page hint; freed by the deleter.
std::shared_ptr<void> HugeAlloc(size_t bytes) {
  void* p = std::aligned_alloc(kHugePage, RoundUp(bytes, kHugePage));
  if (p == nullptr) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, RoundUp(bytes, kHugePage), MADV_HUGEPAGE);
#endif
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

// Bump allocation from the current chunk; a new chunk when it is full.
struct WeightArena {
  std::mutex mu;
  std::shared_ptr<void> chunk;
  size_t chunk_size = 0, used = 0;

  // Returns the block and the chunk that owns it.
  std::pair<uint8_t*, std::shared_ptr<void>> Take(size_t bytes) {
    const size_t need = RoundUp(bytes, 64);
    if (need >= kChunkBytes / 2) {  // big matrices get a chunk of their own
      std::shared_ptr<void> own = HugeAlloc(need);
      return {static_cast<uint8_t*>(own.get()), own};
    }
    std::lock_guard<std::mutex> lock(mu);
    if (!chunk || used + need > chunk_size) {
      chunk = HugeAlloc(kChunkBytes);
      if (!chunk) return {nullptr, nullptr};
      chunk_size = kChunkBytes;
      used = 0;
    }
    uint8_t* p = static_cast<uint8_t*>(chunk.get()) + used;
    used += need;
    return {p, chunk};
  }
};

WeightArena& Arena() {
  static WeightArena* arena = new WeightArena;  // never destroyed: buffers may outlive statics
  return *arena;
}

}  // namespace

void AlignedBuffer::Allocate(size_t bytes) {
  owner_.reset();
  data_ = nullptr;
  size_ = 0;
  if (bytes == 0) return;
  void* p = std::aligned_alloc(64, RoundUp(bytes, 64));
  if (p == nullptr) return;
  owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  data_ = static_cast<uint8_t*>(p);
  size_ = bytes;
  std::memset(data_, 0, RoundUp(bytes, 64));
}

void AlignedBuffer::AllocateWeights(size_t bytes) {
  owner_.reset();
  data_ = nullptr;
  size_ = 0;
  if (bytes == 0) return;
  auto [p, owner] = Arena().Take(bytes);
  if (p == nullptr) return;
  owner_ = std::move(owner);
  data_ = p;
  size_ = bytes;
  std::memset(data_, 0, RoundUp(bytes, 64));
}

}  // namespace bitnet::kernels
