// Transformer ops: the scalar references (see ops.h for the numerics they
// follow) and the dispatch to their SIMD variants, which give the same bits.
#include "kernels/ops.h"

#include <cmath>
#include <limits>

#include "kernels/attention_kernel.h"
#include "kernels/elementwise_kernel.h"
#include "kernels/fast_exp.h"
#include "kernels/float16.h"
#include "kernels/kernel_variant.h"

namespace bitnet::kernels {

namespace {

const ElementwiseOps* ActiveElementwiseOps() {
  switch (ActiveKernelVariant()) {
    case KernelVariant::kAvx512: return Avx512ElementwiseOps();
    case KernelVariant::kAvx2:
    case KernelVariant::kAvxVnni: return Avx2ElementwiseOps();
    default: return nullptr;
  }
}

double SumSquaresScalar(const float* x, int64_t n) {
  double lanes[8] = {};
  for (int64_t i = 0; i < n; ++i) lanes[i % 8] += static_cast<double>(x[i] * x[i]);
  for (int w = 4; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
  }
  return lanes[0];
}

void ScaleMulScalar(const float* x, const float* w, int64_t n, float scale, float* y) {
  if (w == nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  } else {
    // Two roundings, as ggml_rms_norm followed by ggml_mul.
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
  }
}

void SiluMulScalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + FastExp(-g))) * up[i];
  }
}

void Relu2MulScalar(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float r = gate[i] > 0.f ? gate[i] : 0.f;
    out[i] = (r * r) * up[i];
  }
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* y) {
  const ElementwiseOps* ops = ActiveElementwiseOps();
  const double sum = ops != nullptr ? ops->sum_squares(x, n) : SumSquaresScalar(x, n);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  if (ops != nullptr) {
    ops->scale_mul(x, w, n, scale, y);
  } else {
    ScaleMulScalar(x, w, n, scale, y);
  }
}

void RmsNormRows(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) RmsNorm(x + r * n, w, n, eps, y + r * n);
}

void RopeAngles(int32_t pos, int64_t n_rot, float freq_base, float freq_scale,
                const float* freq_factors, float* cos_sin) {
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float factor = freq_factors != nullptr ? freq_factors[i] : 1.0f;
    const float t = freq_scale * (theta / factor);
    cos_sin[2 * i] = std::cos(t);
    cos_sin[2 * i + 1] = std::sin(t);
    theta *= theta_scale;
  }
}

void ApplyRope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin,
               RopeMode mode) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      const int64_t a = mode == RopeMode::kNeox ? i : 2 * i;
      const int64_t b = mode == RopeMode::kNeox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

void Softmax(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp(x[i] - max);
    sum += static_cast<double>(e);
    x[i] = e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  const ElementwiseOps* ops = ActiveElementwiseOps();
  (ops != nullptr ? ops->silu_mul : SiluMulScalar)(gate, up, n, out);
}

void Relu2Mul(const float* gate, const float* up, int64_t n, float* out) {
  const ElementwiseOps* ops = ActiveElementwiseOps();
  (ops != nullptr ? ops->relu2_mul : Relu2MulScalar)(gate, up, n, out);
}

namespace {

inline float Load(const float* p, int64_t i) { return p[i]; }
inline float Load(const uint16_t* p, int64_t i) { return HalfBitsToFloat(p[i]); }

// One head in the order attention_kernel.h states; `round` is applied to the
// query and to the softmax weights (identity for an f32 cache, fp16 rounding
// for an fp16 cache).
template <typename T, typename Round>
void AttentionHeadReference(const float* q, const T* k, const T* v, int64_t n_pos,
                            int64_t kv_stride, int64_t hd, float scale, float* scratch,
                            float* out, Round round) {
  float* qh = scratch + n_pos;  // the query head, rounded once
  for (int64_t d = 0; d < hd; ++d) qh[d] = round(q[d]);
  float m = -INFINITY;
  for (int64_t p = 0; p < n_pos; ++p) {
    const T* kp = k + p * kv_stride;
    float lanes[16] = {};
    for (int64_t d = 0; d < hd; ++d) lanes[d % 16] += qh[d] * Load(kp, d);
    for (int w = 8; w >= 1; w /= 2) {
      for (int j = 0; j < w; ++j) lanes[j] += lanes[j + w];
    }
    scratch[p] = lanes[0] * scale;
    m = scratch[p] > m ? scratch[p] : m;
  }
  double sums[8] = {};
  for (int64_t p = 0; p < n_pos; ++p) {
    scratch[p] = AttnExp(scratch[p] - m);
    sums[p % 8] += static_cast<double>(scratch[p]);
  }
  for (int w = 4; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) sums[j] += sums[j + w];
  }
  const float inv = static_cast<float>(1.0 / sums[0]);
  for (int64_t d = 0; d < hd; ++d) out[d] = 0.f;
  for (int64_t p = 0; p < n_pos; ++p) {
    const float w = round(scratch[p] * inv);
    const T* vp = v + p * kv_stride;
    for (int64_t d = 0; d < hd; ++d) out[d] += w * Load(vp, d);
  }
}

