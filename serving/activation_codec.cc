#include "serving/activation_codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/ggml_types.h"

namespace bitnet::serving {
namespace {

// The wire is little endian; every machine we build for is too.
static_assert(std::endian::native == std::endian::little, "wire format assumes little endian");

using Format = v1::Activations::Format;

int64_t ScalesPerRow(int64_t cols, int block) {
  return block <= 0 ? 1 : (cols + block - 1) / block;
}

// One group of values sharing a scale: scale = max|x| / 127, code = rne(x / scale).
float QuantizeGroup(const float* x, int64_t n, int8_t* q) {
  float amax = 0.f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  if (amax == 0.f || !std::isfinite(amax)) {
    // All zero (or non-finite, which the engine never produces): send zeros
    // rather than NaN codes; the receiver sees a zero row.
    std::memset(q, 0, static_cast<size_t>(n));
    return 0.f;
  }
  const float scale = amax / 127.f;
  const float inv = 127.f / amax;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
  }
  return scale;
}

}  // namespace

absl::StatusOr<WireFormat> ParseWireFormat(absl::string_view name) {
  if (name == "fp32" || name == "f32") return WireFormat{v1::Activations::FP32, 0};
  if (name == "fp16" || name == "f16") return WireFormat{v1::Activations::FP16, 0};
  if (name == "int8" || name == "int8-token") return WireFormat{v1::Activations::INT8, 0};
  if (name.substr(0, 6) == "int8-b") {
    int block = 0;
    if (absl::SimpleAtoi(name.substr(6), &block) && block >= 8 && block <= 4096) {
      return WireFormat{v1::Activations::INT8, block};
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown wire format '", name,
      "': use int8 (one scale per token), int8-b32 / int8-b64 (per block), fp16 or fp32"));
}

std::string WireFormatName(const WireFormat& f) {
  switch (f.format) {
    case v1::Activations::FP32: return "fp32";
    case v1::Activations::FP16: return "fp16";
    case v1::Activations::INT8:
      return f.block > 0 ? absl::StrCat("int8-b", f.block) : "int8";
    default: return "unspecified";
  }
}

int64_t EncodedBytes(int64_t rows, int64_t cols, const WireFormat& f) {
  switch (f.format) {
    case v1::Activations::FP32: return rows * cols * 4;
    case v1::Activations::FP16: return rows * cols * 2;
    default: return rows * cols + rows * ScalesPerRow(cols, f.block) * 4;
  }
}

void EncodeActivations(const float* x, int64_t rows, int64_t cols, const WireFormat& f,
                       v1::Activations* out) {
  out->set_format(f.format);
  out->set_rows(static_cast<int32_t>(rows));
  out->set_cols(static_cast<int32_t>(cols));
  out->set_block(f.format == v1::Activations::INT8 ? f.block : 0);
  out->clear_scales();
  std::string* data = out->mutable_data();
  const int64_t n = rows * cols;
  switch (f.format) {
    case v1::Activations::FP32:
      data->resize(static_cast<size_t>(n) * 4);
      std::memcpy(data->data(), x, static_cast<size_t>(n) * 4);
      return;
    case v1::Activations::FP16: {
      data->resize(static_cast<size_t>(n) * 2);
      auto* h = reinterpret_cast<uint16_t*>(data->data());
      for (int64_t i = 0; i < n; ++i) h[i] = ggml::FloatToHalf(x[i]);
      return;
    }
    default: {
      out->set_format(v1::Activations::INT8);
      data->resize(static_cast<size_t>(n));
      auto* q = reinterpret_cast<int8_t*>(data->data());
      const int64_t group = f.block > 0 ? f.block : cols;
      out->mutable_scales()->Reserve(static_cast<int>(rows * ScalesPerRow(cols, f.block)));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; c += group) {
          const int64_t len = std::min(group, cols - c);
          out->add_scales(QuantizeGroup(x + r * cols + c, len, q + r * cols + c));
        }
      }
      return;
    }
  }
}

absl::Status DecodeActivations(const v1::Activations& in, int64_t expected_cols,
                               std::vector<float>* x) {
  const int64_t rows = in.rows(), cols = in.cols();
  if (rows < 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("activations: bad shape %d x %d", rows, cols));
  }
  if (cols != expected_cols) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "activations have %d columns but this stage's model has n_embd = %d: are all "
        "workers serving the same model?",
        cols, expected_cols));
  }
  const int64_t n = rows * cols;
  const std::string& data = in.data();
  auto need_bytes = [&](int64_t bytes) -> absl::Status {
    if (static_cast<int64_t>(data.size()) != bytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "activations (%s, %d x %d) need %d data bytes, got %d",
          v1::Activations::Format_Name(in.format()), rows, cols, bytes, data.size()));
    }
    return absl::OkStatus();
  };
  x->resize(static_cast<size_t>(n));
  switch (in.format()) {
    case v1::Activations::FP32:
      if (auto s = need_bytes(n * 4); !s.ok()) return s;
      std::memcpy(x->data(), data.data(), static_cast<size_t>(n) * 4);
      return absl::OkStatus();
    case v1::Activations::FP16: {
      if (auto s = need_bytes(n * 2); !s.ok()) return s;
      const auto* h = reinterpret_cast<const uint8_t*>(data.data());
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, h + 2 * i, 2);
        (*x)[i] = ggml::HalfToFloat(v);
      }
      return absl::OkStatus();
    }
    case v1::Activations::INT8: {
      if (auto s = need_bytes(n); !s.ok()) return s;
      if (in.block() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("activations: negative int8 block ", in.block()));
      }
      const int64_t per_row = ScalesPerRow(cols, in.block());
      if (in.scales_size() != rows * per_row) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "activations (int8, %d x %d, block %d) need %d scales, got %d", rows, cols,
            in.block(), rows * per_row, in.scales_size()));
      }
      const int64_t group = in.block() > 0 ? in.block() : cols;
      const auto* q = reinterpret_cast<const int8_t*>(data.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g = 0; g < per_row; ++g) {
          const float scale = in.scales(static_cast<int>(r * per_row + g));
          const int64_t begin = g * group, end = std::min(cols, begin + group);
          for (int64_t c = begin; c < end; ++c) {
            (*x)[r * cols + c] = static_cast<float>(q[r * cols + c]) * scale;
          }
        }
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "activations: unknown wire format ", static_cast<int>(in.format()),
          " (sender is newer than this worker?)"));
  }
}

}  // namespace bitnet::serving
