// The interface between the DenseMatMul driver (kernels/dense_matmul.cc) and
// its per-instruction-set variants. Internal to kernels/.
//
// The driver rounds / quantizes the activations once per call (DenseActs);
// a variant computes, for rows [r0, r1) and every token, exactly what the
// scalar reference computes (see dense_matmul.h for the order of operations).
#pragma once

#include <cstdint>

#include "kernels/dense_matmul.h"

namespace bitnet::kernels {

inline constexpr int64_t kQ6KBlock = 256;      // weights per Q6_K block
inline constexpr int64_t kQ6KBlockBytes = 210;
inline constexpr int64_t kQ8_0BlockBytes = 34;
inline constexpr int64_t kDenseLanes = 64;     // F16/BF16 partial sums per row

// Activations of n tokens prepared for one format.
struct DenseActs {
  int64_t n = 0;
  int64_t cols = 0;
  // kF32 / kF16 / kBF16: n x cols values after rounding (fp16 / bf16 values
  // held as f32).
  const float* x = nullptr;
  // kQ8_0 / kQ6K: n x cols int8 values and one scale per activation block
  // (Q8_0: fp16(d) as f32, n x cols/32; Q8_K: d, n x cols/256).
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* qsum = nullptr;  // kQ8_0: sum of q per 32-block, n x cols/32
  const int16_t* bsum = nullptr;  // kQ6K: sum of q per 16 values, n x cols/16
};

using DenseRowsFn = void (*)(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                             float* y);

// One variant's kernels; a null entry means "use the scalar one".
struct DenseKernelOps {
  DenseRowsFn f16 = nullptr;
  DenseRowsFn bf16 = nullptr;
  DenseRowsFn q8_0 = nullptr;
  DenseRowsFn q6k = nullptr;
};

// Scalar kernels (the reference's arithmetic), for rows [r0, r1).
void DenseRowsF32Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y);
void DenseRowsF16Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y);
void DenseRowsBF16Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                         float* y);
void DenseRowsQ8_0Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                         float* y);
void DenseRowsQ6KScalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y);

// Null when not compiled in (non-x86 builds).
const DenseKernelOps* Avx2DenseOps();
const DenseKernelOps* Avx512DenseOps();

// The 64 lane sums of an F16/BF16 row folded as the contract says:
// s[j] += s[j + w] for w = 32, 16, 8, 4, 2, 1; returns s[0].
inline float FoldDenseLanes(float* s) {
  for (int w = 32; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) s[j] += s[j + w];
  }
  return s[0];
}

}  // namespace bitnet::kernels
