#include "kernels/thread_pool.h"

#include <memory>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#endif

namespace bitnet::kernels {

namespace {

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// How long a worker polls for the next job before sleeping: long enough to
// cover the gap between two layer calls, short enough not to burn a core
// when the engine is idle.
constexpr int kSpinIterations = 1 << 14;

// Sleeps while *word == expected. Raw futexes: GCC 12's std::atomic::wait
// can miss a notify_all (seen here as a hang), and we need nothing more.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
#else
  word->wait(expected);
#endif
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
#else
  word->notify_all();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int n = threads < 1 ? 1 : threads;
  workers_.reserve(n - 1);
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&generation_);
  for (auto& t : workers_) t.join();
}

void ThreadPool::Run(PartFn fn, void* ctx, int max_parts) {
  int parts = size() < max_parts ? size() : max_parts;
  std::unique_lock<std::mutex> lock(run_mu_, std::try_to_lock);
  if (parts <= 1 || !lock.owns_lock()) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  parts_ = parts;
  // Every worker acknowledges every job (even when it has no part), so no
  // worker can lag behind into the next job's fields.
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  // Wake sleepers only (a syscall per call would cost more than small jobs).
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&generation_);
  fn(ctx, 0, parts);
  // Wait for the workers; they finish within the same job's time scale.
  while (pending_.load(std::memory_order_acquire) != 0) CpuRelax();
}

void ThreadPool::WorkerLoop(int index) {
  // The generation at construction (0), not the current one: a job may have
  // been posted before this thread got to run.
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    while (gen == seen) {
      // Announce the sleep before re-checking, so Run either sees us in
      // sleepers_ or we see its new generation (both seq_cst).
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) FutexWait(&generation_, seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    if (index < parts_) fn_(ctx_, index, parts_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

namespace {
std::mutex& PoolMutex() {
  static std::mutex mu;
  return mu;
}
std::unique_ptr<ThreadPool>& PoolSlot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
}  // namespace

ThreadPool& KernelPool() {
  std::lock_guard<std::mutex> lock(PoolMutex());
  auto& slot = PoolSlot();
  if (!slot) slot = std::make_unique<ThreadPool>(1);
  return *slot;
}

void SetKernelThreads(int n) {
  std::lock_guard<std::mutex> lock(PoolMutex());
  auto& slot = PoolSlot();
  const int want = n < 1 ? 1 : n;
  if (slot && slot->size() == want) return;
  slot.reset();
  slot = std::make_unique<ThreadPool>(want);
}

int KernelThreads() { return KernelPool().size(); }

}  // namespace bitnet::kernels
