#include "coordinator/cluster_manager.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "serving/grpc_util.h"
#include "serving/log.h"

namespace bitnet::coordinator {
namespace {

constexpr auto kLoadTimeout = std::chrono::minutes(30);
constexpr absl::Duration kRetryDelay = absl::Seconds(3);

}  // namespace

ClusterManager::ClusterManager(ClusterOptions options, serving::ModelFootprint footprint,
                               Scheduler* scheduler, serving::StageTransport* transport)
    : options_(std::move(options)),
      footprint_(std::move(footprint)),
      n_layer_(static_cast<int>(footprint_.layer_bytes.size())),
      scheduler_(scheduler),
      transport_(transport) {
  absl::MutexLock lock(&mu_);
  // Epochs keep increasing across coordinator restarts, so a worker never
  // mistakes a new placement for an old one.
  epoch_ = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  SetState(absl::StrCat("waiting for workers (0 of ", options_.min_workers, " registered)"));
}

ClusterManager::~ClusterManager() { Shutdown(); }

void ClusterManager::Start(std::function<void(bool)> on_serving) {
  on_serving_ = std::move(on_serving);
  thread_ = std::thread([this] { Loop(); });
}

void ClusterManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
    for (grpc::ClientContext* ctx : loading_) ctx->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
  std::shared_ptr<serving::StageSender> sender;
  {
    absl::MutexLock lock(&mu_);
    sender = std::move(stage0_);
  }
  sender.reset();
}

bool ClusterManager::serving() const {
  absl::MutexLock lock(&mu_);
  return serving_;
}

int ClusterManager::n_stages() const {
  absl::MutexLock lock(&mu_);
  return n_stages_;
}

std::string ClusterManager::state() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void ClusterManager::SetState(std::string state) {
  if (state == state_) return;
  state_ = std::move(state);
  if (!serving_) scheduler_->SetUnavailableReason(state_);
  Log(state_);
}

void ClusterManager::Log(absl::string_view message) const {
  if (!options_.quiet) serving::LogLine("coordinator", message);
}

grpc::Status ClusterManager::RegisterWorker(grpc::ServerContext*,
                                            const v1::RegisterWorkerRequest* req,
                                            v1::RegisterWorkerResponse* resp) {
  if (req->address().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "address: the worker must say where it can be reached (host:port)");
  }
  absl::MutexLock lock(&mu_);
  // A worker that comes back (same address) replaces its old self.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.address == req->address()) {
      if (it->second.stage >= 0 && replan_reason_.empty()) {
        replan_reason_ = absl::StrCat("worker ", it->second.name, " registered again");
      }
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  WorkerRec w;
  w.order = next_worker_++;
  w.id = absl::StrCat("w", w.order);
  w.name = req->name().empty() ? req->address() : req->name();
  w.address = req->address();
  w.capacity = req->capacity();
  w.last_heartbeat = absl::Now();
  Log(absl::StrFormat("worker %s registered: %s at %s, %.1f GB, %.1f GB/s", w.id, w.name,
                      w.address, w.capacity.memory_bytes() / 1e9,
                      w.capacity.bandwidth_bytes_per_s() / 1e9));
  resp->set_worker_id(w.id);
  resp->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  if (serving_ && options_.rebalance_on_join && replan_reason_.empty()) {
    replan_reason_ = absl::StrCat("worker ", w.name, " joined");
  }
  workers_.emplace(w.id, std::move(w));
  membership_changed_ = true;
  return grpc::Status::OK;
}

grpc::Status ClusterManager::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                       v1::HeartbeatResponse* resp) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(req->worker_id());
  if (it == workers_.end()) {
    resp->set_known(false);
    return grpc::Status::OK;
  }
  resp->set_known(true);
  WorkerRec& w = it->second;
  w.last_heartbeat = absl::Now();
  w.stats = req->stats();
  if (!req->link_error().empty() && serving_ && w.stage >= 0 &&
      req->stats().epoch() == epoch_ && replan_reason_.empty()) {
    replan_reason_ = absl::StrCat("worker ", w.name, " lost its link: ", req->link_error());
  }
  return grpc::Status::OK;
}

