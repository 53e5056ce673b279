#include "serving/log.h"

#include <cstdio>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace bitnet::serving {

void LogLine(absl::string_view component, absl::string_view message) {
  static std::mutex mu;
  const std::string when =
      absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone());
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s [%.*s] %.*s\n", when.c_str(), static_cast<int>(component.size()),
               component.data(), static_cast<int>(message.size()), message.data());
}

}  // namespace bitnet::serving
