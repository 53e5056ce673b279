#include "worker/capacity.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "kernels/roofline.h"
#include "kernels/thread_pool.h"

namespace bitnet::worker {
namespace {

// A number from a cgroup file; "max" or unreadable -> 0.
uint64_t ReadCgroupValue(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  uint64_t v = 0;
  return absl::SimpleAtoi(text, &v) ? v : 0;
}

}  // namespace

uint64_t AvailableMemoryBytes() {
  uint64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      uint64_t kb = 0;
      if (fields >> kb) available = kb * 1024;
      break;
    }
  }
  // cgroup v2, then v1: the limit minus what this cgroup already uses.
  const uint64_t limit_v2 = ReadCgroupValue("/sys/fs/cgroup/memory.max");
  const uint64_t used_v2 = ReadCgroupValue("/sys/fs/cgroup/memory.current");
  uint64_t limit = limit_v2, used = used_v2;
  if (limit == 0) {
    limit = ReadCgroupValue("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    used = ReadCgroupValue("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    if (limit >= (uint64_t{1} << 60)) limit = 0;  // v1 "unlimited"
  }
  if (limit > 0) {
    const uint64_t room = limit > used ? limit - used : 0;
    available = available == 0 ? room : std::min(available, room);
  }
  return available;
}

double MeasureReadBandwidth(int threads) {
  kernels::ThreadPool pool(threads);
  return kernels::MeasureReadBandwidth(pool, int64_t{64} << 20, 3) * 1e9;
}

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  double mult = 1;
  auto strip = [&](absl::string_view suffix, double m) {
    if (s.size() > suffix.size() && absl::EndsWith(s, suffix)) {
      s.resize(s.size() - suffix.size());
      mult = m;
      return true;
    }
    return false;
  };
  strip("b", 1);
  strip("i", 1) ;  // "GiB" -> "g" after both strips; binary units either way
  if (!(strip("k", 1024.0) || strip("m", 1024.0 * 1024) || strip("g", 1024.0 * 1024 * 1024) ||
        strip("t", 1024.0 * 1024 * 1024 * 1024))) {
    mult = 1;
  }
  double v = 0;
  if (!absl::SimpleAtod(s, &v) || v < 0 || v * mult > 1.8e19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read '", text, "' as a size: use bytes or a number with K, M, G or T (e.g. 8G)"));
  }
  return static_cast<uint64_t>(v * mult);
}

}  // namespace bitnet::worker
