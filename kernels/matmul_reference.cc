// Scalar references of the matrix products: the oracle every faster variant
// must equal bit for bit (integer sums are exact; the float operations below
// and their order are the contract).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/float16.h"
#include "kernels/matmul.h"

namespace bitnet::kernels {

namespace {

// Columns [c0, c1) over which both the weight scale and the activation scale
// are constant. Segments end at multiples of the weight's scale block and, for
// Q8_K activations, at multiples of 256.
int64_t SegmentEnd(const TernaryMatrix& w, ActQuant mode, int64_t c0) {
  int64_t end = (c0 / w.scale_block + 1) * w.scale_block;
  if (mode == ActQuant::kQ8K) end = std::min(end, (c0 / kQ8KBlock + 1) * kQ8KBlock);
  return std::min(end, w.cols);
}

float ActScale(const QuantizedActs& x, int64_t i, int64_t c0) {
  if (x.mode == ActQuant::kPerToken) return x.scale[i];
  const int64_t nb = (x.cols + kQ8KBlock - 1) / kQ8KBlock;
  return x.scale[i * nb + c0 / kQ8KBlock];
}

float TernaryRowDot(const TernaryMatrix& w, const QuantizedActs& x, int64_t r, int64_t i) {
  float acc = 0.0f;
  for (int64_t c0 = 0; c0 < w.cols;) {
    const int64_t c1 = SegmentEnd(w, x.mode, c0);
    const float wscale = w.scale(r, c0 / w.scale_block);
    if (x.mode == ActQuant::kNone) {
      const float* xi = x.x.data() + i * x.cols;
      float sum = 0.0f;
      for (int64_t c = c0; c < c1; ++c) sum += static_cast<float>(w.code(r, c)) * xi[c];
      acc += sum * wscale;
    } else {
      const int8_t* qi = x.q.data() + i * x.cols;
      int32_t isum = 0;
      for (int64_t c = c0; c < c1; ++c) isum += w.code(r, c) * qi[c];
      acc += static_cast<float>(isum) * (ActScale(x, i, c0) * wscale);
    }
    c0 = c1;
  }
  return acc;
}

}  // namespace

void TernaryMatMulReference(const TernaryMatrix& w, const QuantizedActs& x, float* y) {
  for (int64_t i = 0; i < x.n; ++i) {
    for (int64_t r = 0; r < w.rows; ++r) y[i * w.rows + r] = TernaryRowDot(w, x, r, i);
  }
}

void RoundDenseActs(DenseActRounding mode, const float* x, int64_t cols, float* out) {
  switch (mode) {
    case DenseActRounding::kNone:
      std::copy(x, x + cols, out);
      return;
    case DenseActRounding::kF16:
      for (int64_t c = 0; c < cols; ++c) out[c] = RoundToHalf(x[c]);
      return;
    case DenseActRounding::kBF16:
      for (int64_t c = 0; c < cols; ++c) out[c] = RoundToBF16(x[c]);
      return;
    case DenseActRounding::kQ8_0:
      // ggml's x86 quantize_row_q8_0: d = amax/127 stored as fp16, q =
      // rne(x * 127/amax); the value the dot product sees is q * fp16(d).
      for (int64_t c0 = 0; c0 < cols; c0 += kQ8_0Block) {
        const int64_t len = std::min(kQ8_0Block, cols - c0);
        float amax = 0.0f;
        for (int64_t j = 0; j < len; ++j) {
          const float a = std::fabs(x[c0 + j]);
          amax = a > amax ? a : amax;
        }
        const float d = RoundToHalf(amax / 127.0f);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int64_t j = 0; j < len; ++j) {
          float q = std::nearbyint(x[c0 + j] * id);
          q = std::fmin(std::fmax(q, -128.0f), 127.0f);
          out[c0 + j] = q * d;
        }
      }
      return;
    case DenseActRounding::kQ8K: {
      int8_t q[kQ8KBlock];
      for (int64_t c0 = 0; c0 < cols; c0 += kQ8KBlock) {
        const int64_t len = std::min(kQ8KBlock, cols - c0);
        const float d = QuantizeBlockQ8K(x + c0, len, q);
        for (int64_t j = 0; j < len; ++j) out[c0 + j] = static_cast<float>(q[j]) * d;
      }
      return;
    }
  }
}

// DenseMatMulReference: kernels/dense_matmul.cc.

}  // namespace bitnet::kernels
