// What a worker advertises to the coordinator: the memory it may use and its
// measured memory read bandwidth (decode speed is bandwidth-bound, so this is
// the number placement weighs stages by).
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace bitnet::worker {

// Memory available to this process: MemAvailable from /proc/meminfo, capped
// by the cgroup limit (Kubernetes pods) when there is one. 0 if unknown.
uint64_t AvailableMemoryBytes();

// Sequential read bandwidth in bytes/s with `threads` threads, over a buffer
// larger than the caches (kernels::MeasureReadBandwidth; takes ~0.1 s).
double MeasureReadBandwidth(int threads);

// "8G", "512M", "1.5GiB", "1000000" -> bytes. INVALID_ARGUMENT otherwise.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

}  // namespace bitnet::worker