grpc::Status ClusterManager::GetClusterStatus(grpc::ServerContext*,
                                              const v1::GetClusterStatusRequest* req,
                                              v1::ClusterStatus* resp) {
  std::vector<WorkerRec> snapshot;
  {
    absl::MutexLock lock(&mu_);
    resp->set_serving(serving_);
    resp->set_epoch(epoch_);
    resp->set_state(state_);
    for (const auto& [id, w] : workers_) snapshot.push_back(w);
  }
  std::sort(snapshot.begin(), snapshot.end(),
            [](const WorkerRec& a, const WorkerRec& b) { return a.order < b.order; });
  const absl::Time now = absl::Now();
  for (WorkerRec& w : snapshot) {
    if (req->fetch_stage_stats()) {
      auto channel = serving::MakeChannel(w.address);
      auto stub = v1::Worker::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      v1::StageStats fresh;
      if (serving::WaitForConnection(*channel, w.address, absl::Seconds(3)).ok() &&
          stub->GetStageStats(&ctx, v1::GetStageStatsRequest(), &fresh).ok()) {
        w.stats = fresh;
      }
    }
    v1::WorkerStatus* ws = resp->add_workers();
    ws->set_worker_id(w.id);
    ws->set_name(w.name);
    ws->set_address(w.address);
    *ws->mutable_capacity() = w.capacity;
    ws->set_stage_index(w.stage);
    ws->set_layer_begin(w.layer_begin);
    ws->set_layer_end(w.layer_end);
    *ws->mutable_stats() = w.stats;
    ws->set_seconds_since_heartbeat(absl::ToDoubleSeconds(now - w.last_heartbeat));
  }
  const Scheduler::Stats s = scheduler_->stats();
  resp->set_queued(s.queued);
  resp->set_active(s.active);
  resp->set_inflight_batches(s.inflight_batches);
  resp->set_tokens_generated(s.tokens_generated);
  resp->set_requests_finished(s.requests_finished);
  resp->set_batches_completed(s.batches_completed);
  resp->set_batch_round_trip_seconds(s.batch_round_trip_seconds);
  resp->set_batch_compute_seconds(s.batch_compute_seconds);
  resp->set_n_stages(s.n_stages);
  return grpc::Status::OK;
}

absl::Status ClusterManager::Consume(v1::StageFrame& frame) {
  scheduler_->OnResult(std::move(frame));
  return absl::OkStatus();
}

void ClusterManager::RequestReplan(uint64_t epoch, std::string why) {
  absl::MutexLock lock(&mu_);
  if (epoch == epoch_ && serving_ && replan_reason_.empty()) replan_reason_ = std::move(why);
}

std::shared_ptr<serving::StageSender> ClusterManager::Unplace(const absl::Status& why) {
  if (serving_) {
    serving_ = false;
    n_stages_ = 0;
    scheduler_->DetachPipeline(why);
    if (on_serving_) on_serving_(false);
  }
  for (auto& [id, w] : workers_) w.stage = -1;
  return std::move(stage0_);
}

void ClusterManager::Loop() {
  while (true) {
    bool place = false;
    std::shared_ptr<serving::StageSender> old_link;
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !replan_reason_.empty() || membership_changed_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&wake), absl::Milliseconds(250));
      if (stop_) return;
      membership_changed_ = false;
      const absl::Time now = absl::Now();
      // Drop workers that stopped heartbeating.
      for (auto it = workers_.begin(); it != workers_.end();) {
        const WorkerRec& w = it->second;
        if (now - w.last_heartbeat > absl::Milliseconds(options_.heartbeat_timeout_ms)) {
          Log(absl::StrCat("worker ", w.name, " missed its heartbeats; dropping it"));
          if (w.stage >= 0 && replan_reason_.empty()) {
            replan_reason_ = absl::StrCat("worker ", w.name, " was lost");
          }
          it = workers_.erase(it);
        } else {
          ++it;
        }
      }
      if (!replan_reason_.empty()) {
        old_link = Unplace(absl::UnavailableError(replan_reason_));
        SetState(absl::StrCat("placing the model again: ", replan_reason_));
        replan_reason_.clear();
        next_attempt_ = absl::InfinitePast();
      }
      if (!serving_) {
        const int have = static_cast<int>(workers_.size());
        const int need = placed_once_ ? 1 : options_.min_workers;
        if (have < need) {
          SetState(absl::StrCat("waiting for workers (", have, " of ", need, " registered)"));
        } else if (now >= next_attempt_) {
          place = true;
        }
      }
    }
    old_link.reset();
    if (place) TryPlace();
  }
}

