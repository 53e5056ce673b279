// DenseMatrix storage (compact GGUF blocks), row dequantization for the
// embedding lookup, and the DenseMatMul driver: activations are rounded or
// quantized once per call, then the active variant runs over groups of rows
// on the thread pool. Each row's result depends only on that row's data, so
// the thread count never changes a bit.
#include "kernels/dense_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/activation_quant.h"
#include "kernels/dense_kernel.h"
#include "kernels/float16.h"
#include "kernels/kernel_variant.h"
#include "kernels/thread_pool.h"

namespace bitnet::kernels {

namespace {

// Rows per kernel call: small enough that their weights stay in cache while
// every token of the call passes over them (16 F16 rows of 2560: 80 KiB).
constexpr int64_t kRowsPerChunk = 16;

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

DenseActRounding RoundingFor(DenseFormat f) {
  switch (f) {
    case DenseFormat::kF32: return DenseActRounding::kNone;
    case DenseFormat::kF16: return DenseActRounding::kF16;
    case DenseFormat::kBF16: return DenseActRounding::kBF16;
    case DenseFormat::kQ8_0: return DenseActRounding::kQ8_0;
    case DenseFormat::kQ6K: return DenseActRounding::kQ8K;
  }
  return DenseActRounding::kNone;
}

void DequantizeQ6KBlock(const uint8_t* blk, float* y) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = HalfBitsToFloat(LoadU16(blk + 208));
  for (int h = 0; h < 2; ++h) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const int e = 128 * h + 32 * k + l;
        const uint8_t lo_byte = ql[64 * h + l + 32 * (k & 1)];
        const int lo = k >= 2 ? lo_byte >> 4 : lo_byte & 0xF;
        const int hi = (qh[32 * h + l] >> (2 * k)) & 3;
        // ggml's order: (d * scale) * (q - 32), all in float.
        y[e] = d * static_cast<float>(sc[e / 16]) * static_cast<float>((lo | (hi << 4)) - 32);
      }
    }
  }
}

// Per-thread buffers for the prepared activations, reused across calls.
struct ActScratch {
  std::vector<float> x, d;
  std::vector<int8_t> q;
  std::vector<int32_t> qsum;
  std::vector<int16_t> bsum;
};

void PrepareQ8_0(const float* x, int64_t n, int64_t cols, ActScratch& s, DenseActs* a) {
  const int64_t nb = cols / kQ8_0Block;
  s.q.resize(static_cast<size_t>(n * cols));
  s.d.resize(static_cast<size_t>(n * nb));
  s.qsum.resize(static_cast<size_t>(n * nb));
  for (int64_t b = 0; b < n * nb; ++b) {
    // ggml's x86 quantize_row_q8_0: d = amax/127 stored as fp16,
    // q = rne(x * 127/amax).
    const float* xb = x + b * kQ8_0Block;
    int8_t* qb = s.q.data() + b * kQ8_0Block;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8_0Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int64_t j = 0; j < kQ8_0Block; ++j) {
      const float v = std::fmin(std::fmax(std::nearbyint(xb[j] * id), -128.0f), 127.0f);
      qb[j] = static_cast<int8_t>(v);
      sum += qb[j];
    }
    s.d[b] = RoundToHalf(amax / 127.0f);
    s.qsum[b] = sum;
  }
  a->q = s.q.data();
  a->d = s.d.data();
  a->qsum = s.qsum.data();
}

void PrepareQ8K(const float* x, int64_t n, int64_t cols, ActScratch& s, DenseActs* a) {
  const int64_t nb = cols / kQ8KBlock;
  s.q.resize(static_cast<size_t>(n * cols));
  s.d.resize(static_cast<size_t>(n * nb));
  s.bsum.resize(static_cast<size_t>(n * cols / 16));
  for (int64_t b = 0; b < n * nb; ++b) {
    int8_t* qb = s.q.data() + b * kQ8KBlock;
    s.d[b] = QuantizeBlockQ8K(x + b * kQ8KBlock, kQ8KBlock, qb);
    for (int64_t g = 0; g < kQ8KBlock / 16; ++g) {
      int32_t sum = 0;
      for (int64_t j = 0; j < 16; ++j) sum += qb[g * 16 + j];
      s.bsum[b * (kQ8KBlock / 16) + g] = static_cast<int16_t>(sum);
    }
  }
  a->q = s.q.data();
  a->d = s.d.data();
  a->bsum = s.bsum.data();
}

