#include "kernels/roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/thread_pool.h"

#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace bitnet::kernels {

namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sum of 64-bit words with 8 independent accumulators (the compiler keeps it
// a plain load stream; wide loads below when the CPU has them).
uint64_t ReadSliceGeneric(const uint8_t* p, int64_t bytes) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  const int64_t n = bytes / 8;
  uint64_t a[8] = {};
  for (int64_t k = 0; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) a[j] ^= w[k + j];
  uint64_t s = 0;
  for (int j = 0; j < 8; ++j) s ^= a[j];
  return s;
}

#if defined(__x86_64__)
// The x86 loops come plain (hardware prefetchers only) and with software
// prefetch kReadAhead bytes ahead, as the kernels do. On 4 KiB pages the
// prefetching loop read 7-70% more than the plain one here; on huge pages
// neither wins consistently, so the probe keeps whichever is faster.
constexpr int64_t kReadAhead = 8192;  // as the ternary GEMV

template <bool kPrefetch>
__attribute__((target("avx512f"))) uint64_t ReadSliceAvx512(const uint8_t* p, int64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t k = 0; k + 256 <= bytes; k += 256) {
    if constexpr (kPrefetch) {
      for (int line = 0; line < 4; ++line) {
        _mm_prefetch(reinterpret_cast<const char*>(p + k + kReadAhead + 64 * line), _MM_HINT_T0);
      }
    }
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + k));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + k + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + k + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + k + 192));
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(a0));
}

template <bool kPrefetch>
__attribute__((target("avx2"))) uint64_t ReadSliceAvx2(const uint8_t* p, int64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t k = 0; k + 128 <= bytes; k += 128) {
    if constexpr (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(p + k + kReadAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + k + kReadAhead + 64), _MM_HINT_T0);
    }
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + k)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + k + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + k + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + k + 96)));
  }
  a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(a0, 0) ^ _mm256_extract_epi64(a0, 3));
}
#endif

uint64_t ReadSlice(const uint8_t* p, int64_t bytes, bool prefetch) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) {
    return prefetch ? ReadSliceAvx512<true>(p, bytes) : ReadSliceAvx512<false>(p, bytes);
  }
  if (__builtin_cpu_supports("avx2")) {
    return prefetch ? ReadSliceAvx2<true>(p, bytes) : ReadSliceAvx2<false>(p, bytes);
  }
#endif
  (void)prefetch;
  return ReadSliceGeneric(p, bytes);
}

volatile uint64_t g_sink;

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// --- int8 peak loops: 12 independent accumulator chains, `iters` rounds ----

// Twelve named accumulators (an array would live in memory once the asm
// barrier takes its elements' addresses).
#define BITNET_PEAK_LOOP(TYPE, INIT, STEP, BARRIER, SUM)                         \
  TYPE c0 = INIT(0), c1 = INIT(1), c2 = INIT(2), c3 = INIT(3), c4 = INIT(4),     \
       c5 = INIT(5), c6 = INIT(6), c7 = INIT(7), c8 = INIT(8), c9 = INIT(9),     \
       c10 = INIT(10), c11 = INIT(11);                                           \
  for (int64_t k = 0; k < iters; ++k) {                                          \
    c0 = STEP(c0); c1 = STEP(c1); c2 = STEP(c2); c3 = STEP(c3);                  \
    c4 = STEP(c4); c5 = STEP(c5); c6 = STEP(c6); c7 = STEP(c7);                  \
    c8 = STEP(c8); c9 = STEP(c9); c10 = STEP(c10); c11 = STEP(c11);              \
    __asm__ volatile("" : BARRIER(c0), BARRIER(c1), BARRIER(c2), BARRIER(c3),   \
                     BARRIER(c4), BARRIER(c5));                                  \
    __asm__ volatile("" : BARRIER(c6), BARRIER(c7), BARRIER(c8), BARRIER(c9),   \
                     BARRIER(c10), BARRIER(c11));                                \
  }                                                                              \
  g_sink = static_cast<uint64_t>(SUM(c0) + SUM(c1) + SUM(c2) + SUM(c3) + SUM(c4) + \
                                 SUM(c5) + SUM(c6) + SUM(c7) + SUM(c8) + SUM(c9) + \
                                 SUM(c10) + SUM(c11))

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vnni"))) double PeakAvx512(int64_t iters) {
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
#define INIT(j) _mm512_set1_epi32(j)
#define STEP(c) _mm512_dpbusd_epi32(c, a, b)
#define BARRIER(c) "+v"(c)
#define SUM(c) _mm512_reduce_add_epi32(c)
  BITNET_PEAK_LOOP(__m512i, INIT, STEP, BARRIER, SUM);
