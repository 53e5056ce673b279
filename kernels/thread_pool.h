// A persistent pool of worker threads for the kernels: threads are created
// once, work is handed out by bumping a generation counter, and nothing is
// allocated per call. Workers spin briefly after a job (consecutive layer
// calls are microseconds apart during decode) and then sleep on a futex.
#pragma once

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

  // Calls fn(ctx, part, parts) for part = 0..parts-1 with parts = min(size(),
  // max_parts), the caller running part 0, and returns when all are done.
  // If the pool is already running a job (another thread, or a nested
  // call), runs everything on the calling thread as a single part.
  using PartFn = void (*)(void* ctx, int part, int parts);
  void Run(PartFn fn, void* ctx, int max_parts);

  // Convenience: splits [0, n) into contiguous ranges, one per part.
  template <typename F>
  void ParallelFor(int64_t n, const F& f) {
    struct Ctx {
      const F* f;
      int64_t n;
    } ctx{&f, n};
    Run(
        [](void* c, int part, int parts) {
          auto* x = static_cast<Ctx*>(c);
          const int64_t b = x->n * part / parts, e = x->n * (part + 1) / parts;
          if (b < e) (*x->f)(b, e);
        },
        &ctx, static_cast<int>(n < 1 ? 1 : (n < 1024 ? n : 1024)));
  }

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // one job at a time
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  PartFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int parts_ = 0;
};

// The process-wide pool the kernels use when no pool is passed. Its size is
// set by SetKernelThreads (default 1: no extra threads until asked).
ThreadPool& KernelPool();
// Resizes the process-wide pool (n < 1 means 1). Not to be called while
// kernels run on other threads.
void SetKernelThreads(int n);
int KernelThreads();

}  // namespace bitnet::kernels
