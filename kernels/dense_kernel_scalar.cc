// Scalar dense kernels: the reference arithmetic of dense_matmul.h, written
// plainly. The SIMD variants must give the same bits.
#include <cstring>

#include "kernels/dense_kernel.h"
#include "kernels/float16.h"

namespace bitnet::kernels {

namespace {

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// One F16/BF16 row against one token: 16 lane sums, then the fixed fold.
template <float (*ToFloat)(uint16_t)>
float HalfRowDot(const uint8_t* row, const float* x, int64_t cols) {
  float s[kDenseLanes] = {};
  for (int64_t c = 0; c < cols; ++c) s[c % kDenseLanes] += ToFloat(LoadU16(row + 2 * c)) * x[c];
  return FoldDenseLanes(s);
}

template <float (*ToFloat)(uint16_t)>
void HalfRows(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1, float* y) {
  for (int64_t i = 0; i < a.n; ++i) {
    for (int64_t r = r0; r < r1; ++r) {
      y[i * w.rows + r] = HalfRowDot<ToFloat>(w.row(r), a.x + i * a.cols, w.cols);
    }
  }
}

// The exact integer sum of one Q6_K block against 256 Q8_K activations.
int32_t Q6KBlockDot(const uint8_t* blk, const int8_t* q) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  int32_t group[16] = {};
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * k + l;
        const uint8_t lo_byte = ql[64 * h + l + 32 * (k & 1)];
        const int lo = k >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
        const int hi = (qh[32 * h + l] >> (2 * k)) & 3;
        group[e / 16] += ((lo | (hi << 4)) - 32) * q[e];
      }
    }
  }
  int32_t isum = 0;
  for (int j = 0; j < 16; ++j) isum += sc[j] * group[j];
  return isum;
}

}  // namespace

void DenseRowsF32Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y) {
  for (int64_t i = 0; i < a.n; ++i) {
    const float* x = a.x + i * a.cols;
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr = w.w.data() + r * w.cols;
      float acc = 0.0f;
      for (int64_t c = 0; c < w.cols; ++c) acc += wr[c] * x[c];
      y[i * w.rows + r] = acc;
    }
  }
}

void DenseRowsF16Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y) {
  HalfRows<HalfBitsToFloat>(w, a, r0, r1, y);
}

void DenseRowsBF16Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                         float* y) {
  HalfRows<BF16BitsToFloat>(w, a, r0, r1, y);
}

void DenseRowsQ8_0Scalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                         float* y) {
  const int64_t nb = w.cols / kQ8_0Block;
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* q = a.q + i * a.cols;
    const float* dx = a.d + i * nb;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ8_0BlockBytes;
        const int8_t* wq = reinterpret_cast<const int8_t*>(blk + 2);
        int32_t isum = 0;
        for (int64_t j = 0; j < kQ8_0Block; ++j) isum += wq[j] * q[b * kQ8_0Block + j];
        acc += static_cast<float>(isum) * (HalfBitsToFloat(LoadU16(blk)) * dx[b]);
      }
      y[i * w.rows + r] = acc;
    }
  }
}

void DenseRowsQ6KScalar(const DenseMatrix& w, const DenseActs& a, int64_t r0, int64_t r1,
                        float* y) {
  const int64_t nb = w.cols / kQ6KBlock;
  for (int64_t i = 0; i < a.n; ++i) {
    const int8_t* q = a.q + i * a.cols;
    const float* dx = a.d + i * nb;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = row + b * kQ6KBlockBytes;
        const int32_t isum = Q6KBlockDot(blk, q + b * kQ6KBlock);
        acc += static_cast<float>(isum) * (HalfBitsToFloat(LoadU16(blk + 208)) * dx[b]);
      }
      y[i * w.rows + r] = acc;
    }
  }
}

}  // namespace bitnet::kernels
