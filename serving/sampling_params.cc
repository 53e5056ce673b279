#include "serving/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace bitnet::serving {
namespace {

absl::Status Bad(absl::string_view prefix, absl::string_view field, absl::string_view rule,
                 double got) {
  return absl::InvalidArgumentError(
      absl::StrCat(prefix, field, " must be ", rule, ", got ", got));
}

}  // namespace

absl::StatusOr<SamplingParams> SamplingFromProto(const v1::SamplingParams* p,
                                                 absl::string_view prefix) {
  SamplingParams s;
  if (p == nullptr) return s;
  if (!std::isfinite(p->temperature()) || p->temperature() < 0) {
    return Bad(prefix, "temperature", ">= 0 (0 is greedy)", p->temperature());
  }
  if (p->top_k() < 0) return Bad(prefix, "top_k", ">= 0 (0 is off)", p->top_k());
  if (!(p->top_p() >= 0 && p->top_p() <= 1)) {
    return Bad(prefix, "top_p", "in [0, 1] (0 or 1 is off)", p->top_p());
  }
  if (!(p->min_p() >= 0 && p->min_p() <= 1)) {
    return Bad(prefix, "min_p", "in [0, 1] (0 is off)", p->min_p());
  }
  if (!std::isfinite(p->repeat_penalty()) || p->repeat_penalty() < 0) {
    return Bad(prefix, "repeat_penalty", ">= 0 (0 or 1 is off)", p->repeat_penalty());
  }
  if (p->repeat_last_n() < -1) {
    return Bad(prefix, "repeat_last_n", ">= -1 (0 means 64, -1 the whole context)",
               p->repeat_last_n());
  }
  s.temperature = p->temperature();
  s.top_k = p->top_k();
  s.top_p = p->top_p() == 0 ? 1.f : p->top_p();
  s.min_p = p->min_p();
  s.repeat_penalty = p->repeat_penalty() == 0 ? 1.f : p->repeat_penalty();
  s.repeat_last_n = p->repeat_last_n() == 0 ? 64 : p->repeat_last_n();
  s.seed = p->seed();
  return s;
}

void SamplingToProto(const SamplingParams& s, v1::SamplingParams* p) {
  p->set_temperature(s.temperature < 0 ? 0.f : s.temperature);
  p->set_top_k(s.top_k < 0 ? 0 : s.top_k);
  p->set_top_p(s.top_p >= 1 ? 1.f : s.top_p);
  p->set_min_p(s.min_p < 0 ? 0.f : s.min_p);
  // The engine's repeat_last_n 0 (look at nothing) is a penalty that never
  // applies; the wire says that with repeat_penalty 1.
  p->set_repeat_penalty(s.repeat_last_n == 0 ? 1.f : s.repeat_penalty);
  p->set_repeat_last_n(s.repeat_last_n == 0 ? 64 : s.repeat_last_n);
  p->set_seed(s.seed);
}

}  // namespace bitnet::serving
