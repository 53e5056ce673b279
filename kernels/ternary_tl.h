// The table-lookup family of ternary kernels (as T-MAC and bitnet.cpp's TL
// kernels), kept to measure it against the multiply-accumulate family that
// TernaryMatMul uses. See docs/PERFORMANCE.md for the numbers and the choice.
//
// Layout: the 2-bit field u = code + 1 of each weight is split into two bit
// planes, u = b0 + 2 b1. For 16 rows and 4 consecutive columns (a quad), one
// byte per row holds the quad's four b0 bits (low nibble) and four b1 bits
// (high nibble): 2 bits per weight, like the MAC layout. A 64-byte block is
// 4 quads (16 columns) x 16 rows, so one 128-bit lane is one quad and a
// byte shuffle (vpshufb) can look all 16 rows up in that quad's table.
// Tables, per token and quad: T[m] = sum of q over the columns whose bit is
// set in m (16 entries of int16, split into low-byte and high-byte tables).
// Then sum u q = T[b0 nibble] + 2 T[b1 nibble], exactly.
//
// Scope (what the measurement needs): batch 1, per-token activations, one
// scale per row or tensor; the result equals TernaryMatMulReference bit for
// bit.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/activation_quant.h"
#include "kernels/aligned_buffer.h"
#include "kernels/kernel_variant.h"
#include "kernels/ternary_matrix.h"

namespace bitnet::kernels {

struct TlPacked {
  int64_t rows = 0, cols = 0;
  int64_t tiles = 0;   // ceil(rows / 16)
  int64_t groups = 0;  // ceil(cols / 16)
  AlignedBuffer codes;        // tiles x groups x 64 bytes, tile-major
  std::vector<float> scales;  // per row (tiles * 16, zero-padded)
};

// False if w's scales are not one per row or per tensor.
bool PackTl(const TernaryMatrix& w, TlPacked* out);

// y (w.rows values) for one token of per-token activations, with variant
// kScalar, kAvx2 or kAvx512 (AVX-512BW; no VNNI needed). `tables` is scratch.
// False if the variant is not available or x is not one per-token row.
bool TlGemv(const TlPacked& w, const QuantizedActs& x, KernelVariant v, float* y,
            std::vector<int16_t>* tables);

}  // namespace bitnet::kernels