#undef INIT
#undef STEP
#undef BARRIER
#undef SUM
  return 12.0 * 64.0 * 2.0 * static_cast<double>(iters);
}

__attribute__((target("avx2,avxvnni"))) double PeakAvxVnni(int64_t iters) {
  const __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-5);
#define INIT(j) _mm256_set1_epi32(j)
#define STEP(c) _mm256_dpbusd_avx_epi32(c, a, b)
#define BARRIER(c) "+x"(c)
#define SUM(c) _mm256_extract_epi32(c, 0)
  BITNET_PEAK_LOOP(__m256i, INIT, STEP, BARRIER, SUM);
#undef INIT
#undef STEP
#undef BARRIER
#undef SUM
  return 12.0 * 32.0 * 2.0 * static_cast<double>(iters);
}

// AVX2 has no int8 dot product: vpmaddubsw + vpmaddwd + vpaddd per 32 MACs.
// The accumulator doubles as the signed operand so the multiplies cannot be
// hoisted out of the loop.
__attribute__((target("avx2"))) double PeakAvx2(int64_t iters) {
  const __m256i a = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
#define INIT(j) _mm256_set1_epi32(j)
#define STEP(c) _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(a, c), ones))
#define BARRIER(c) "+x"(c)
#define SUM(c) _mm256_extract_epi32(c, 0)
  BITNET_PEAK_LOOP(__m256i, INIT, STEP, BARRIER, SUM);
#undef INIT
#undef STEP
#undef BARRIER
#undef SUM
  return 12.0 * 32.0 * 2.0 * static_cast<double>(iters);
}
#endif

#if defined(__aarch64__)
__attribute__((target("arch=armv8.2-a+dotprod"))) double PeakNeonDot(int64_t iters) {
  const int8x16_t a = vdupq_n_s8(3), b = vdupq_n_s8(-5);
#define INIT(j) vdupq_n_s32(j)
#define STEP(c) vdotq_s32(c, a, b)
#define BARRIER(c) "+w"(c)
#define SUM(c) vaddvq_s32(c)
  BITNET_PEAK_LOOP(int32x4_t, INIT, STEP, BARRIER, SUM);
#undef INIT
#undef STEP
#undef BARRIER
#undef SUM
  return 12.0 * 16.0 * 2.0 * static_cast<double>(iters);
}

