// The forward pass of a layer range, as llama.cpp computes the bitnet /
// bitnet-b1.58 / llama graphs:
//
//   x = token_embd[token]                                  (first stage)
//   per layer:
//     h = rmsnorm(x) * attn_norm
//     q, k, v = BitLinear(h); RoPE(q, k)
//     a = GQA attention over the sequence's cache (causal, scale 1/sqrt(head_dim))
//     x += Wo(rmsnorm(a) * attn_sub_norm)                  (sub-norm if the arch has it)
//     h = rmsnorm(x) * ffn_norm
//     x += Wdown(rmsnorm(act(Wgate h) * Wup h) * ffn_sub_norm)
//   logits = lm_head(rmsnorm(x) * output_norm)             (last stage)
//
// Matrix products run over all rows of the micro-batch at once; attention
// runs per row over that row's sequence. Every step runs on the engine's
// thread pool (output rows of the products, (row, head) pairs of attention,
// rows of the norms, chunks of element-wise passes); each value is computed
// by one thread in a fixed order, so results are identical for any
// n_threads. Buffers are kept between calls: a decode step allocates nothing.
#include "engine/stage_engine.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <mutex>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/float16.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/thread_pool.h"

namespace bitnet {
namespace {

using kernels::ActQuant;
using kernels::DenseActRounding;

// Per-call buffers, kept between calls so that a decode step allocates
// nothing once they have grown to the batch size.
struct Scratch {
  std::vector<float> norm, q, k, v, attn, proj, gate, up, rounded, rope, embd_row;
  kernels::QuantizedActs acts;
  // Forward's bookkeeping.
  std::vector<KvCache::Sequence*> seqs;
  absl::flat_hash_map<SeqId, int64_t> next, end;
  absl::flat_hash_map<SeqId, KvCache::Sequence*> by_id;
};

// More threads than any machine here has cores is a configuration mistake
// (each is a real thread of the engine's pool).
constexpr int kMaxThreads = 1024;

// Below this many values an element-wise pass runs on the calling thread: a
// parallel call costs about a microsecond, that much work about as long.
constexpr int64_t kParallelElems = 1 << 14;

}  // namespace

struct StageEngine::Impl {
  std::shared_ptr<const ModelWeights> w;
  EngineOptions opt;
  int64_t n_ctx = 0;
  KvCache cache;
  std::mutex mu;
  Scratch s;
  // Every layer's work runs on this pool (the caller plus n_threads - 1
  // workers). Each output element is computed by one thread from the same
  // inputs in the same order, so results do not depend on n_threads.
  kernels::ThreadPool pool;

  Impl(std::shared_ptr<const ModelWeights> weights, EngineOptions o, int64_t ctx)
      : w(std::move(weights)),
        opt(o),
        n_ctx(ctx),
        cache(static_cast<int>(w->layers.size()), w->config.kv_dim(), o.kv_type, ctx),
        pool(o.n_threads) {}

  const ModelConfig& c() const { return w->config; }

  absl::Status Validate(std::span<const BatchRow> rows, const std::vector<float>& hidden);
  // Runs several linears on the same input: ternary ones that take the same
  // activation quantization share one quantization of x.
  void Linears(std::initializer_list<std::pair<const bitnet::Linear*, float*>> outs,
               const float* x, int64_t n);
  void Attention(int li, std::span<const BatchRow> rows, float* out);
  void Layer(int li, std::span<const BatchRow> rows, float* x);

