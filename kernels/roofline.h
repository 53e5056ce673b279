// The two ceilings every kernel benchmark is measured against, measured on
// this machine in the same run: how fast one or more threads can stream
// memory (a plain read loop), and how many int8 multiply-adds per second the
// dot-product instructions of a kernel variant can issue.
#pragma once

#include <cstdint>

#include "kernels/aligned_buffer.h"
#include "kernels/kernel_variant.h"

namespace bitnet::kernels {

class ThreadPool;

// Reads a `bytes`-sized buffer (allocated and touched here; make it much
// larger than the last-level cache) `passes` times with every thread of the
// pool in 1 MiB pieces, from huge pages. Each pass reads the buffer as eight
// parts, alternately with a plain load loop and with the same loop
// prefetching 8 KB ahead (as the kernels do), and keeps the faster loop's
// median part. Returns the median GB/s (1e9 B/s) of the passes.
double MeasureReadBandwidth(ThreadPool& pool, int64_t bytes, int passes);

// A read-bandwidth probe that keeps its buffer, for measurements interleaved
// with the kernels' (on a shared machine the ceiling moves from second to
// second, so each kernel timing is paired with a probe taken just before).
class ReadBandwidthProbe {
 public:
  explicit ReadBandwidthProbe(int64_t bytes);
  // GB/s reading the next `window` bytes of the buffer (wrapping), split over
  // the pool's threads, as MeasureReadBandwidth reads a pass. Windows rotate, so keep the buffer a few times larger
  // than the window and the window larger than the last-level cache.
  double Measure(ThreadPool& pool, int64_t window);

 private:
  AlignedBuffer buf_;
  int64_t next_ = 0;
};

// Int8 multiply-accumulate peak of variant `v` with every thread of the pool:
// independent chains of its widest dot-product instruction (vpdpbusd zmm for
// avx512, ymm for avxvnni, vpmaddubsw+vpmaddwd for avx2, sdot for neon-dot,
// smull+sadalp for neon, a C loop for scalar). Returns GOPS (2 ops per
// multiply-add), median of `passes`.
double MeasureInt8Peak(ThreadPool& pool, KernelVariant v, int passes,
                       int64_t iterations = int64_t{1} << 20);

// Microseconds for a cache line written by one thread to reach another: a
// fresh thread and the caller bounce one line `round_trips` times, in ten
// timed batches after an untimed one, and the median batch's round trip is
// halved. A parallel call pays at least three of these (the job line taken
// from the worker that polls it, then fetched by it; the result back), so
// it is the floor of a small product's hand-off; on this VM it also tells
// the placements of two vCPUs apart (docs/PERFORMANCE.md). 0 on a machine
// with one CPU, where the two threads would only take turns.
double MeasureLineTransfer(int round_trips = 2000);

// Microseconds per empty job of `items` chunks (grain 1) on the pool: the
// fixed cost a parallel kernel call pays for handing out and joining work
// (a 640-row matrix is 10 panels). Median of `passes` runs of `calls` jobs.
double MeasureJobOverhead(ThreadPool& pool, int64_t items = 10, int passes = 5,
                          int calls = 20000);

}  // namespace bitnet::kernels
