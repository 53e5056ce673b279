// Matrix products: ternary weights x quantized activations (BitLinear) and
// dense float weights (embeddings / lm_head / non-ternary layers).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/ternary_matrix.h"

namespace bitnet::kernels {

class ThreadPool;  // kernels/thread_pool.h

// y[i, r] = sum over blocks b of scale(r, b) * act_scale(i, b) * sum_{c in b} code(r,c) * q(i,c)
// for i < x.n, r < w.rows; y is x.n x w.rows, row-major. For kNone the inner
// sum uses the float activations. Integer sums are exact (int32).
// Runs on the process-wide kernel pool (SetKernelThreads) with the active
// kernel variant (kernels/kernel_variant.h); the overload takes a pool.
// Fast only when w.packed is set (PackTernary and PrepareForKernels do it).
void TernaryMatMul(const TernaryMatrix& w, const QuantizedActs& x, float* y);
void TernaryMatMul(const TernaryMatrix& w, const QuantizedActs& x, float* y, ThreadPool& pool);
// The plain scalar reference of the above; SIMD variants must equal it.
void TernaryMatMulReference(const TernaryMatrix& w, const QuantizedActs& x, float* y);

// How activations are rounded before a dense product, as ggml does it for the
// weight's type (its "vec_dot_type"): F32 none, F16 -> fp16, BF16 -> bf16,
// Q8_0 -> blocks of 32 int8, Q6_K/TQ -> Q8_K blocks of 256.
enum class DenseActRounding { kNone, kF16, kBF16, kQ8_0, kQ8K };

// rows x cols float matrix (dequantized at load), row-major.
struct DenseMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> w;
  DenseActRounding act_rounding = DenseActRounding::kNone;
};

// y (n x rows) = x (n x cols) * W^T, after rounding x per act_rounding,
// accumulating in f32.
void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y);
// The scalar reference: each output is one f32 sum in column order.
void DenseMatMulReference(const DenseMatrix& w, const float* x, int64_t n, float* y);

inline constexpr int64_t kQ8_0Block = 32;
// Rounds one row of `cols` activations the way ggml does for `mode` and
// returns the values the dot product sees (kQ8_0: q * fp16(d), kQ8K: q * d;
// partial last blocks are quantized on their own).
void RoundDenseActs(DenseActRounding mode, const float* x, int64_t cols, float* out);

}  // namespace bitnet::kernels
