// Async jobs by id: SubmitJob adds, GetJob / WatchJob / CancelJob find,
// ListJobs lists newest first. Finished jobs are kept (for GetJob) up to a
// bound, oldest evicted first.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/generation.h"

namespace bitnet::coordinator {

class JobStore {
 public:
  explicit JobStore(size_t max_kept = 1000) : max_kept_(max_kept) {}

  std::string NewId();
  void Add(std::shared_ptr<Generation> job);
  std::shared_ptr<Generation> Find(const std::string& id) const;
  // Newest first; `state` JOB_STATE_UNSPECIFIED matches all.
  std::vector<std::shared_ptr<Generation>> List(size_t limit, v1::JobState state) const;

 private:
  const size_t max_kept_;
  mutable absl::Mutex mu_;
  uint64_t counter_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<Generation>> order_ ABSL_GUARDED_BY(mu_);  // oldest first
  absl::flat_hash_map<std::string, std::shared_ptr<Generation>> by_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bitnet::coordinator