// Without sdot: smull (8 products) + sadalp per 8 MACs; each chain has its
// own multiplicand, "changed" by an empty asm every round.
double PeakNeon(int64_t iters) {
  const int8x8_t a = vdup_n_s8(3);
  int32x4_t c0 = vdupq_n_s32(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  int8x8_t x0 = vdup_n_s8(-5), x1 = vdup_n_s8(7), x2 = vdup_n_s8(-9), x3 = vdup_n_s8(11),
           x4 = vdup_n_s8(-13), x5 = vdup_n_s8(15), x6 = vdup_n_s8(-17), x7 = vdup_n_s8(19);
  for (int64_t k = 0; k < iters; ++k) {
    __asm__ volatile("" : "+w"(x0), "+w"(x1), "+w"(x2), "+w"(x3), "+w"(x4), "+w"(x5), "+w"(x6),
                     "+w"(x7));
    c0 = vpadalq_s16(c0, vmull_s8(a, x0));
    c1 = vpadalq_s16(c1, vmull_s8(a, x1));
    c2 = vpadalq_s16(c2, vmull_s8(a, x2));
    c3 = vpadalq_s16(c3, vmull_s8(a, x3));
    c4 = vpadalq_s16(c4, vmull_s8(a, x4));
    c5 = vpadalq_s16(c5, vmull_s8(a, x5));
    c6 = vpadalq_s16(c6, vmull_s8(a, x6));
    c7 = vpadalq_s16(c7, vmull_s8(a, x7));
  }
  g_sink = static_cast<uint64_t>(vaddvq_s32(c0) + vaddvq_s32(c1) + vaddvq_s32(c2) +
                                 vaddvq_s32(c3) + vaddvq_s32(c4) + vaddvq_s32(c5) +
                                 vaddvq_s32(c6) + vaddvq_s32(c7));
  return 8.0 * 8.0 * 2.0 * static_cast<double>(iters);
}
#endif

// Plain C: one multiply-add per element, the accumulator feeding back as a
// multiplicand so nothing is hoisted.
double PeakScalar(int64_t iters) {
  const int32_t a = 3;
#define INIT(j) static_cast<int32_t>(j)
#define STEP(c) (c + static_cast<int8_t>(c) * a)
#define BARRIER(c) "+r"(c)
#define SUM(c) c
  BITNET_PEAK_LOOP(int32_t, INIT, STEP, BARRIER, SUM);
#undef INIT
#undef STEP
#undef BARRIER
#undef SUM
  return 12.0 * 2.0 * static_cast<double>(iters);
}

double PeakOps(KernelVariant v, int64_t iters) {
  switch (v) {
#if defined(__x86_64__)
    case KernelVariant::kAvx512: return PeakAvx512(iters);
    case KernelVariant::kAvxVnni: return PeakAvxVnni(iters);
    case KernelVariant::kAvx2: return PeakAvx2(iters);
#endif
#if defined(__aarch64__)
    case KernelVariant::kNeonDot: return PeakNeonDot(iters);
    case KernelVariant::kNeon: return PeakNeon(iters);
#endif
    default: return PeakScalar(iters);
  }
}

}  // namespace

namespace {

// Fills the buffer with pseudo-random words (xorshift64). Not a constant:
// this VM's host merges identical pages, and a constant-filled buffer left
// idle for a few seconds then read at a third of the speed on its next pass
// (10 GB/s against 32, while a random-filled one read 32 both times), which
// made the ceiling drop at random under kernels that streamed at full speed.
void FillUnique(AlignedBuffer& buf) {
  uint64_t x = 0x9e3779b97f4a7c15u;
  uint64_t* w = reinterpret_cast<uint64_t*>(buf.data());
  for (size_t i = 0; i < buf.size() / 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = x;
  }
}

// GB/s reading [base, base + bytes) once with the pool's threads, in 1 MiB
// pieces claimed one at a time, as the kernels claim their panels: a thread
// that loses its CPU for a while reads less instead of stalling the probe
// (with one fixed slice per thread a 2-thread probe read 10-38 GB/s at
// random while the kernels got 37).
double ReadOnce(ThreadPool& pool, const uint8_t* base, int64_t bytes, bool prefetch) {
  constexpr int64_t kPiece = int64_t{1} << 20;
  const int64_t pieces = std::max<int64_t>(1, bytes / kPiece);
  const int64_t piece = bytes / pieces / 4096 * 4096;
  const double t0 = Seconds();
  pool.ParallelChunks(pieces, pieces, [&](int64_t b, int64_t e) {
    uint64_t s = 0;
    for (int64_t k = b; k < e; ++k) s ^= ReadSlice(base + k * piece, piece, prefetch);
    g_sink = s;
  });
  return static_cast<double>(piece * pieces) / (Seconds() - t0) / 1e9;
}

// Eight consecutive reads of an eighth each, alternately plain and
// prefetching; the median of each loop's four, and the faster loop. Medians,
// because this VM's vCPUs are sometimes held by the host for milliseconds
// (single reads of 1 GB/s between reads of 35): that lowers one read, not
// the ceiling. The kernels' times are medians too.
double ReadBest(ThreadPool& pool, const uint8_t* base, int64_t bytes) {
  constexpr int kReads = 8;
  const int64_t part = bytes / kReads;
  std::vector<double> plain, prefetching;
  for (int r = 0; r < kReads; ++r) {
    const bool prefetch = r % 2 == 1;
    (prefetch ? prefetching : plain).push_back(ReadOnce(pool, base + r * part, part, prefetch));
  }
  return std::max(Median(plain), Median(prefetching));
}

}  // namespace

