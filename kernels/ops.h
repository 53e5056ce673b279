// The float operations of a transformer layer: RMSNorm, RoPE, softmax, gated
// activations and grouped-query attention over a KV cache. They follow
// ggml's CPU arithmetic (accumulation types, order of scaling, fp16 rounding
// points) so the engine reproduces llama.cpp; where ggml's SIMD order is
// its own, ours is stated here, and the SIMD variants (chosen like the
// matrix kernels', kernels/kernel_variant.h) give the scalar code's bits.
#pragma once

#include <cstdint>

namespace bitnet::kernels {

// y = x / sqrt(mean(x^2) + eps) * w over n values. As ggml: the sum of squares
// is accumulated in double (in 8 lanes, i % 8, folded 4, 2, 1, so SIMD
// variants give the same bits), the scale 1/sqrtf(mean + eps) applied in
// float, then the weight. `w` may be null (no weight). y may alias x.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* y);

// RMSNorm of each of `rows` rows of n values.
void RmsNormRows(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* y);

// Which elements RoPE rotates together: kNorm pairs adjacent elements
// (2i, 2i+1) (llama); kNeox pairs i and i + n_rot/2 (GPT-NeoX, bitnet).
enum class RopeMode { kNorm, kNeox };

// cos and sin for one position: cos_sin[2i], cos_sin[2i+1] for frequency i
// (i < n_rot/2), theta_i = pos * freq_scale * base^(-2i/n_rot) / factor_i,
// with base^(-2i/n_rot) built by repeated multiplication in float as ggml
// does. `freq_factors` may be null (all 1).
void RopeAngles(int32_t pos, int64_t n_rot, float freq_base, float freq_scale,
                const float* freq_factors, float* cos_sin);

// Rotates the first n_rot elements of each of `n_heads` heads of x (head h
// starts at h * head_dim) by the angles of RopeAngles. In place.
void ApplyRope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin,
               RopeMode mode);

// In-place softmax over n values in float; the normalizer is summed in double
// (ggml_vec_soft_max_f32).
void Softmax(float* x, int64_t n);

// out[i] = act(gate[i]) * up[i]; silu(x) = x / (1 + e^-x) with e^-x from
// the shared polynomial exp (kernels/fast_exp.h, about 1 ulp), relu2(x) =
// max(x, 0)^2. out may alias gate or up. Every variant gives the same bits.
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
void Relu2Mul(const float* gate, const float* up, int64_t n, float* out);

// Grouped-query attention of one query row over `n_pos` cached positions of
// its sequence (the causal mask is implied: the caller passes only the
// positions the query may see). Query head j uses KV head j / (n_head /
// n_head_kv). K and V hold one row of n_head_kv * head_dim values per
// position, `kv_stride` elements apart.
struct AttentionShape {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.f;  // applied to q.k before the softmax
};

// f32 cache: plain f32 throughout.
// `scratch` holds at least n_pos + head_dim floats. out has n_head * head_dim values.
void AttentionF32(const float* q, const float* k, const float* v, int64_t n_pos,
                  int64_t kv_stride, const AttentionShape& shape, float* scratch, float* out);

// fp16 cache, as ggml computes it: K and V are fp16 (rounded when stored), q
// is rounded to fp16 for q.k, the softmax of scale * s is taken in f32, its
// weights are rounded to fp16 before the product with V; sums are f32.
void AttentionF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                  int64_t kv_stride, const AttentionShape& shape, float* scratch, float* out);

// The same for query heads [h0, h1) only (their parts of `out`; the rest is
// untouched), so callers can spread (row, head) pairs over threads. Each
// head's result does not depend on which other heads run with it. These run
// the active kernel variant (kernels/kernel_variant.h); all variants give the
// bits of the *Reference versions, whose order of operations is stated in
// kernels/attention_kernel.h (q.k in 16 lanes, a polynomial exp, the softmax
// sum in 8 double lanes).
void AttentionHeadsF32(const float* q, const float* k, const float* v, int64_t n_pos,
                       int64_t kv_stride, const AttentionShape& shape, int64_t h0, int64_t h1,
                       float* scratch, float* out);
void AttentionHeadsF16(const float* q, const uint16_t* k, const uint16_t* v, int64_t n_pos,
                       int64_t kv_stride, const AttentionShape& shape, int64_t h0, int64_t h1,
                       float* scratch, float* out);
void AttentionHeadsF32Reference(const float* q, const float* k, const float* v, int64_t n_pos,
                                int64_t kv_stride, const AttentionShape& shape, int64_t h0,
                                int64_t h1, float* scratch, float* out);
void AttentionHeadsF16Reference(const float* q, const uint16_t* k, const uint16_t* v,
                                int64_t n_pos, int64_t kv_stride, const AttentionShape& shape,
                                int64_t h0, int64_t h1, float* scratch, float* out);

}  // namespace bitnet::kernels