  // f(begin, end) over [0, n) elements, on the pool when n is large.
  template <typename F>
  void Elementwise(int64_t n, const F& f) {
    if (n < 2 * kParallelElems) {
      f(int64_t{0}, n);
    } else {
      pool.ParallelFor(n, kParallelElems, f);
    }
  }
  // f(begin, end) over [0, n) rows of `width` values each.
  template <typename F>
  void Rows(int64_t n, int64_t width, const F& f) {
    if (n < 2 || n * width < 2 * kParallelElems) {
      f(int64_t{0}, n);
    } else {
      pool.ParallelFor(n, f);
    }
  }
};

namespace {

void RoundActivations(DenseActRounding r, const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = r == DenseActRounding::kF16    ? kernels::RoundToHalf(x[i])
             : r == DenseActRounding::kBF16 ? kernels::RoundToBF16(x[i])
                                            : x[i];
  }
}

// The activation quantization a ternary linear takes, and the rounding of
// float activations (kNone only) before it.
struct ActMode {
  ActQuant mode;
  DenseActRounding rounding;
  bool operator==(const ActMode&) const = default;
};

ActMode ModeFor(const bitnet::Linear& lin, ActQuant configured) {
  if (configured != ActQuant::kNone) return {configured, DenseActRounding::kNone};
  // Float activations: reproduce ggml's rounding for the tensor's stored
  // type (F16 -> fp16 etc.), so "none" equals llama.cpp's float product.
  switch (lin.float_act_rounding) {
    case DenseActRounding::kF16:
    case DenseActRounding::kBF16: return {ActQuant::kNone, lin.float_act_rounding};
    case DenseActRounding::kQ8K: return {ActQuant::kQ8K, DenseActRounding::kNone};
    default: return {ActQuant::kNone, DenseActRounding::kNone};
  }
}

}  // namespace

// y (n x rows) = lin(x (n x cols)) for each (lin, y). Ternary weights take
// the configured activation quantization; dense weights round activations
// as ggml does for their stored type and ignore act_quant.
void StageEngine::Impl::Linears(
    std::initializer_list<std::pair<const bitnet::Linear*, float*>> outs, const float* x,
    int64_t n) {
  bool have = false;
  ActMode prepared{};
  for (const auto& [lin, y] : outs) {
    if (const auto* t = std::get_if<kernels::TernaryMatrix>(&lin->w)) {
      const ActMode m = ModeFor(*lin, opt.act_quant);
      if (!have || !(m == prepared)) {
        const float* in = x;
        if (m.rounding != DenseActRounding::kNone) {
          s.rounded.resize(static_cast<size_t>(n * t->cols));
          RoundActivations(m.rounding, x, n * t->cols, s.rounded.data());
          in = s.rounded.data();
        }
        kernels::QuantizeActs(in, n, t->cols, m.mode, &s.acts);
        have = true;
        prepared = m;
      }
      kernels::TernaryMatMul(*t, s.acts, y, pool);
    } else {
      kernels::DenseMatMul(std::get<kernels::DenseMatrix>(lin->w), x, n, y, pool);
    }
    if (lin->out_scale != 1.f) {
      const float scale = lin->out_scale;
      Elementwise(n * lin->rows(), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) y[i] *= scale;
      });
    }
  }
}

// Attention of every row of the batch over its sequence's cache, spread
// over (row, head) pairs. Each thread keeps its own score buffer.
void StageEngine::Impl::Attention(int li, std::span<const BatchRow> rows, float* out) {
  const ModelConfig& cf = c();
  kernels::AttentionShape shape;
  shape.n_head = cf.n_head;
  shape.n_head_kv = cf.n_head_kv;
  shape.head_dim = cf.head_dim;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(cf.head_dim));
  const int64_t qd = cf.q_dim(), kvd = cf.kv_dim();
  const int64_t heads = cf.n_head;
  const int64_t items = static_cast<int64_t>(rows.size()) * heads;
  const bool f16 = cache.type() == KvType::kF16;
  auto run = [&](int64_t b, int64_t e) {
    thread_local std::vector<float> att;
    for (int64_t it = b; it < e; ++it) {
      const int64_t i = it / heads, h = it % heads;
      const BatchRow& row = rows[static_cast<size_t>(i)];
      const KvCache::Sequence& seq = *s.seqs[static_cast<size_t>(i)];
      const int64_t n_pos = static_cast<int64_t>(row.pos) + 1;  // causal: itself and earlier
      if (att.size() < static_cast<size_t>(n_pos + cf.head_dim)) {
        att.resize(static_cast<size_t>(std::max<int64_t>(n_pos + cf.head_dim, 2 * att.size())));
      }
      const float* q = s.q.data() + i * qd;
      float* o = out + i * qd;
      if (f16) {
        kernels::AttentionHeadsF16(q, seq.keys_f16(li), seq.values_f16(li), n_pos, kvd, shape, h,
                                   h + 1, att.data(), o);
      } else {
        kernels::AttentionHeadsF32(q, seq.keys_f32(li), seq.values_f32(li), n_pos, kvd, shape, h,
                                   h + 1, att.data(), o);
      }
    }
  };
  // Small chunks: a row's cost grows with its position, so equal-sized
  // chunks of a long prompt are far from equal work.
  const int64_t grain = std::max<int64_t>(1, items / (16 * pool.size()));
  if (items < 2) {
    run(0, items);
  } else {
    pool.ParallelFor(items, grain, run);
  }
}

