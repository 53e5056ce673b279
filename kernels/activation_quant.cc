// Scalar reference of the activation quantizers. The float operations and
// their order are part of the contract: SIMD variants repeat them exactly.
#include "kernels/activation_quant.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernel_variant.h"
#include "kernels/ternary_kernel.h"

namespace bitnet::kernels {

std::string_view ActQuantName(ActQuant q) {
  switch (q) {
    case ActQuant::kPerToken: return "per-token";
    case ActQuant::kQ8K: return "q8k";
    case ActQuant::kNone: return "none";
  }
  return "unknown";
}

namespace {

// Rounds half to even (nearbyint in the default rounding mode) and clamps to
// int8. fmax/fmin return the non-NaN operand, so NaN becomes -128, the same
// as the x86 max/min instructions with the constant as second operand.
inline int8_t RoundToInt8(float v) {
  float r = std::nearbyint(v);
  r = std::fmax(r, -128.0f);
  r = std::fmin(r, 127.0f);
  return static_cast<int8_t>(static_cast<int>(r));
}

}  // namespace

float QuantizeRowPerToken(const float* x, int64_t cols, int8_t* q, int32_t* row_sum) {
  float amax = 0.0f;
  for (int64_t c = 0; c < cols; ++c) {
    const float a = std::fabs(x[c]);
    amax = a > amax ? a : amax;  // NaN never compares greater: ignored
  }
  const float s = 127.0f / (amax > 1e-5f ? amax : 1e-5f);
  int32_t sum = 0;
  for (int64_t c = 0; c < cols; ++c) {
    q[c] = RoundToInt8(x[c] * s);
    sum += q[c];
  }
  *row_sum = sum;
  return 1.0f / s;
}

float QuantizeBlockQ8K(const float* x, int64_t len, int8_t* q) {
  // x_max: the first element of largest magnitude, with its sign (ggml).
  float amax = 0.0f;
  float xmax = 0.0f;
  for (int64_t j = 0; j < len; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) {
      amax = a;
      xmax = x[j];
    }
  }
  if (amax == 0.0f) {
    for (int64_t j = 0; j < len; ++j) q[j] = 0;
    return 0.0f;
  }
  const float iscale = -127.0f / xmax;
  for (int64_t j = 0; j < len; ++j) q[j] = RoundToInt8(iscale * x[j]);
  return 1.0f / iscale;
}

namespace {

void QuantizeActsWith(float (*per_token)(const float*, int64_t, int8_t*, int32_t*),
                      float (*q8k_block)(const float*, int64_t, int8_t*), const float* x,
                      int64_t n, int64_t cols, ActQuant mode, QuantizedActs* out) {
  out->mode = mode;
  out->n = n;
  out->cols = cols;
  out->q.clear();
  out->scale.clear();
  out->x.clear();
  out->row_sum.clear();
  switch (mode) {
    case ActQuant::kNone:
      out->x.assign(x, x + n * cols);
      return;
    case ActQuant::kPerToken:
      out->q.resize(n * cols);
      out->scale.resize(n);
      out->row_sum.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        out->scale[i] =
            per_token(x + i * cols, cols, out->q.data() + i * cols, &out->row_sum[i]);
      }
      return;
    case ActQuant::kQ8K: {
      const int64_t nb = (cols + kQ8KBlock - 1) / kQ8KBlock;
      out->q.resize(n * cols);
      out->scale.resize(n * nb);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t b = 0; b < nb; ++b) {
          const int64_t c0 = b * kQ8KBlock;
          const int64_t len = std::min(kQ8KBlock, cols - c0);
          out->scale[i * nb + b] =
              q8k_block(x + i * cols + c0, len, out->q.data() + i * cols + c0);
        }
      }
      return;
    }
  }
}

}  // namespace

void QuantizeActs(const float* x, int64_t n, int64_t cols, ActQuant mode, QuantizedActs* out) {
  const TernaryKernelOps* ops = KernelOpsFor(ActiveKernelVariant());
  QuantizeActsWith(ops->quantize_row_per_token, ops->quantize_block_q8k, x, n, cols, mode, out);
}

void QuantizeActsReference(const float* x, int64_t n, int64_t cols, ActQuant mode,
                           QuantizedActs* out) {
  QuantizeActsWith(QuantizeRowPerToken, QuantizeBlockQ8K, x, n, cols, mode, out);
}

}  // namespace bitnet::kernels