DenseActs PrepareActs(const DenseMatrix& w, const float* x, int64_t n, ActScratch& s) {
  DenseActs a;
  a.n = n;
  a.cols = w.cols;
  switch (w.format) {
    case DenseFormat::kF32:
    case DenseFormat::kF16:
    case DenseFormat::kBF16: {
      const DenseActRounding r =
          w.format == DenseFormat::kF32 ? w.act_rounding : RoundingFor(w.format);
      s.x.resize(static_cast<size_t>(n * w.cols));
      for (int64_t i = 0; i < n; ++i) {
        RoundDenseActs(r, x + i * w.cols, w.cols, s.x.data() + i * w.cols);
      }
      a.x = s.x.data();
      break;
    }
    case DenseFormat::kQ8_0: PrepareQ8_0(x, n, w.cols, s, &a); break;
    case DenseFormat::kQ6K: PrepareQ8K(x, n, w.cols, s, &a); break;
  }
  return a;
}

DenseRowsFn ScalarFn(DenseFormat f) {
  switch (f) {
    case DenseFormat::kF32: return DenseRowsF32Scalar;
    case DenseFormat::kF16: return DenseRowsF16Scalar;
    case DenseFormat::kBF16: return DenseRowsBF16Scalar;
    case DenseFormat::kQ8_0: return DenseRowsQ8_0Scalar;
    case DenseFormat::kQ6K: return DenseRowsQ6KScalar;
  }
  return DenseRowsF32Scalar;
}

// The kernel for `f` in the active variant (scalar where it has none).
DenseRowsFn ActiveFn(DenseFormat f) {
  const DenseKernelOps* ops = nullptr;
  switch (ActiveKernelVariant()) {
    case KernelVariant::kAvx512: ops = Avx512DenseOps(); break;
    case KernelVariant::kAvx2:
    case KernelVariant::kAvxVnni: ops = Avx2DenseOps(); break;
    default: break;
  }
  DenseRowsFn fn = nullptr;
  if (ops != nullptr) {
    switch (f) {
      case DenseFormat::kF16: fn = ops->f16; break;
      case DenseFormat::kBF16: fn = ops->bf16; break;
      case DenseFormat::kQ8_0: fn = ops->q8_0; break;
      case DenseFormat::kQ6K: fn = ops->q6k; break;
      case DenseFormat::kF32: break;
    }
  }
  return fn != nullptr ? fn : ScalarFn(f);
}

bool Valid(const DenseMatrix& w) {
  if (w.rows < 0 || w.cols < 0) return false;
  if (w.format == DenseFormat::kF32) return w.w.size() >= static_cast<size_t>(w.rows * w.cols);
  return DenseShapeError(w.format, w.rows, w.cols).empty() && w.data != nullptr &&
         w.row_bytes == w.cols / DenseBlockCols(w.format) * DenseBlockBytes(w.format) &&
         w.data->size() >= static_cast<size_t>(w.rows * w.row_bytes);
}

}  // namespace

const char* DenseFormatName(DenseFormat f) {
  switch (f) {
    case DenseFormat::kF32: return "f32";
    case DenseFormat::kF16: return "f16";
    case DenseFormat::kBF16: return "bf16";
    case DenseFormat::kQ8_0: return "q8_0";
    case DenseFormat::kQ6K: return "q6_K";
  }
  return "unknown";
}

int64_t DenseBlockCols(DenseFormat f) {
  switch (f) {
    case DenseFormat::kQ8_0: return kQ8_0Block;
    case DenseFormat::kQ6K: return kQ6KBlock;
    default: return 1;
  }
}

int64_t DenseBlockBytes(DenseFormat f) {
  switch (f) {
    case DenseFormat::kF32: return 4;
    case DenseFormat::kF16:
    case DenseFormat::kBF16: return 2;
    case DenseFormat::kQ8_0: return kQ8_0BlockBytes;
    case DenseFormat::kQ6K: return kQ6KBlockBytes;
  }
  return 4;
}

size_t DenseMatrix::memory_bytes() const {
  if (format == DenseFormat::kF32) return w.size() * sizeof(float);
  return static_cast<size_t>(rows * row_bytes);
}

