// The wire format of hidden states between pipeline stages.
//
// The residual stream is float inside the model; what crosses the network is
// a choice that trades bytes for accuracy:
//   int8      one fp32 scale per row (per token): 1 byte/value + 4 bytes/row
//   int8-b32  one scale per 32 values of a row: 1.125 bytes/value
//   int8-b64  one scale per 64 values: 1.0625 bytes/value
//   fp16      2 bytes/value, IEEE half with round-to-nearest-even
//   fp32      4 bytes/value, exact
// For int8, scale = max|x| / 127 over the row (or block), code = rne(x / scale),
// so the absolute error of a value is at most scale / 2 = max|x| / 254.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bitnet/v1/stage.pb.h"

namespace bitnet::serving {

struct WireFormat {
  v1::Activations::Format format = v1::Activations::INT8;
  int block = 0;  // INT8 only: values per scale, 0 = one scale per row

  bool operator==(const WireFormat&) const = default;
};

// "int8" | "int8-b32" | "int8-b64" | "int8-b<N>" | "fp16" | "fp32".
absl::StatusOr<WireFormat> ParseWireFormat(absl::string_view name);
std::string WireFormatName(const WireFormat& f);

// Encodes rows x cols row-major floats into `out`, reusing its buffers.
void EncodeActivations(const float* x, int64_t rows, int64_t cols, const WireFormat& f,
                       v1::Activations* out);

// Decodes `in` into `x` (resized to rows * cols). Every size is checked
// against rows, cols and the format, and cols must equal `expected_cols`, so a
// malformed or mismatched frame is an INVALID_ARGUMENT, never a bad read.
absl::Status DecodeActivations(const v1::Activations& in, int64_t expected_cols,
                               std::vector<float>* x);

// Bytes the encoding of rows x cols values takes on the wire (payload only).
int64_t EncodedBytes(int64_t rows, int64_t cols, const WireFormat& f);

}  // namespace bitnet::serving
