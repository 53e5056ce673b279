// Parsing activation quantization names (flags, model metadata).
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/activation_quant.h"

namespace bitnet::kernels {

absl::StatusOr<ActQuant> ActQuantFromName(std::string_view name) {
  if (name == "per-token") return ActQuant::kPerToken;
  if (name == "q8k") return ActQuant::kQ8K;
  if (name == "none") return ActQuant::kNone;
  return absl::InvalidArgumentError(absl::StrCat("unknown activation quantization '",
                                                 std::string(name),
                                                 "'; use per-token, q8k or none"));
}

}  // namespace bitnet::kernels
