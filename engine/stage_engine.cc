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
// runs per row over that row's sequence.
#include "engine/stage_engine.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/float16.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace bitnet {
namespace {

using kernels::ActQuant;
using kernels::DenseActRounding;

// Per-call buffers, kept between calls to avoid reallocating every step.
struct Scratch {
  std::vector<float> norm, q, k, v, attn, proj, gate, up, rounded, rope, att;
  kernels::QuantizedActs acts;
};

}  // namespace

struct StageEngine::Impl {
  std::shared_ptr<const ModelWeights> w;
  EngineOptions opt;
  int64_t n_ctx = 0;
  KvCache cache;
  std::mutex mu;
  Scratch s;

  Impl(std::shared_ptr<const ModelWeights> weights, EngineOptions o, int64_t ctx)
      : w(std::move(weights)),
        opt(o),
        n_ctx(ctx),
        cache(static_cast<int>(w->layers.size()), w->config.kv_dim(), o.kv_type, ctx) {}

  const ModelConfig& c() const { return w->config; }

  absl::Status Validate(std::span<const BatchRow> rows, const std::vector<float>& hidden) const;
  void Linear(const bitnet::Linear& lin, const float* x, int64_t n, float* y);
  void Layer(int li, std::span<const BatchRow> rows, const std::vector<KvCache::Sequence*>& seqs,
             float* x);
  void Attention(int li, const BatchRow& row, const KvCache::Sequence& seq, const float* q,
                 float* out);
};

namespace {

void RoundActivations(DenseActRounding r, const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = r == DenseActRounding::kF16    ? kernels::RoundToHalf(x[i])
             : r == DenseActRounding::kBF16 ? kernels::RoundToBF16(x[i])
                                            : x[i];
  }
}

}  // namespace

// y (n x rows) = lin(x (n x cols)). Ternary weights take the configured
// activation quantization; dense float weights round activations as ggml
// does for their stored type and ignore act_quant.
void StageEngine::Impl::Linear(const bitnet::Linear& lin, const float* x, int64_t n, float* y) {
  if (const auto* t = std::get_if<kernels::TernaryMatrix>(&lin.w)) {
    ActQuant mode = opt.act_quant;
    const float* in = x;
    if (mode == ActQuant::kNone) {
      // Float activations: reproduce ggml's rounding for the tensor's stored
      // type (F16 -> fp16 etc.), so "none" equals llama.cpp's float product.
      switch (lin.float_act_rounding) {
        case DenseActRounding::kF16:
        case DenseActRounding::kBF16:
          s.rounded.resize(static_cast<size_t>(n * t->cols));
          RoundActivations(lin.float_act_rounding, x, n * t->cols, s.rounded.data());
          in = s.rounded.data();
          break;
        case DenseActRounding::kQ8K: mode = ActQuant::kQ8K; break;
        default: break;
      }
    }
    kernels::QuantizeActs(in, n, t->cols, mode, &s.acts);
    kernels::TernaryMatMul(*t, s.acts, y);
  } else {
    kernels::DenseMatMul(std::get<kernels::DenseMatrix>(lin.w), x, n, y);
  }
  if (lin.out_scale != 1.f) {
    const int64_t count = n * lin.rows();
    for (int64_t i = 0; i < count; ++i) y[i] *= lin.out_scale;
  }
}

void StageEngine::Impl::Attention(int li, const BatchRow& row, const KvCache::Sequence& seq,
                                  const float* q, float* out) {
  const ModelConfig& cf = c();
  kernels::AttentionShape shape;
  shape.n_head = cf.n_head;
  shape.n_head_kv = cf.n_head_kv;
  shape.head_dim = cf.head_dim;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(cf.head_dim));
  const int64_t n_pos = static_cast<int64_t>(row.pos) + 1;  // causal: itself and earlier
  s.att.resize(static_cast<size_t>(n_pos + cf.head_dim));
  if (cache.type() == KvType::kF16) {
    kernels::AttentionF16(q, seq.keys_f16(li), seq.values_f16(li), n_pos, cf.kv_dim(), shape,
                          s.att.data(), out);
  } else {
    kernels::AttentionF32(q, seq.keys_f32(li), seq.values_f32(li), n_pos, cf.kv_dim(), shape,
                          s.att.data(), out);
  }
}