void StageEngine::Impl::Layer(int li, std::span<const BatchRow> rows, float* x) {
  const ModelConfig& cf = c();
  const LayerWeights& L = w->layers[static_cast<size_t>(li)];
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t d = cf.n_embd, qd = cf.q_dim(), kvd = cf.kv_dim(), ff = cf.n_ff;
  const kernels::RopeMode rope =
      cf.rope_type == RopeType::kNeox ? kernels::RopeMode::kNeox : kernels::RopeMode::kNorm;
  const int64_t n_angles = cf.n_rot;  // cos, sin per frequency
  const float eps = cf.rms_eps;

  // Attention block.
  float* norm = s.norm.data();
  Rows(n, d, [&](int64_t b, int64_t e) {
    kernels::RmsNormRows(x + b * d, L.attn_norm.data(), e - b, d, eps, norm + b * d);
  });
  Linears({{&L.wq, s.q.data()}, {&L.wk, s.k.data()}, {&L.wv, s.v.data()}}, norm, n);
  Rows(n, qd + kvd, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* cs = s.rope.data() + i * n_angles;
      kernels::ApplyRope(s.q.data() + i * qd, cf.n_head, cf.head_dim, cf.n_rot, cs, rope);
      kernels::ApplyRope(s.k.data() + i * kvd, cf.n_head_kv, cf.head_dim, cf.n_rot, cs, rope);
      s.seqs[static_cast<size_t>(i)]->Store(li, rows[static_cast<size_t>(i)].pos,
                                            s.k.data() + i * kvd, s.v.data() + i * kvd);
    }
  });
  // Every row's key/value is stored before any row attends, so a row sees
  // the earlier rows of its sequence in this same batch.
  float* attn = s.attn.data();
  Attention(li, rows, attn);
  if (cf.sub_norms) {
    Rows(n, qd, [&](int64_t b, int64_t e) {
      kernels::RmsNormRows(attn + b * qd, L.attn_sub_norm.data(), e - b, qd, eps, attn + b * qd);
    });
  }
  float* proj = s.proj.data();
  Linears({{&L.wo, proj}}, attn, n);
  Elementwise(n * d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] += proj[i];
  });

  // Feed-forward block.
  Rows(n, d, [&](int64_t b, int64_t e) {
    kernels::RmsNormRows(x + b * d, L.ffn_norm.data(), e - b, d, eps, norm + b * d);
  });
  float* gate = s.gate.data();
  Linears({{&L.w_gate, gate}, {&L.w_up, s.up.data()}}, norm, n);
  const float* up = s.up.data();
  Elementwise(n * ff, [&](int64_t b, int64_t e) {
    if (cf.activation == Activation::kSilu) {
      kernels::SiluMul(gate + b, up + b, e - b, gate + b);
    } else {
      kernels::Relu2Mul(gate + b, up + b, e - b, gate + b);
    }
  });
  if (cf.sub_norms) {
    Rows(n, ff, [&](int64_t b, int64_t e) {
      kernels::RmsNormRows(gate + b * ff, L.ffn_sub_norm.data(), e - b, ff, eps, gate + b * ff);
    });
  }
  Linears({{&L.w_down, proj}}, gate, n);
  Elementwise(n * d, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] += proj[i];
  });
}