void DenseMatrix::RowToFloat(int64_t r, float* out) const {
  switch (format) {
    case DenseFormat::kF32:
      std::memcpy(out, w.data() + r * cols, static_cast<size_t>(cols) * sizeof(float));
      return;
    case DenseFormat::kF16:
      for (int64_t c = 0; c < cols; ++c) out[c] = HalfBitsToFloat(LoadU16(row(r) + 2 * c));
      return;
    case DenseFormat::kBF16:
      for (int64_t c = 0; c < cols; ++c) out[c] = BF16BitsToFloat(LoadU16(row(r) + 2 * c));
      return;
    case DenseFormat::kQ8_0:
      for (int64_t b = 0; b < cols / kQ8_0Block; ++b) {
        const uint8_t* blk = row(r) + b * kQ8_0BlockBytes;
        const float d = HalfBitsToFloat(LoadU16(blk));
        for (int64_t j = 0; j < kQ8_0Block; ++j) {
          out[b * kQ8_0Block + j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
        }
      }
      return;
    case DenseFormat::kQ6K:
      for (int64_t b = 0; b < cols / kQ6KBlock; ++b) {
        DequantizeQ6KBlock(row(r) + b * kQ6KBlockBytes, out + b * kQ6KBlock);
      }
      return;
  }
}

std::vector<float> DenseMatrix::ToFloat() const {
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) RowToFloat(r, out.data() + r * cols);
  return out;
}

std::string DenseShapeError(DenseFormat f, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return "negative matrix size";
  if (f == DenseFormat::kF32) return "";
  const int64_t block = DenseBlockCols(f);
  if (cols % block != 0) {
    return std::string("rows of a ") + DenseFormatName(f) + " matrix must hold whole blocks of " +
           std::to_string(block) + " values; got " + std::to_string(cols) + " columns";
  }
  return "";
}

DenseMatrix MakeCompactDense(DenseFormat f, int64_t rows, int64_t cols, const uint8_t* bytes) {
  const std::string err = f == DenseFormat::kF32 ? "MakeCompactDense needs a compact format"
                                                 : DenseShapeError(f, rows, cols);
  if (!err.empty()) {
    std::fprintf(stderr, "MakeCompactDense: %s\n", err.c_str());
    std::abort();
  }
  DenseMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.format = f;
  m.act_rounding = RoundingFor(f);
  m.row_bytes = cols / DenseBlockCols(f) * DenseBlockBytes(f);
  const size_t total = static_cast<size_t>(rows * m.row_bytes);
  auto buf = std::make_shared<AlignedBuffer>();
  if (total > 0) {
    buf->AllocateWeights(total);
    if (buf->empty()) throw std::bad_alloc();
    std::memcpy(buf->data(), bytes, total);
  }
  m.data = std::move(buf);
  return m;
}

void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y, ThreadPool& pool) {
  if (n <= 0 || w.rows <= 0) return;
  if (!Valid(w)) {
    static bool warned = false;
    if (!warned) {
      warned = true;
      std::fprintf(stderr, "warning: DenseMatMul on an inconsistent matrix; output set to NaN\n");
    }
    std::fill(y, y + n * w.rows, std::nanf(""));
    return;
  }
  thread_local ActScratch scratch;
  const DenseActs a = PrepareActs(w, x, n, scratch);
  const DenseRowsFn fn = ActiveFn(w.format);
  const int64_t chunks = (w.rows + kRowsPerChunk - 1) / kRowsPerChunk;
  // One group of rows at a time for all tokens: with several tokens the
  // group's weights are read from memory once and then from cache.
  pool.ParallelFor(chunks, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      fn(w, a, g * kRowsPerChunk, std::min(w.rows, (g + 1) * kRowsPerChunk), y);
    }
  });
}

void DenseMatMul(const DenseMatrix& w, const float* x, int64_t n, float* y) {
  DenseMatMul(w, x, n, y, KernelPool());
}

void DenseMatMulReference(const DenseMatrix& w, const float* x, int64_t n, float* y) {
  if (n <= 0 || w.rows <= 0) return;
  ActScratch scratch;
  const DenseActs a = PrepareActs(w, x, n, scratch);
  ScalarFn(w.format)(w, a, 0, w.rows, y);
}

}  // namespace bitnet::kernels
