#include "coordinator/job_store.h"

#include <random>

#include "absl/strings/str_format.h"

namespace bitnet::coordinator {

std::string JobStore::NewId() {
  // A random prefix per process keeps ids unique across coordinator restarts.
  static const uint32_t prefix = std::random_device{}();
  absl::MutexLock lock(&mu_);
  return absl::StrFormat("job-%08x-%06d", prefix, ++counter_);
}

void JobStore::Add(std::shared_ptr<Generation> job) {
  absl::MutexLock lock(&mu_);
  by_id_[job->spec().job_id] = job;
  order_.push_back(std::move(job));
  // Evict the oldest finished jobs beyond the bound; running ones stay.
  size_t excess = order_.size() > max_kept_ ? order_.size() - max_kept_ : 0;
  for (auto it = order_.begin(); excess > 0 && it != order_.end();) {
    if ((*it)->finished()) {
      by_id_.erase((*it)->spec().job_id);
      it = order_.erase(it);
      --excess;
    } else {
      ++it;
    }
  }
}

std::shared_ptr<Generation> JobStore::Find(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Generation>> JobStore::List(size_t limit, v1::JobState state) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<Generation>> out;
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < limit; ++it) {
    if (state == v1::JOB_STATE_UNSPECIFIED || (*it)->state() == state) out.push_back(*it);
  }
  return out;
}

}  // namespace bitnet::coordinator
