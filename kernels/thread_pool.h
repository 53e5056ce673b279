// A persistent pool of worker threads for the kernels: threads are created
// once, and nothing is allocated per call.
//
// Work is a range [0, n) cut into chunks that the calling thread and the
// workers claim one at a time. The caller never waits for a worker that has
// not started: on a busy machine a descheduled worker simply gets fewer
// chunks, so a parallel call is never much slower than a serial one. Idle
// workers spin briefly (consecutive layer calls are microseconds apart
// during decode) and then sleep on a futex.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace bitnet::kernels {

class ThreadPool {
 public:
  // A pool that runs jobs on `threads` threads: the caller plus threads-1
  // workers. threads < 1 is treated as 1.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

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
  // Cuts [0, n) into `chunks` near-equal chunks (sizes differ by at most one
  // item): with a few chunks per thread, equal shares keep both threads
  // streaming until the end of the call.
  template <typename F>
  void ParallelChunks(int64_t n, int64_t chunks, const F& f) {
    Run(n, chunks, [](void* c, int64_t b, int64_t e) { (*static_cast<const F*>(c))(b, e); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

  using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);
  void Run(int64_t n, int64_t chunks, RangeFn fn, void* ctx);

 private:
  void WorkerLoop();
  // Claims the next chunk of job `gen`; false once it is exhausted or a
  // newer job has started.
  bool Claim(uint32_t gen, int64_t* begin, int64_t* end);
  void RunChunks(uint32_t gen);

  // The words written during a job each get their own cache line: the
  // caller polls done_ while workers claim chunks in state_, and sharing one
  // line made every claim and every poll steal it from the other core (an
  // empty 10-chunk job on 2 threads: 1.5 us shared, 0.7 us apart;
  // bitnet-bench prints it).
  static constexpr size_t kLine = 64;
  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};  // one job at a time
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  // (generation << 32) | next chunk index: claiming a chunk is one CAS that
  // also proves the job is still the current one.
  alignas(kLine) std::atomic<uint64_t> state_{0};
  alignas(kLine) std::atomic<uint32_t> wake_{0};  // futex word: bumped per job
  alignas(kLine) std::atomic<int64_t> done_{0};   // chunks finished in the current job
  // The current job, written before state_ publishes it, then only read.
  // fn_, ctx_ and n_ are used only by a thread holding a claimed
  // chunk, so the job cannot end meanwhile; a straggler may read a newer
  // chunks_, but then its claim fails on the generation. Atomics (relaxed)
  // keep that race defined.
  alignas(kLine) std::atomic<RangeFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> n_{0}, chunks_{0};
};

// The process-wide pool the kernels use when no pool is passed. Its size is
// set by SetKernelThreads (default 1: no extra threads until asked).
ThreadPool& KernelPool();
// Resizes the process-wide pool (n < 1 means 1). Not to be called while
// kernels run on other threads.
void SetKernelThreads(int n);
int KernelThreads();

}  // namespace bitnet::kernels