// Checks every row before anything is changed, so a rejected batch leaves
// the caches as they were.
absl::Status StageEngine::Impl::Validate(std::span<const BatchRow> rows,
                                         const std::vector<float>& hidden) {
  const ModelConfig& cf = c();
  const int64_t n = static_cast<int64_t>(rows.size());
  if (!w->is_first() && static_cast<int64_t>(hidden.size()) != n * cf.n_embd) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hidden state has ", hidden.size(), " values; expected rows x n_embd = ", n, " x ",
        cf.n_embd, " = ", n * cf.n_embd));
  }
  absl::flat_hash_map<SeqId, int64_t>& next = s.next;  // next expected position per sequence
  next.clear();
  for (int64_t i = 0; i < n; ++i) {
    const BatchRow& r = rows[static_cast<size_t>(i)];
    if (w->is_first() && (r.token < 0 || r.token >= cf.n_vocab)) {
      return absl::InvalidArgumentError(absl::StrCat("row ", i, ": token id ", r.token,
                                                     " is outside the vocabulary [0, ",
                                                     cf.n_vocab, ")"));
    }
    auto [it, inserted] = next.try_emplace(r.seq, 0);
    if (inserted) it->second = cache.Length(r.seq);
    if (r.pos != it->second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i, ": position ", r.pos, " does not continue sequence ", r.seq,
          ", which expects position ", it->second,
          " next; positions must be consecutive from the sequence's cached length"));
    }
    ++it->second;
  }
  for (const auto& [seq, end] : next) {
    if (end > n_ctx) {
      return absl::OutOfRangeError(absl::StrCat(
          "sequence ", seq, " would reach ", end, " positions, past the context limit of ", n_ctx,
          "; shorten the prompt or the generation, or raise n_ctx (the model was trained for ",
          cf.n_ctx_train, ")"));
    }
  }
  return absl::OkStatus();
}

StageEngine::StageEngine() = default;
StageEngine::~StageEngine() = default;

absl::StatusOr<std::unique_ptr<StageEngine>> StageEngine::Create(
    std::shared_ptr<const ModelWeights> weights, EngineOptions options) {
  if (weights == nullptr) return absl::InvalidArgumentError("StageEngine needs model weights");
  if (options.n_ctx < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_ctx must be >= 0 (0 = the model's context length), got ", options.n_ctx));
  }
  if (options.n_threads < 1 || options.n_threads > kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat("n_threads must be in [1, ", kMaxThreads,
                                                   "], got ", options.n_threads));
  }
  if (weights->is_last() && weights->head() == nullptr) {
    return absl::InvalidArgumentError("the last stage's weights have no output projection");
  }
  if (weights->layers.size() !=
      static_cast<size_t>(weights->layer_end - weights->layer_begin)) {
    return absl::InvalidArgumentError("weights do not hold their declared layer range");
  }
  const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : weights->config.n_ctx_train;
  std::unique_ptr<StageEngine> e(new StageEngine());
  e->impl_ = std::make_unique<Impl>(std::move(weights), options, n_ctx);
  return e;
}

const ModelConfig& StageEngine::config() const { return impl_->w->config; }
const EngineOptions& StageEngine::options() const { return impl_->opt; }
int StageEngine::layer_begin() const { return impl_->w->layer_begin; }
int StageEngine::layer_end() const { return impl_->w->layer_end; }
bool StageEngine::is_first() const { return impl_->w->is_first(); }
bool StageEngine::is_last() const { return impl_->w->is_last(); }
int64_t StageEngine::n_ctx() const { return impl_->n_ctx; }

