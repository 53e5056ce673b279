// Matrix products: ternary weights x quantized activations (BitLinear) and
// dense float weights (embeddings / lm_head / non-ternary layers).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/dense_matmul.h"
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

// Dense products (DenseMatrix, DenseMatMul, RoundDenseActs) live in
// kernels/dense_matmul.h, included above.

}  // namespace bitnet::kernels
