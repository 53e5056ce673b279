#include "kernels/thread_pool.h"

#include <algorithm>
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

// How long an idle worker polls for the next job before sleeping (about
// 80 us here, a pause being ~40 ns on Zen 5): enough to cover the gap between
// two layer calls, not so long that idle workers starve other processes.
constexpr int kSpinIterations = 2048;
// How long the caller polls for outstanding chunks before yielding its CPU:
// on an oversubscribed machine the worker holding the last chunk may be
// waiting for this very CPU.
constexpr int kWaitSpins = 64;

// Sleeps while *word == expected. Raw futexes: GCC 12's std::atomic::wait
// offers nothing more and has had lost-wakeup bugs.
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

inline uint32_t GenOf(uint64_t state) { return static_cast<uint32_t>(state >> 32); }
inline int64_t NextOf(uint64_t state) { return static_cast<int64_t>(state & 0xffffffffu); }

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int n = threads < 1 ? 1 : threads;
  workers_.reserve(n - 1);
  for (int i = 1; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&wake_);
  for (auto& t : workers_) t.join();
}

bool ThreadPool::Claim(uint32_t gen, int64_t* begin, int64_t* end) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (GenOf(s) != gen || NextOf(s) >= chunks_.load(std::memory_order_acquire)) return false;
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      // Near-equal chunks (sizes differ by at most one item), not `grain`
      // items and a short last one: with few chunks per thread an uneven
      // split leaves one thread streaming alone at the end of the call.
      // n and chunks are below 2^32 (Run), so the products fit in 64 bits.
      const uint64_t n = static_cast<uint64_t>(n_.load(std::memory_order_relaxed));
      const uint64_t chunks = static_cast<uint64_t>(chunks_.load(std::memory_order_relaxed));
      const uint64_t k = static_cast<uint64_t>(NextOf(s));
      *begin = static_cast<int64_t>(k * n / chunks);
      *end = static_cast<int64_t>((k + 1) * n / chunks);
      return true;
    }
  }
}

void ThreadPool::RunChunks(uint32_t gen) {
  int64_t b = 0, e = 0;
  while (Claim(gen, &b, &e)) {
    fn_.load(std::memory_order_relaxed)(ctx_.load(std::memory_order_relaxed), b, e);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(int64_t n, int64_t chunks, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  chunks = std::clamp<int64_t>(chunks, 1, n);
  bool idle = false;
  if (workers_.empty() || chunks == 1 || n > 0xffffffff ||
      !busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) {
    fn(ctx, 0, n);  // serial, busy (another thread's job) or nested
    return;
  }
  // Retire the previous job before changing the parameters: a worker still
  // in Claim for it could otherwise read the new chunks_ with the old
  // generation, claim a phantom chunk and count it in done_, letting Run
  // return while a real chunk is still running. (The release store of
  // chunks_ / acquire load in Claim make the retirement visible first.)
  const uint32_t gen = GenOf(state_.load(std::memory_order_relaxed)) + 1;
  state_.store((static_cast<uint64_t>(gen) << 32) | 0xffffffffu, std::memory_order_seq_cst);
  fn_.store(fn, std::memory_order_relaxed);
  ctx_.store(ctx, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  chunks_.store(chunks, std::memory_order_release);
  done_.store(0, std::memory_order_relaxed);
  state_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_seq_cst);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  // Wake sleepers only (a syscall per call would cost more than small jobs).
  if (sleepers_.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&wake_);
  RunChunks(gen);
  // Only chunks already claimed can be outstanding; they finish promptly
  // unless their thread lost its CPU.
  for (int spin = 0; done_.load(std::memory_order_acquire) != chunks; ++spin) {
    if (spin < kWaitSpins) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
}

void ThreadPool::WorkerLoop() {
  uint32_t seen = 0;  // wake_ at construction: a job may predate this thread
  for (;;) {
    uint32_t w = wake_.load(std::memory_order_acquire);
    for (int spin = 0; w == seen && spin < kSpinIterations; ++spin) {
      CpuRelax();
      w = wake_.load(std::memory_order_acquire);
    }
    while (w == seen) {
      // Announce the sleep before re-checking, so Run either sees us in
      // sleepers_ or we see its wake_ bump (both seq_cst).
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (wake_.load(std::memory_order_seq_cst) == seen) FutexWait(&wake_, seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      w = wake_.load(std::memory_order_acquire);
    }
    seen = w;
    if (stop_.load(std::memory_order_acquire)) return;
    RunChunks(GenOf(state_.load(std::memory_order_acquire)));
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
