// TernaryMatMul: prepares the activations once per call (ActPlan), then runs
// the selected variant over the output rows on the kernel thread pool.
#include "kernels/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/kernel_variant.h"
#include "kernels/packed_ternary.h"
#include "kernels/ternary_kernel.h"
#include "kernels/thread_pool.h"

namespace bitnet::kernels {

namespace {

// Segment sums stay exact in int32 for rows up to this length (the AND-mask
// kernels hold 64 * sum(field * q) in a lane).
constexpr int64_t kMaxPackedCols = int64_t{1} << 18;

// Per-thread scratch reused across calls: no allocation once warmed up.
struct PlanScratch {
  std::vector<int8_t> q;
  std::vector<int32_t> seg_begin, seg_wblock, seg_qsum;
  std::vector<float> seg_scale;
  // What seg_begin and seg_wblock were cut for (cols, scale block, mode) and
  // whether the kernels can express them.
  int64_t cut_cols = -1, cut_scale_block = -1;
  ActQuant cut_mode = ActQuant::kNone;
  bool cut_ok = false;
};

// Cuts the columns into segments over which both the weight scale and the
// activation scale are constant; false if one would end inside a 16-column
// group. Consecutive products mostly share their segments (every matrix of
// a layer but one has the same columns), and rewriting them every call
// would take their lines away from the workers that read them.
bool CutSegments(const PackedTernary& w, ActQuant mode, PlanScratch& s) {
  if (s.cut_cols == w.cols && s.cut_scale_block == w.scale_block && s.cut_mode == mode) {
    return s.cut_ok;
  }
  s.cut_cols = w.cols;
  s.cut_scale_block = w.scale_block;
  s.cut_mode = mode;
  s.cut_ok = false;
  s.seg_begin.clear();
  s.seg_wblock.clear();
  for (int64_t c0 = 0; c0 < w.cols;) {
    int64_t c1 = (c0 / w.scale_block + 1) * w.scale_block;
    if (mode == ActQuant::kQ8K) c1 = std::min(c1, (c0 / kQ8KBlock + 1) * kQ8KBlock);
    c1 = std::min(c1, w.cols);
    if (c1 != w.cols && c1 % kGroupCols != 0) return false;
    s.seg_begin.push_back(static_cast<int32_t>(c0 / kGroupCols));
    s.seg_wblock.push_back(static_cast<int32_t>(c0 / w.scale_block));
    c0 = c1;
  }
  s.seg_begin.push_back(static_cast<int32_t>(w.groups));
  s.cut_ok = true;
  return true;
}

// Fills `plan` for x against w; false if the packed kernels cannot express
// these segments (a scale block that is not a multiple of 16 columns, or an
// over-long row), in which case the caller uses the reference.
bool BuildPlan(const PackedTernary& w, const QuantizedActs& x, PlanScratch& s, ActPlan* plan) {
  if (w.cols > kMaxPackedCols || !CutSegments(w, x.mode, s)) return false;
  plan->mode = x.mode;
  plan->n = x.n;
  plan->cols = x.cols;
  plan->groups = w.groups;
  const int nseg = static_cast<int>(s.seg_begin.size()) - 1;
  plan->nseg = nseg;
  plan->seg_begin = s.seg_begin.data();
  plan->seg_wblock = s.seg_wblock.data();
  if (x.mode == ActQuant::kNone) {
    plan->x = x.x.data();
    return true;
  }
  // Activations zero-padded to whole groups (a copy only when needed).
  const int64_t stride = w.groups * kGroupCols;
  if (stride == x.cols) {
    plan->q = x.q.data();
  } else {
    s.q.assign(static_cast<size_t>(x.n * stride), 0);
    for (int64_t i = 0; i < x.n; ++i) {
      std::memcpy(s.q.data() + i * stride, x.q.data() + i * x.cols, x.cols);
    }
    plan->q = s.q.data();
  }
  plan->q_stride = stride;
  s.seg_scale.resize(static_cast<size_t>(x.n * nseg));
  s.seg_qsum.resize(static_cast<size_t>(x.n * nseg));
  const int64_t nb = (x.cols + kQ8KBlock - 1) / kQ8KBlock;
  // A segment that is the whole row has the quantizer's row sum: summing
  // 2560 activations again took most of the 0.3 us this function cost per
  // call, which on two threads is 5% of a 640-row GEMV.
  const bool whole_rows = nseg == 1 && x.mode == ActQuant::kPerToken &&
                          x.row_sum.size() >= static_cast<size_t>(x.n);
  for (int64_t i = 0; i < x.n; ++i) {
    const int8_t* q = x.q.data() + i * x.cols;
    for (int seg = 0; seg < nseg; ++seg) {
      const int64_t c0 = int64_t{s.seg_begin[seg]} * kGroupCols;
      const int64_t c1 = std::min(int64_t{s.seg_begin[seg + 1]} * kGroupCols, x.cols);
      int32_t sum = 0;
      if (whole_rows) {
        sum = x.row_sum[static_cast<size_t>(i)];
      } else {
        for (int64_t c = c0; c < c1; ++c) sum += q[c];
      }
      s.seg_qsum[i * nseg + seg] = sum;
      s.seg_scale[i * nseg + seg] =
          x.mode == ActQuant::kPerToken ? x.scale[i] : x.scale[i * nb + c0 / kQ8KBlock];
    }
  }
  plan->seg_scale = s.seg_scale.data();
  plan->seg_qsum = s.seg_qsum.data();
  return true;
}

bool ShapesMatch(const TernaryMatrix& w, const QuantizedActs& x) {
  if (x.cols != w.cols || x.n < 0) return false;
  const size_t elems = static_cast<size_t>(x.n * x.cols);
  if (x.mode == ActQuant::kNone) return x.x.size() >= elems;
  const size_t scales = x.mode == ActQuant::kPerToken
                            ? static_cast<size_t>(x.n)
                            : static_cast<size_t>(x.n * ((x.cols + kQ8KBlock - 1) / kQ8KBlock));
  return x.q.size() >= elems && x.scale.size() >= scales;
}

void WarnOnce(bool& warned, const char* message) {
  if (!warned) {
    warned = true;
    std::fprintf(stderr, "warning: %s\n", message);
  }
}

// How many chunks a call is cut into. Each claimed chunk moves the pool's
// claim and completion words between cores (0.6-2.6 us for an empty
// 10-chunk job on this VM). A batch-1 product under 8 MB (every matrix of a
// 2B-4T layer: 10-200 us) gets one chunk per thread: on 2 threads attn_k/v
// went from 12 to 9 us, attn_q from 33 to 26-30 us, ffn a few percent. A
// larger one, or a batch, gets four, so that a thread that loses its CPU for
// a while does less of the work.
int64_t ChunksFor(const PackedTernary& p, int64_t tokens, int threads) {
  constexpr int64_t kSmallBytes = int64_t{8} << 20;
  const int64_t bytes = p.panels * p.groups * kPanelTiles * kBlockBytes;
  const int64_t per_thread = tokens == 1 && bytes < kSmallBytes ? 1 : 4;
  return std::min<int64_t>(p.panels, per_thread * threads);
}

// What a thread needs to run its panels, by value in two adjacent cache
// lines: a worker reaches it in one cross-core miss from the job, where a
// lambda capturing the caller's locals by reference cost two or three
// dependent ones (about 0.2 us each when the two vCPUs sit on different
// cores).
struct alignas(64) PanelsJob {
  void (*panels)(const PackedTernary& w, const ActPlan& a, int64_t p0, int64_t p1, float* y);
  const PackedTernary* w;
  float* y;
  ActPlan plan;
  void operator()(int64_t p0, int64_t p1) const { panels(*w, plan, p0, p1, y); }
};
static_assert(sizeof(PanelsJob) <= 128, "PanelsJob should span two cache lines");

}  // namespace

const TernaryKernelOps* KernelOpsFor(KernelVariant v) {
  switch (v) {
    case KernelVariant::kScalar: return ScalarKernelOps();
    case KernelVariant::kAvx2: return Avx2KernelOps();
    case KernelVariant::kAvxVnni: return AvxVnniKernelOps();
    case KernelVariant::kAvx512: return Avx512KernelOps();
    case KernelVariant::kNeon: return NeonKernelOps();
    case KernelVariant::kNeonDot: return NeonDotKernelOps();
  }
  return nullptr;
}

void TernaryMatMul(const TernaryMatrix& w, const QuantizedActs& x, float* y, ThreadPool& pool) {
  if (x.n <= 0 || w.rows <= 0) return;
  if (!ShapesMatch(w, x)) {
    static bool warned = false;
    WarnOnce(warned, "TernaryMatMul: activations do not match the matrix; output set to NaN");
    std::fill(y, y + x.n * w.rows, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  if (w.cols == 0) {
    std::fill(y, y + x.n * w.rows, 0.0f);
    return;
  }
  thread_local PlanScratch scratch;
  ActPlan plan;
  if (!w.packed || !BuildPlan(*w.packed, x, scratch, &plan)) {
    static bool warned = false;
    if (!w.packed) {
      WarnOnce(warned, "TernaryMatMul on a matrix without its packed form (call "
                       "PrepareForKernels at load): using the slow reference");
    }
    TernaryMatMulReference(w, x, y);
    return;
  }
  const PackedTernary& p = *w.packed;
  if (x.mode == ActQuant::kNone) {
    pool.ParallelFor(p.panels,
                     [&](int64_t b, int64_t e) { TernaryPanelsFloatActs(p, plan, b, e, y); });
    return;
  }
  const PanelsJob job{KernelOpsFor(ActiveKernelVariant())->panels, &p, y, plan};
  const int64_t panel_bytes = p.groups * kPanelTiles * kBlockBytes;
  pool.ParallelChunks(p.panels, ChunksFor(p, x.n, pool.size()), job,
                      StreamHint{p.codes.data(), panel_bytes});
}

void TernaryMatMul(const TernaryMatrix& w, const QuantizedActs& x, float* y) {
  TernaryMatMul(w, x, y, KernelPool());
}

}  // namespace bitnet::kernels