absl::Status StageEngine::Forward(std::span<const BatchRow> rows, std::vector<float>& hidden) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& m = *impl_;
  Scratch& s = m.s;
  const ModelConfig& cf = m.c();
  if (absl::Status st = m.Validate(rows, hidden); !st.ok()) return st;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t d = cf.n_embd;

  // Room in every sequence's cache for this batch's positions.
  s.end.clear();
  s.by_id.clear();
  for (const BatchRow& r : rows) s.end[r.seq] = static_cast<int64_t>(r.pos) + 1;
  for (const auto& [seq, length] : s.end) {
    absl::StatusOr<KvCache::Sequence*> sp = m.cache.Reserve(seq, length);
    if (!sp.ok()) return sp.status();
    s.by_id[seq] = *sp;
  }
  s.seqs.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) s.seqs[i] = s.by_id[rows[i].seq];

  // Buffers for the largest activations of this batch (no-ops once grown).
  const auto size = [n](int64_t width) { return static_cast<size_t>(n * width); };
  s.norm.resize(size(d));
  s.q.resize(size(cf.q_dim()));
  s.attn.resize(size(cf.q_dim()));
  s.k.resize(size(cf.kv_dim()));
  s.v.resize(size(cf.kv_dim()));
  s.proj.resize(size(d));
  s.gate.resize(size(cf.n_ff));
  s.up.resize(size(cf.n_ff));

  if (m.w->is_first()) {
    hidden.resize(size(d));
    const kernels::DenseMatrix& embd = *m.w->token_embd;
    m.Rows(n, d, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) embd.RowToFloat(rows[i].token, hidden.data() + i * d);
    });
  }

  // RoPE angles depend only on the position: once per row for all layers.
  s.rope.resize(size(cf.n_rot));
  const float* factors = m.w->rope_freqs.empty() ? nullptr : m.w->rope_freqs.data();
  m.Rows(n, cf.n_rot * 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      kernels::RopeAngles(rows[i].pos, cf.n_rot, cf.rope_freq_base, cf.rope_freq_scale, factors,
                          s.rope.data() + i * cf.n_rot);
    }
  });
  for (int li = 0; li < static_cast<int>(m.w->layers.size()); ++li) {
    m.Layer(li, rows, hidden.data());
  }
  for (const auto& [seq, length] : s.end) KvCache::Commit(s.by_id[seq], length);
  return absl::OkStatus();
}

absl::Status StageEngine::Logits(std::span<const BatchRow> rows, const std::vector<float>& hidden,
                                 std::vector<float>& logits) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Impl& m = *impl_;
  const ModelConfig& cf = m.c();
  if (!m.w->is_last()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Logits needs the last stage; this stage runs layers [", m.w->layer_begin, ", ",
        m.w->layer_end, ") of ", cf.n_layer));
  }
  const int64_t d = cf.n_embd;
  if (static_cast<int64_t>(hidden.size()) != static_cast<int64_t>(rows.size()) * d) {
    return absl::InvalidArgumentError(absl::StrCat("hidden state has ", hidden.size(),
                                                   " values; expected ", rows.size(), " x ", d));
  }
  std::vector<float>& x = m.s.norm;
  x.clear();
  int64_t count = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].want_logits) continue;
    x.resize(static_cast<size_t>((count + 1) * d));
    kernels::RmsNorm(hidden.data() + i * d, m.w->output_norm.data(), d, cf.rms_eps,
                     x.data() + count * d);
    ++count;
  }
  logits.assign(static_cast<size_t>(count * cf.n_vocab), 0.f);
  if (count > 0) kernels::DenseMatMul(*m.w->head(), x.data(), count, logits.data(), m.pool);
  return absl::OkStatus();
}

int64_t StageEngine::SequenceLength(SeqId seq) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.Length(seq);
}

absl::Status StageEngine::TruncateSequence(SeqId seq, int64_t keep) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.Truncate(seq, keep);
}

void StageEngine::FreeSequence(SeqId seq) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->cache.Free(seq);
}

size_t StageEngine::live_sequences() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.live_sequences();
}

size_t StageEngine::kv_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cache.bytes();
}

}  // namespace bitnet