void HeadF32Scalar(const float* q, const float* k, const float* v, int64_t n_pos,
                   int64_t kv_stride, int64_t hd, float scale, float* scratch, float* out) {
  AttentionHeadReference(q, k, v, n_pos, kv_stride, hd, scale, scratch, out,
                         [](float x) { return x; });
}

void HeadF16Scalar(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                   int64_t kv_stride, int64_t hd, float scale, float* scratch, float* out) {
  AttentionHeadReference(q, k, v, n_pos, kv_stride, hd, scale, scratch, out,
                         [](float x) { return RoundToHalf(x); });
}

const AttentionKernelOps* ActiveAttentionOps() {
  switch (ActiveKernelVariant()) {
    case KernelVariant::kAvx512: return Avx512AttentionOps();
    case KernelVariant::kAvx2:
    case KernelVariant::kAvxVnni: return Avx2AttentionOps();
    default: return nullptr;
  }
}

template <typename T, typename Fn>
void Heads(const float* q, const T* k, const T* v, int64_t n_pos, int64_t kv_stride,
           const AttentionShape& s, int64_t h0, int64_t h1, float* scratch, float* out, Fn fn) {
  const int64_t group = s.n_head / s.n_head_kv;
  const int64_t hd = s.head_dim;
  for (int64_t h = h0; h < h1; ++h) {
    const int64_t kv_off = (h / group) * hd;
    fn(q + h * hd, k + kv_off, v + kv_off, n_pos, kv_stride, hd, s.scale, scratch, out + h * hd);
  }
}

}  // namespace

void AttentionHeadsF32(const float* q, const float* k, const float* v, int64_t n_pos,
                       int64_t kv_stride, const AttentionShape& shape, int64_t h0, int64_t h1,
                       float* scratch, float* out) {
  const AttentionKernelOps* ops = ActiveAttentionOps();
  const AttnHeadF32Fn fn = ops != nullptr && ops->f32 != nullptr ? ops->f32 : HeadF32Scalar;
  Heads(q, k, v, n_pos, kv_stride, shape, h0, h1, scratch, out, fn);
}

void AttentionHeadsF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                       int64_t kv_stride, const AttentionShape& shape, int64_t h0, int64_t h1,
                       float* scratch, float* out) {
  const AttentionKernelOps* ops = ActiveAttentionOps();
  const AttnHeadF16Fn fn = ops != nullptr && ops->f16 != nullptr ? ops->f16 : HeadF16Scalar;
  Heads(q, k, v, n_pos, kv_stride, shape, h0, h1, scratch, out, fn);
}

void AttentionHeadsF32Reference(const float* q, const float* k, const float* v, int64_t n_pos,
                                int64_t kv_stride, const AttentionShape& shape, int64_t h0,
                                int64_t h1, float* scratch, float* out) {
  Heads(q, k, v, n_pos, kv_stride, shape, h0, h1, scratch, out, HeadF32Scalar);
}

void AttentionHeadsF16Reference(const float* q, const uint16_t* k, const uint16_t* v,
                                int64_t n_pos, int64_t kv_stride, const AttentionShape& shape,
                                int64_t h0, int64_t h1, float* scratch, float* out) {
  Heads(q, k, v, n_pos, kv_stride, shape, h0, h1, scratch, out, HeadF16Scalar);
}

void AttentionF32(const float* q, const float* k, const float* v, int64_t n_pos,
                  int64_t kv_stride, const AttentionShape& shape, float* scratch, float* out) {
  AttentionHeadsF32(q, k, v, n_pos, kv_stride, shape, 0, shape.n_head, scratch, out);
}

void AttentionF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                  int64_t kv_stride, const AttentionShape& shape, float* scratch, float* out) {
  AttentionHeadsF16(q, k, v, n_pos, kv_stride, shape, 0, shape.n_head, scratch, out);
}

}  // namespace bitnet::kernels
