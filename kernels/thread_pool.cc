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

inline uint64_t Tag(uint32_t gen, int64_t value) {
  return (static_cast<uint64_t>(gen) << 32) | static_cast<uint64_t>(value);
}
inline uint32_t GenOf(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
inline int64_t ValueOf(uint64_t word) { return static_cast<int64_t>(word & 0xffffffffu); }
// > 0 if generation a is newer than b (wrap-safe: generations are compared
// only within a few jobs of each other).
inline int32_t Age(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b); }

}  // namespace

ThreadPool::ThreadPool(int threads)
    : threads_(threads < 1 ? 1 : threads), slots_(new Slot[static_cast<size_t>(threads_)]) {
  workers_.reserve(static_cast<size_t>(threads_ - 1));
  for (int k = 1; k < threads_; ++k) workers_.emplace_back([this, k] { WorkerLoop(k); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  Publish(Job{nullptr, nullptr, 0, 0, {}});  // its release store carries stop_
  FutexWakeAll(&gen_);  // unconditionally: a sleeper must not miss this one
  for (auto& t : workers_) t.join();
}

void ThreadPool::Publish(const Job& job) {
  const uint32_t gen = gen_.load(std::memory_order_relaxed) + 2;
  gen_.store(gen - 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  fn_.store(job.fn, std::memory_order_relaxed);
  ctx_.store(job.ctx, std::memory_order_relaxed);
  n_.store(job.n, std::memory_order_relaxed);
  chunks_.store(job.chunks, std::memory_order_relaxed);
  stream_.store(job.hint.base, std::memory_order_relaxed);
  stream_stride_.store(job.hint.stride, std::memory_order_relaxed);
  gen_.store(gen, std::memory_order_release);
}

bool ThreadPool::Snapshot(uint32_t gen, Job* job) const {
  job->fn = fn_.load(std::memory_order_relaxed);
  job->ctx = ctx_.load(std::memory_order_relaxed);
  job->n = n_.load(std::memory_order_relaxed);
  job->chunks = chunks_.load(std::memory_order_relaxed);
  job->hint.base = stream_.load(std::memory_order_relaxed);
  job->hint.stride = stream_stride_.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  return gen_.load(std::memory_order_relaxed) == gen;
}

uint32_t ThreadPool::AwaitJob(uint32_t seen) {
  for (int spin = 0;; ++spin) {
    const uint32_t g = gen_.load(std::memory_order_acquire);
    if (g != seen && (g & 1) == 0) return g;
    if (g != seen || spin < kSpinIterations) {
      CpuRelax();  // a job is being written, or one may come soon
      continue;
    }
    // Announce the sleep before re-checking, so Run either sees us in
    // sleepers_ (its fence after its own chunks) or we see its new gen_.
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    if (gen_.load(std::memory_order_seq_cst) == seen) FutexWait(&gen_, seen);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    spin = 0;
  }
}

int64_t ThreadPool::BlockBegin(int block, const Job& job) const {
  return block * job.chunks / threads_;
}

int64_t ThreadPool::ChunkBegin(int64_t chunk, const Job& job) {
  // n and chunks are below 2^32 (Run), so the product fits in 64 bits.
  return static_cast<int64_t>(static_cast<uint64_t>(chunk) * static_cast<uint64_t>(job.n) /
                              static_cast<uint64_t>(job.chunks));
}

int64_t ThreadPool::Claim(int block, uint32_t gen, const Job& job) {
  const int64_t first = BlockBegin(block, job);
  const int64_t count = BlockBegin(block + 1, job) - first;
  if (count == 0) return -1;
  std::atomic<uint64_t>& word = slots_[block].claim;
  uint64_t s = word.load(std::memory_order_relaxed);
  for (;;) {
    const int32_t age = Age(GenOf(s), gen);
    if (age > 0) return -1;  // a newer job: this one is over
    const int64_t next = age < 0 ? 0 : ValueOf(s);  // older tag: the block is fresh
    if (next >= count) return -1;
    // Relaxed is enough: the job's inputs were published by gen_, and the
    // results reach the caller through `done`.
    if (word.compare_exchange_weak(s, Tag(gen, next + 1), std::memory_order_relaxed)) {
      return first + next;
    }
  }
}

void ThreadPool::RunChunk(int64_t chunk, const Job& job) {
  job.fn(job.ctx, ChunkBegin(chunk, job), ChunkBegin(chunk + 1, job));
}

void ThreadPool::PrefetchFirstChunk(int block, const Job& job) const {
  if (job.hint.base == nullptr) return;
  const int64_t chunk = BlockBegin(block, job);
  if (chunk == BlockBegin(block + 1, job)) return;  // an empty block
  const uint64_t item = static_cast<uint64_t>(ChunkBegin(chunk, job));
  // Integer arithmetic: a hint may point past its buffer, and a prefetch
  // never faults, so that is harmless; pointer arithmetic there would not be.
  const uintptr_t head = reinterpret_cast<uintptr_t>(job.hint.base) +
                         static_cast<uintptr_t>(item * static_cast<uint64_t>(job.hint.stride));
  for (int64_t off = 0; off < kStreamHeadBytes; off += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(head + static_cast<uintptr_t>(off)), 0, 3);
  }
}

int64_t ThreadPool::RunBlock(int block, uint32_t gen, const Job& job) {
  int64_t ran = 0;
  for (int64_t c; (c = Claim(block, gen, job)) >= 0; ++ran) RunChunk(c, job);
  return ran;
}

int64_t ThreadPool::Steal(int self, uint32_t gen, const Job& job) {
  int64_t ran = 0;
  for (int k = 1; k < threads_; ++k) ran += RunBlock((self + k) % threads_, gen, job);
  return ran;
}

int64_t ThreadPool::DoneByWorkers(uint32_t gen) const {
  int64_t done = 0;
  for (int k = 1; k < threads_; ++k) {
    const uint64_t d = slots_[k].done.load(std::memory_order_acquire);
    if (GenOf(d) == gen) done += ValueOf(d);
  }
  return done;
}

void ThreadPool::WakeSleepers() {
  if (sleepers_.load(std::memory_order_relaxed) > 0) FutexWakeAll(&gen_);
}

void ThreadPool::Run(int64_t n, int64_t chunks, RangeFn fn, void* ctx, StreamHint hint) {
  if (n <= 0) return;
  chunks = std::clamp<int64_t>(chunks, 1, n);
  bool idle = false;
  if (workers_.empty() || chunks == 1 || n > 0xffffffff ||
      !busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) {
    fn(ctx, 0, n);  // serial, busy (another thread's job) or nested
    return;
  }
  const Job job{fn, ctx, n, chunks, hint};
  // The caller takes the first chunk of its block with a plain store before
  // publishing (no thief can see the job yet), so a call with one chunk per
  // thread costs the caller no locked instruction on a line a worker read.
  const uint32_t gen = gen_.load(std::memory_order_relaxed) + 2;
  const bool own_first = chunks >= threads_;  // block 0 is not empty
  if (own_first) slots_[0].claim.store(Tag(gen, 1), std::memory_order_relaxed);
  Publish(job);
  // No fence here: it would stall until the job line left the workers'
  // caches. A sleeper this load misses is caught by the check below.
  const bool woke = sleepers_.load(std::memory_order_relaxed) > 0;
  if (woke) FutexWakeAll(&gen_);
  int64_t ran = 0;
  if (own_first) {
    RunChunk(0, job);
    ran = 1;
  }
  ran += RunBlock(0, gen, job);
  if (!woke) {
    // Pairs with the sleeper's seq_cst announce-then-check: either it saw
    // gen, or this load sees it asleep. (It has missed this job, whose
    // chunks the caller steals, but must not sleep through the next.)
    std::atomic_thread_fence(std::memory_order_seq_cst);
    WakeSleepers();
  }
  // Look at the workers' counters only if they have not finished: reading a
  // counter takes its line from the worker, which then pays for it on its
  // next claim.
  if (ran + DoneByWorkers(gen) != chunks) ran += Steal(0, gen, job);
  // Only chunks already claimed can be outstanding; they finish promptly
  // unless their thread lost its CPU.
  for (int spin = 0; ran + DoneByWorkers(gen) != chunks; ++spin) {
    if (spin < kWaitSpins) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  busy_.store(false, std::memory_order_release);
}

void ThreadPool::WorkerLoop(int self) {
  uint32_t seen = 0;  // gen_ at construction: a job may predate this thread
  for (;;) {
    const uint32_t gen = AwaitJob(seen);
    seen = gen;
    if (stop_.load(std::memory_order_relaxed)) return;  // published by gen_
    Job job;
    if (!Snapshot(gen, &job)) continue;  // a newer job already: take that
    PrefetchFirstChunk(self, job);
    // Report the own block before stealing, so that a caller waiting on it
    // need not wait for the steal attempt too.
    int64_t ran = RunBlock(self, gen, job);
    if (ran > 0) slots_[self].done.store(Tag(gen, ran), std::memory_order_release);
    if (const int64_t stolen = Steal(self, gen, job); stolen > 0) {
      ran += stolen;
      slots_[self].done.store(Tag(gen, ran), std::memory_order_release);
    }
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
