// The wire form of sampling parameters (bitnet.v1.SamplingParams, where zero
// means "off") and the engine's SamplingParams.
#pragma once

#include "absl/status/statusor.h"
#include "bitnet/v1/inference.pb.h"
#include "engine/sampler.h"

namespace bitnet::serving {

// `p == nullptr` (field absent) gives the engine defaults. Otherwise every
// field is taken as given, zero meaning off (see inference.proto).
// INVALID_ARGUMENT names the field, prefixed by `field_prefix` ("sampling.").
absl::StatusOr<SamplingParams> SamplingFromProto(const v1::SamplingParams* p,
                                                 absl::string_view field_prefix = "sampling.");

// Engine params -> wire, such that SamplingFromProto gives them back exactly.
void SamplingToProto(const SamplingParams& s, v1::SamplingParams* p);

}  // namespace bitnet::serving
