// AVX-VNNI variant: the VEX-encoded 256-bit vpdpbusd of CPUs that have VNNI
// without AVX-512 (Alder Lake and later client cores, Zen 5).
#include "kernels/ternary_kernel.h"

#if defined(__x86_64__)

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#define BITNET_TGT __attribute__((target("avx2,fma,avxvnni")))
#define BITNET_NS avxvnni_impl

namespace bitnet::kernels {
namespace {

BITNET_TGT inline __m256i VnniDot4(__m256i acc, __m256i f0, __m256i f1, __m256i f2, __m256i f3,
                                   __m256i b0, __m256i b1, __m256i b2, __m256i b3) {
  acc = _mm256_dpbusd_avx_epi32(acc, f0, b0);
  acc = _mm256_dpbusd_avx_epi32(acc, f1, b1);
  acc = _mm256_dpbusd_avx_epi32(acc, f2, b2);
  return _mm256_dpbusd_avx_epi32(acc, f3, b3);
}
#define BITNET_DOT4(acc, f0, f1, f2, f3, b0, b1, b2, b3) \
  VnniDot4(acc, f0, f1, f2, f3, b0, b1, b2, b3)

#include "kernels/ternary_kernel_x86_256.inc"

const TernaryKernelOps kOps = {avxvnni_impl::Panels, avxvnni_impl::QuantizeRowPerToken,
                               avxvnni_impl::QuantizeBlockQ8K};

}  // namespace

const TernaryKernelOps* AvxVnniKernelOps() { return &kOps; }

}  // namespace bitnet::kernels

#else

namespace bitnet::kernels {
const TernaryKernelOps* AvxVnniKernelOps() { return nullptr; }
}  // namespace bitnet::kernels

#endif