double MeasureReadBandwidth(ThreadPool& pool, int64_t bytes, int passes) {
  AlignedBuffer buf;
  buf.AllocateWeights(static_cast<size_t>(bytes));  // huge pages, like the weights
  if (buf.empty()) return 0.0;
  FillUnique(buf);
  std::vector<double> rates;
  for (int p = 0; p < passes; ++p) rates.push_back(ReadBest(pool, buf.data(), bytes));
  return Median(rates);
}

ReadBandwidthProbe::ReadBandwidthProbe(int64_t bytes) {
  buf_.AllocateWeights(static_cast<size_t>(bytes));  // huge pages, like the weights
  if (!buf_.empty()) FillUnique(buf_);
}

double ReadBandwidthProbe::Measure(ThreadPool& pool, int64_t window) {
  const int64_t size = static_cast<int64_t>(buf_.size());
  if (size == 0) return 0.0;
  window = std::min(window, size);
  if (next_ + window > size) next_ = 0;
  const uint8_t* base = buf_.data() + next_;
  next_ += window;
  return ReadBest(pool, base, window);
}

double MeasureInt8Peak(ThreadPool& pool, KernelVariant v, int passes, int64_t iterations) {
  const int parts = pool.size();
  std::vector<double> rates;
  for (int p = 0; p < passes; ++p) {
    std::vector<double> ops(parts, 0.0);
    const double t0 = Seconds();
    pool.ParallelFor(parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) ops[k] = PeakOps(v, iterations);
    });
    const double dt = Seconds() - t0;
    double total = 0.0;
    for (double o : ops) total += o;
    rates.push_back(total / dt / 1e9);
  }
  return Median(rates);
}

namespace {

// Spins until `line` holds `want`, giving up the CPU now and then so that an
// oversubscribed machine still makes progress.
void AwaitValue(const std::atomic<int64_t>& line, int64_t want) {
  for (int spin = 1; line.load(std::memory_order_acquire) != want; ++spin) {
#if defined(__x86_64__)
    _mm_pause();
#endif
    if (spin % 4096 == 0) std::this_thread::yield();
  }
}

}  // namespace

double MeasureLineTransfer(int round_trips) {
  if (std::thread::hardware_concurrency() < 2 || round_trips < 10) return 0.0;
  constexpr int kBatches = 10;
  const int per_batch = round_trips / kBatches;
  // One batch more than is timed: the first waits for the partner to get a
  // CPU (a pool's idle worker may still be spinning on it).
  const int64_t total = int64_t{per_batch} * (kBatches + 1);
  // Odd values are the caller's pings, even ones the partner's answers.
  alignas(128) std::atomic<int64_t> line{0};
  std::thread partner([&] {
    for (int64_t k = 0; k < total; ++k) {
      AwaitValue(line, 2 * k + 1);
      line.store(2 * k + 2, std::memory_order_release);
    }
  });
  std::vector<double> us;
  int64_t k = 0;
  for (int b = 0; b <= kBatches; ++b) {
    const double t0 = Seconds();
    for (int i = 0; i < per_batch; ++i, ++k) {
      line.store(2 * k + 1, std::memory_order_release);
      AwaitValue(line, 2 * k + 2);
    }
    if (b > 0) us.push_back((Seconds() - t0) / per_batch / 2 * 1e6);
  }
  partner.join();
  return Median(us);
}

double MeasureJobOverhead(ThreadPool& pool, int64_t items, int passes, int calls) {
  // Each chunk writes its own slot, so the job itself shares no cache line.
  struct alignas(64) Slot {
    int64_t v = 0;
  };
  std::vector<Slot> slots(static_cast<size_t>(items));
  std::vector<double> us;
  for (int p = 0; p < passes; ++p) {
    const double t0 = Seconds();
    for (int c = 0; c < calls; ++c) {
      pool.ParallelFor(items, 1, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) ++slots[static_cast<size_t>(k)].v;
      });
    }
    us.push_back((Seconds() - t0) / calls * 1e6);
  }
  return Median(us);
}

}  // namespace bitnet::kernels