void StageEngine::Impl::Layer(int li, std::span<const BatchRow> rows,
                              const std::vector<KvCache::Sequence*>& seqs, float* x) {
  const ModelConfig& cf = c();
  const LayerWeights& L = w->layers[static_cast<size_t>(li)];
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t d = cf.n_embd, qd = cf.q_dim(), kvd = cf.kv_dim(), ff = cf.n_ff;
  const kernels::RopeMode rope =
      cf.rope_type == RopeType::kNeox ? kernels::RopeMode::kNeox : kernels::RopeMode::kNorm;
  const int64_t n_angles = cf.n_rot;  // cos, sin per frequency

  // Attention block.
  s.norm.resize(static_cast<size_t>(n * d));
  kernels::RmsNormRows(x, L.attn_norm.data(), n, d, cf.rms_eps, s.norm.data());
  s.q.resize(static_cast<size_t>(n * qd));
  s.k.resize(static_cast<size_t>(n * kvd));
  s.v.resize(static_cast<size_t>(n * kvd));
  Linear(L.wq, s.norm.data(), n, s.q.data());
  Linear(L.wk, s.norm.data(), n, s.k.data());
  Linear(L.wv, s.norm.data(), n, s.v.data());
  for (int64_t i = 0; i < n; ++i) {
    const float* cs = s.rope.data() + i * n_angles;
    kernels::ApplyRope(s.q.data() + i * qd, cf.n_head, cf.head_dim, cf.n_rot, cs, rope);
    kernels::ApplyRope(s.k.data() + i * kvd, cf.n_head_kv, cf.head_dim, cf.n_rot, cs, rope);
    seqs[static_cast<size_t>(i)]->Store(li, rows[static_cast<size_t>(i)].pos,
                                        s.k.data() + i * kvd, s.v.data() + i * kvd);
  }
  // Every row's key/value is stored before any row attends, so a row sees
  // the earlier rows of its sequence in this same batch.
  s.attn.resize(static_cast<size_t>(n * qd));
  for (int64_t i = 0; i < n; ++i) {
    Attention(li, rows[static_cast<size_t>(i)], *seqs[static_cast<size_t>(i)],
              s.q.data() + i * qd, s.attn.data() + i * qd);
  }
  if (cf.sub_norms) {
    kernels::RmsNormRows(s.attn.data(), L.attn_sub_norm.data(), n, qd, cf.rms_eps,
                         s.attn.data());
  }
  s.proj.resize(static_cast<size_t>(n * d));
  Linear(L.wo, s.attn.data(), n, s.proj.data());
  for (int64_t i = 0; i < n * d; ++i) x[i] += s.proj[static_cast<size_t>(i)];

  // Feed-forward block.
  kernels::RmsNormRows(x, L.ffn_norm.data(), n, d, cf.rms_eps, s.norm.data());
  s.gate.resize(static_cast<size_t>(n * ff));
  s.up.resize(static_cast<size_t>(n * ff));
  Linear(L.w_gate, s.norm.data(), n, s.gate.data());
  Linear(L.w_up, s.norm.data(), n, s.up.data());
  if (cf.activation == Activation::kSilu) {
    kernels::SiluMul(s.gate.data(), s.up.data(), n * ff, s.gate.data());
  } else {
    kernels::Relu2Mul(s.gate.data(), s.up.data(), n * ff, s.gate.data());
  }
  if (cf.sub_norms) {
    kernels::RmsNormRows(s.gate.data(), L.ffn_sub_norm.data(), n, ff, cf.rms_eps,
                         s.gate.data());
  }
  Linear(L.w_down, s.gate.data(), n, s.proj.data());
  for (int64_t i = 0; i < n * d; ++i) x[i] += s.proj[static_cast<size_t>(i)];
}

// Checks every row before anything is changed, so a rejected batch leaves
// the caches as they were.
absl::Status StageEngine::Impl::Validate(std::span<const BatchRow> rows,
                                         const std::vector<float>& hidden) const {
  const ModelConfig& cf = c();
  const int64_t n = static_cast<int64_t>(rows.size());
  if (!w->is_first() && static_cast<int64_t>(hidden.size()) != n * cf.n_embd) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hidden state has ", hidden.size(), " values; expected rows x n_embd = ", n, " x ",
        cf.n_embd, " = ", n * cf.n_embd));
  }
  absl::flat_hash_map<SeqId, int64_t> next;  // next expected position per sequence
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
  if (options.n_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_threads must be >= 1, got ", options.n_threads));
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
  const ModelConfig& cf = m.c();
  if (absl::Status st = m.Validate(rows, hidden); !st.ok()) return st;
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t d = cf.n_embd;

  // Room in every sequence's cache for this batch's positions.
  std::vector<KvCache::Sequence*> seqs(rows.size());
  absl::flat_hash_map<SeqId, int64_t> end;
  for (const BatchRow& r : rows) end[r.seq] = static_cast<int64_t>(r.pos) + 1;
  absl::flat_hash_map<SeqId, KvCache::Sequence*> by_id;
  for (const auto& [seq, length] : end) {
    absl::StatusOr<KvCache::Sequence*> sp = m.cache.Reserve(seq, length);
    if (!sp.ok()) return sp.status();
    by_id[seq] = *sp;
  }
  for (size_t i = 0; i < rows.size(); ++i) seqs[i] = by_id[rows[i].seq];

  if (m.w->is_first()) {
    hidden.resize(static_cast<size_t>(n * d));
    const kernels::DenseMatrix& embd = *m.w->token_embd;
    for (int64_t i = 0; i < n; ++i) {
      const float* src = embd.w.data() + static_cast<int64_t>(rows[i].token) * d;
      std::copy(src, src + d, hidden.begin() + i * d);
    }
  }

  // RoPE angles depend only on the position: once per row for all layers.
  m.s.rope.resize(static_cast<size_t>(n * cf.n_rot));
  const float* factors = m.w->rope_freqs.empty() ? nullptr : m.w->rope_freqs.data();
  for (int64_t i = 0; i < n; ++i) {
    kernels::RopeAngles(rows[i].pos, cf.n_rot, cf.rope_freq_base, cf.rope_freq_scale, factors,
                        m.s.rope.data() + i * cf.n_rot);
  }
  for (int li = 0; li < static_cast<int>(m.w->layers.size()); ++li) {
    m.Layer(li, rows, seqs, hidden.data());
  }
  for (const auto& [seq, length] : end) KvCache::Commit(by_id[seq], length);
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
  if (count > 0) kernels::DenseMatMul(*m.w->head(), x.data(), count, logits.data());
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