void ClusterManager::TryPlace() {
  std::vector<WorkerRec> workers;
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, w] : workers_) workers.push_back(w);
    epoch = ++epoch_;
  }
  std::sort(workers.begin(), workers.end(),
            [](const WorkerRec& a, const WorkerRec& b) { return a.order < b.order; });
  std::vector<serving::WorkerCapacityInfo> caps;
  for (const WorkerRec& w : workers) {
    caps.push_back({w.name, w.capacity.memory_bytes(), w.capacity.bandwidth_bytes_per_s()});
  }
  auto fail = [&](std::string why) {
    absl::MutexLock lock(&mu_);
    next_attempt_ = absl::Now() + kRetryDelay;
    SetState(std::move(why));
  };
  auto plan = serving::PlanPlacement(footprint_, caps, options_.placement);
  if (!plan.ok()) {
    fail(absl::StrCat("cannot place the model: ", plan.status().message()));
    return;
  }
  const int n = static_cast<int>(plan->size());
  {
    absl::MutexLock lock(&mu_);
    SetState(absl::StrCat("loading (epoch ", epoch, "): ",
                          serving::PlacementSummary(*plan, caps)));
  }

  // Every stage loads in parallel; each learns its successor's address (the
  // last stage sends to the coordinator it registered with).
  std::vector<absl::Status> results(static_cast<size_t>(n));
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(static_cast<size_t>(n));
  std::vector<std::thread> loaders;
  for (int i = 0; i < n; ++i) {
    const serving::StagePlan& sp = (*plan)[static_cast<size_t>(i)];
    v1::LoadStageRequest req;
    req.set_epoch(epoch);
    req.set_model_path(options_.model_path);
    req.set_layer_begin(sp.layer_begin);
    req.set_layer_end(sp.layer_end);
    req.set_stage_index(i);
    req.set_n_stages(n);
    if (i + 1 < n) {
      req.set_next_address(workers[static_cast<size_t>((*plan)[static_cast<size_t>(i) + 1].worker)].address);
    }
    req.set_wire_format(options_.wire.format);
    req.set_wire_block(options_.wire.block);
    req.set_n_ctx(options_.n_ctx);
    req.set_kv_type(options_.kv_type);
    req.set_act_quant(options_.act_quant);
    contexts[static_cast<size_t>(i)] = std::make_unique<grpc::ClientContext>();
    grpc::ClientContext* ctx = contexts[static_cast<size_t>(i)].get();
    ctx->set_deadline(std::chrono::system_clock::now() + kLoadTimeout);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) ctx->TryCancel();
      loading_.push_back(ctx);
    }
    const std::string address = workers[static_cast<size_t>(sp.worker)].address;
    loaders.emplace_back([this, req, address, ctx, &results, i] {
      auto channel = serving::MakeChannel(address);
      absl::Status& result = results[static_cast<size_t>(i)];
      result = serving::WaitForConnection(*channel, address, serving::kConnectTimeout, [this] {
        absl::MutexLock lock(&mu_);
        return stop_;
      });
      if (!result.ok()) return;
      auto stub = v1::Worker::NewStub(channel);
      v1::LoadStageResponse resp;
      result = serving::FromGrpcStatus(stub->LoadStage(ctx, req, &resp));
    });
  }
  for (std::thread& t : loaders) t.join();
  {
    absl::MutexLock lock(&mu_);
    loading_.clear();
  }
  for (int i = 0; i < n; ++i) {
    const absl::Status& r = results[static_cast<size_t>(i)];
    if (r.ok()) continue;
    const WorkerRec& w = workers[static_cast<size_t>((*plan)[static_cast<size_t>(i)].worker)];
    if (absl::IsUnavailable(r)) {
      // Unreachable: drop it now rather than after its heartbeats time out
      // (a live worker registers again by itself).
      absl::MutexLock lock(&mu_);
      workers_.erase(w.id);
      next_attempt_ = absl::InfinitePast();
      SetState(absl::StrCat("worker ", w.name, " is unreachable (", r.message(),
                            "); placing without it"));
      return;
    }
    fail(absl::StrCat("loading failed on worker ", w.name, ": ", r.message(), " (retrying)"));
    return;
  }

  const std::string first = workers[static_cast<size_t>((*plan)[0].worker)].address;
  auto sender = transport_->Connect(first, [this, epoch](const absl::Status& s) {
    RequestReplan(epoch, absl::StrCat("the link to stage 0 failed: ", s.message()));
  });
  if (!sender.ok()) {
    fail(absl::StrCat("cannot reach stage 0 at ", first, ": ", sender.status().message()));
    return;
  }
  std::shared_ptr<serving::StageSender> link = std::move(*sender);

  absl::MutexLock lock(&mu_);
  if (stop_ || epoch != epoch_ || !replan_reason_.empty()) return;  // overtaken meanwhile
  for (int i = 0; i < n; ++i) {
    const serving::StagePlan& sp = (*plan)[static_cast<size_t>(i)];
    auto it = workers_.find(workers[static_cast<size_t>(sp.worker)].id);
    if (it == workers_.end()) {
      next_attempt_ = absl::InfinitePast();
      SetState("a worker left during loading; placing again");
      return;
    }
    it->second.stage = i;
    it->second.layer_begin = sp.layer_begin;
    it->second.layer_end = sp.layer_end;
  }
  stage0_ = link;
  serving_ = true;
  placed_once_ = true;
  n_stages_ = n;
  scheduler_->AttachPipeline(epoch, n, [link](const v1::StageFrame& f) { return link->Send(f); });
  SetState(absl::StrCat("serving (epoch ", epoch, ", ", n, " stages): ",
                        serving::PlacementSummary(*plan, caps)));
  if (on_serving_) on_serving_(true);
}

}  // namespace bitnet::coordinator
