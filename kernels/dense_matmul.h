// Dense (non-ternary) matrix products: the token embedding, the lm_head and
// any linear layer that is not ternary.
//
// A DenseMatrix keeps its weights in the compact form they were stored in
// (F16, BF16, Q8_0 or Q6_K blocks, GGUF byte layout) or, for any other type,
// as f32. A 128256 x 2560 F16 embedding thus takes 2 bytes per weight, and a
// decode step reads that many bytes, not twice as many.
//
// Products follow ggml's numerics for the stored type: the activations are
// rounded to the weight type's "vec_dot_type" (fp16 for F16, bf16 for BF16,
// Q8_0 for Q8_0, Q8_K for Q6_K). For the quantized types the per-block integer
// sums are exact and each block adds float(isum) * (d_w * d_x) to the row's
// f32 accumulator, in block order. For F16/BF16 every F16 product is exact in
// f32 (11-bit mantissas), and the sum is taken in 64 lanes (lane j gets the
// columns c with c % 64 == j, in column order: four independent SIMD chains
// per row, so a row streams alone), then folded 32, 16, 8, 4, 2, 1
// (s[j] += s[j + w]). The SIMD variants follow that order, so every variant
// gives the scalar reference's bits. F32-stored matrices keep one f32 sum in
// column order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/aligned_buffer.h"

namespace bitnet::kernels {

class ThreadPool;  // kernels/thread_pool.h

// How activations are rounded before a dense product, as ggml does it for the
// weight's type (its "vec_dot_type"): F32 none, F16 -> fp16, BF16 -> bf16,
// Q8_0 -> blocks of 32 int8, Q6_K/TQ -> Q8_K blocks of 256.
enum class DenseActRounding { kNone, kF16, kBF16, kQ8_0, kQ8K };

// How a DenseMatrix holds its weights.
enum class DenseFormat {
  kF32,   // `w`, row-major f32
  kF16,   // IEEE half per weight
  kBF16,  // bfloat16 per weight
  kQ8_0,  // ggml Q8_0 blocks of 32: fp16 d, int8 q[32] (34 bytes)
  kQ6K,   // ggml Q6_K blocks of 256: ql[128], qh[64], int8 scales[16], fp16 d (210 bytes)
};
const char* DenseFormatName(DenseFormat f);
// Columns per block (1 for the per-weight formats) and bytes per block.
int64_t DenseBlockCols(DenseFormat f);
int64_t DenseBlockBytes(DenseFormat f);

// rows x cols matrix, row-major.
struct DenseMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> w;  // kF32 only: rows * cols values
  DenseActRounding act_rounding = DenseActRounding::kNone;
  DenseFormat format = DenseFormat::kF32;
  // Other formats: rows * row_bytes bytes, each row its own run of blocks
  // (64-byte aligned, huge-page backed). Shared between copies.
  std::shared_ptr<const AlignedBuffer> data = nullptr;
  int64_t row_bytes = 0;

  const uint8_t* row(int64_t r) const { return data->data() + r * row_bytes; }
  size_t memory_bytes() const;
  // Bytes a product reads per token (the weights once).
  size_t weight_bytes() const { return memory_bytes(); }
  // Row r as f32 values (cols of them): the stored values, dequantized as
  // ggml does (Q6_K: d * scale * (q - 32) in that order).
  void RowToFloat(int64_t r, float* out) const;
  // The whole matrix as f32 (tests, tools; costs 4 bytes per weight).
  std::vector<float> ToFloat() const;
};

// Empty if a compact matrix of this shape can be built (cols a multiple of the
// format's block), else what is wrong.
std::string DenseShapeError(DenseFormat f, int64_t rows, int64_t cols);
// A compact (non-F32) matrix from `bytes` in the GGUF layout of `f`
// (rows * cols / block_cols * block_bytes of them), copied. The activation
// rounding is the one ggml uses with `f`. Aborts on a shape DenseShapeError
// rejects (a programming error: loaders check first).
DenseMatrix MakeCompactDense(DenseFormat f, int64_t rows, int64_t cols, const uint8_t* bytes);

// y (n x rows) = x (n x cols) * W^T, after rounding x as described above.
// Runs on the process-wide kernel pool, or on `pool`, with the active kernel
// variant (kernels/kernel_variant.h); every variant and thread count gives
// the reference's bits.
void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y);
void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool);
// The scalar reference (the contract the variants follow).
void DenseMatMulReference(const DenseMatrix& w, const float* x, int64_t n, float* y);

inline constexpr int64_t kQ8_0Block = 32;
// Rounds one row of `cols` activations the way ggml does for `mode` and
// returns the values the dot product sees (kQ8_0: q * fp16(d), kQ8K: q * d;
// partial last blocks are quantized on their own).
void RoundDenseActs(DenseActRounding mode, const float* x, int64_t cols, float* out);

}  // namespace bitnet::kernels
