// AVX2 variant (no int8 dot product instruction): vpmaddubsw multiplies the
// unsigned fields by the signed activations into int16 pairs (at most
// 2 * 2 * 128 in magnitude, so it never saturates), the four pairs of a group
// are added in int16 (|sum| <= 2048) and vpmaddwd widens them to int32.
#include "kernels/ternary_kernel.h"

#if defined(__x86_64__)

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#define BITNET_TGT __attribute__((target("avx2,fma")))
#define BITNET_NS avx2_impl

namespace bitnet::kernels {
namespace {

BITNET_TGT inline __m256i Avx2Dot4(__m256i acc, __m256i f0, __m256i f1, __m256i f2, __m256i f3,
                                   __m256i b0, __m256i b1, __m256i b2, __m256i b3) {
  const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(f0, b0), _mm256_maddubs_epi16(f1, b1));
  const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(f2, b2), _mm256_maddubs_epi16(f3, b3));
  return _mm256_add_epi32(
      acc, _mm256_madd_epi16(_mm256_add_epi16(s01, s23), _mm256_set1_epi16(1)));
}
#define BITNET_DOT4(acc, f0, f1, f2, f3, b0, b1, b2, b3) \
  Avx2Dot4(acc, f0, f1, f2, f3, b0, b1, b2, b3)

#include "kernels/ternary_kernel_x86_256.inc"

const TernaryKernelOps kOps = {avx2_impl::Panels, avx2_impl::QuantizeRowPerToken,
                               avx2_impl::QuantizeBlockQ8K};

}  // namespace

const TernaryKernelOps* Avx2KernelOps() { return &kOps; }

}  // namespace bitnet::kernels

#else

namespace bitnet::kernels {
const TernaryKernelOps* Avx2KernelOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
