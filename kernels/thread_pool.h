// A persistent pool of worker threads for the kernels: threads are created
// once, and nothing is allocated per call.
//
// A job is a range [0, n) cut into near-equal chunks. Thread k (the caller is
// thread 0) owns a contiguous block of those chunks and claims them from its
// own counter; a thread that runs out steals from the others' counters. So
// the caller never waits for a worker that has not started (a descheduled
// worker simply gets its chunks stolen), and in the common case no cache line
// is written by two cores during a call. Idle workers spin briefly on the job
// line (consecutive layer calls are microseconds apart during decode) and then
// sleep on a futex.
//
// Why this shape: a batch-1 GEMV of a 2B-4T attention matrix takes ~10 us on
// two threads, so every cross-core cache miss on the hand-off path (~0.2 us
// each here) is a visible share of it. Publishing a job costs the caller one
// line of plain stores; a worker reports once, with one plain store to its
// own line. The previous pool (one shared claim counter, a shared done
// counter, locked read-modify-writes on lines the worker held) spent 1-3 us
// per call on such misses; docs/PERFORMANCE.md has the A/B.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace bitnet::kernels {

// Where the input of item i of a job begins, base + i * stride bytes, for a
// job that streams its input from memory (a GEMV's weights): each worker
// asks for the first ThreadPool::kStreamHeadBytes of its first chunk the
// moment it sees the job, so that memory latency overlaps the cross-core
// misses it still takes to reach the job's context on the caller's stack.
// Only a prefetch: a hint that points anywhere is harmless.
struct StreamHint {
  const void* base = nullptr;
  int64_t stride = 0;
};

class ThreadPool {
 public:
  // A pool that runs jobs on `threads` threads: the caller plus threads-1
  // workers. threads < 1 is treated as 1.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }

  // Calls f(begin, end) on consecutive chunks of at most `grain` items that
  // together cover [0, n), spread over the pool; returns when all are done.
  // Runs everything on the calling thread if the pool is busy with another
  // job (another thread's, or this one's: nested calls are fine).
  template <typename F>
  void ParallelFor(int64_t n, int64_t grain, const F& f) {
    const int64_t g = std::max<int64_t>(grain, 1);
    ParallelChunks(n, n <= 0 ? 0 : (n + g - 1) / g, f);
  }
  // Four chunks per thread (fewer if n is smaller).
  template <typename F>
  void ParallelFor(int64_t n, const F& f) {
    ParallelChunks(n, std::min<int64_t>(n, 4 * static_cast<int64_t>(size())), f);
  }
  // A worker prefetches this much of its first chunk's input (StreamHint).
  static constexpr int64_t kStreamHeadBytes = 8192;

  // Cuts [0, n) into `chunks` near-equal chunks (sizes differ by at most one
  // item): with a few chunks per thread, equal shares keep every thread
  // streaming until the end of the call.
  template <typename F>
  void ParallelChunks(int64_t n, int64_t chunks, const F& f, StreamHint hint = {}) {
    Run(n, chunks, [](void* c, int64_t b, int64_t e) { (*static_cast<const F*>(c))(b, e); },
        const_cast<void*>(static_cast<const void*>(&f)), hint);
  }

  using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
  void Run(int64_t n, int64_t chunks, RangeFn fn, void* ctx, StreamHint hint = {});

 private:
  struct Job {
    RangeFn fn;
    void* ctx;
    int64_t n, chunks;
    StreamHint hint;
  };
  // 128 bytes apart, not 64: the L2 prefetcher fetches lines in pairs, which
  // would make neighbouring words share a line in effect.
  static constexpr size_t kLine = 128;
  // Per-thread words, each on its own line. `claim` is (generation << 32) |
  // next chunk of the thread's block: the owner and thieves claim with one
  // CAS that also proves the job is still the current one. `done` is
  // (generation << 32) | chunks this thread ran, stored once by its owner at
  // the end of each job it took part in.
  struct alignas(kLine) Slot {
    alignas(kLine) std::atomic<uint64_t> claim{0};
    alignas(kLine) std::atomic<uint64_t> done{0};
  };

  void Publish(const Job& job);  // as generation gen_ + 2
  bool Snapshot(uint32_t gen, Job* job) const;
  uint32_t AwaitJob(uint32_t seen);
  int64_t BlockBegin(int block, const Job& job) const;    // first chunk of a thread's block
  static int64_t ChunkBegin(int64_t chunk, const Job& job);  // first item of a chunk
  int64_t Claim(int block, uint32_t gen, const Job& job);
  void RunChunk(int64_t chunk, const Job& job);
  void PrefetchFirstChunk(int block, const Job& job) const;
  int64_t RunBlock(int block, uint32_t gen, const Job& job);  // returns chunks run
  int64_t Steal(int self, uint32_t gen, const Job& job);      // the other blocks
  int64_t DoneByWorkers(uint32_t gen) const;
  void WakeSleepers();
  void WorkerLoop(int self);

  const int threads_;
  std::unique_ptr<Slot[]> slots_;
  std::vector<std::thread> workers_;
  alignas(kLine) std::atomic<bool> busy_{false};  // one job at a time
  alignas(kLine) std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  // The job line, a seqlock: gen_ is odd while the caller writes the fields
  // and even once they are published. Workers spin on it and sleep on it (it
  // is the futex word). A worker that reads the fields of a job checks gen_
  // again afterwards, so it never mixes two jobs; and it calls fn only with a
  // chunk it claimed, so the job cannot end meanwhile.
  alignas(kLine) std::atomic<uint32_t> gen_{0};
  std::atomic<RangeFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0}, chunks_{0};
  std::atomic<const void*> stream_{nullptr};
  std::atomic<int64_t> stream_stride_{0};
};

// The process-wide pool the kernels use when no pool is passed. Its size is
// set by SetKernelThreads (default 1: no extra threads until asked).
ThreadPool& KernelPool();
// Resizes the process-wide pool (n < 1 means 1). Not to be called while
// kernels run on other threads.
void SetKernelThreads(int n);
int KernelThreads();

}  // namespace bitnet::kernels
