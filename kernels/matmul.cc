// Entry points of the matrix products: pick the variant for this CPU.
#include "kernels/matmul.h"

namespace bitnet::kernels {

void TernaryMatMul(const TernaryMatrix& w, const QuantizedActs& x, float* y) {
  TernaryMatMulReference(w, x, y);
}

void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y) {
  DenseMatMulReference(w, x, n, y);
}

}  // namespace bitnet::kernels
