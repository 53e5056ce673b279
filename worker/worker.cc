#include "worker/worker.h"

#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "bitnet/v1/cluster.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "engine/stage_engine.h"
#include "model/gguf.h"
#include "model/hf_checkpoint.h"
#include "model/model_file.h"
#include "model/model_weights.h"
#include "serving/grpc_stage_transport.h"
#include "serving/grpc_util.h"
#include "serving/log.h"
#include "worker/capacity.h"
#include "worker/stage_runner.h"

namespace bitnet::worker {
namespace {

// Readiness: "" and the stage stream are SERVING once a stage is loaded.
// bitnet.v1.Worker (placement) is SERVING whenever the process is up.
const std::vector<std::string> kHealthServices = {"bitnet.v1.StageService"};
constexpr char kLivenessService[] = "bitnet.v1.Worker";

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

bool IsLoopbackHost(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1";
}

}  // namespace

struct Worker::Impl final : public v1::Worker::Service, public serving::FrameSink {
  explicit Impl(WorkerOptions o) : options(std::move(o)) {}

  // --- bitnet.v1.Worker -------------------------------------------------
  grpc::Status LoadStage(grpc::ServerContext*, const v1::LoadStageRequest* req,
                         v1::LoadStageResponse* resp) override {
    return serving::ToGrpcStatus(Load(*req, resp));
  }

  grpc::Status GetStageStats(grpc::ServerContext*, const v1::GetStageStatsRequest*,
                             v1::StageStats* stats) override {
    absl::MutexLock lock(&stage_mu);
    FillStats(stats);
    return grpc::Status::OK;
  }

  grpc::Status FreeSequences(grpc::ServerContext*, const v1::FreeSequencesRequest* req,
                             v1::StageStats* stats) override {
    absl::MutexLock lock(&stage_mu);
    if (runner != nullptr) {
      if (req->all()) {
        runner->FreeAll();
      } else {
        for (uint64_t seq : req->seq_ids()) runner->Free(seq);
      }
    }
    FillStats(stats);
    return grpc::Status::OK;
  }

  // --- frames from the previous stage ---------------------------------
  absl::Status Consume(v1::StageFrame& frame) override {
    absl::MutexLock lock(&stage_mu);
    if (runner == nullptr || next == nullptr) {
      return absl::FailedPreconditionError(
          "this worker has no stage loaded (the coordinator sends LoadStage first)");
    }
    if (frame.epoch() != placement.epoch()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "frame of placement epoch ", frame.epoch(), " but this worker is at epoch ",
          placement.epoch()));
    }
    runner->Process(frame);
    return next->Send(frame);
  }

  // --- loading -----------------------------------------------------------
  absl::Status Load(const v1::LoadStageRequest& req, v1::LoadStageResponse* resp) {
    if (req.layer_begin() < 0 || req.layer_end() <= req.layer_begin()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer range [", req.layer_begin(), ", ", req.layer_end(), ") is empty or negative"));
    }
    if (req.n_stages() <= 0 || req.stage_index() < 0 || req.stage_index() >= req.n_stages()) {
      return absl::InvalidArgumentError(absl::StrCat("stage_index ", req.stage_index(),
                                                     " is not in [0, ", req.n_stages(), ")"));
    }
    const serving::WireFormat wire{req.wire_format(), req.wire_block()};
    if (wire.format != v1::Activations::INT8 && wire.format != v1::Activations::FP16 &&
        wire.format != v1::Activations::FP32) {
      return absl::InvalidArgumentError("wire_format must be INT8, FP16 or FP32");
    }
    EngineOptions engine_options;
    engine_options.n_threads = options.threads;
    engine_options.n_ctx = req.n_ctx();
    if (!req.kv_type().empty()) {
      auto kv = KvTypeFromName(req.kv_type());
      if (!kv.ok()) return kv.status();
      engine_options.kv_type = *kv;
    }
    if (!req.act_quant().empty()) {
      auto aq = kernels::ActQuantFromName(req.act_quant());
      if (!aq.ok()) return aq.status();
      engine_options.act_quant = *aq;
    }

    absl::MutexLock load_lock(&load_mu);
    const auto start = std::chrono::steady_clock::now();
    {
      // Drop the old stage first so its memory is free before loading.
      absl::MutexLock lock(&stage_mu);
      runner.reset();
      next.reset();
    }
    serving::SetHealth(server.get(), false, kHealthServices);
    const std::string path = options.model_path.empty() ? req.model_path() : options.model_path;
    if (path != file_path) {  // another model: nothing cached applies
      weights.reset();
      file.reset();
      file_path = path;
    }
    if (weights == nullptr || weights->layer_begin != req.layer_begin() ||
        weights->layer_end != req.layer_end()) {
      weights.reset();
      if (file == nullptr) {
        auto opened = OpenModelFile(path, req.layer_begin(), req.layer_end());
        if (!opened.ok()) {
          return absl::Status(opened.status().code(),
                              absl::StrCat("worker ", address, " cannot open the model: ",
                                           opened.status().message(),
                                           " (give the worker its own path with --model)"));
        }
        file = std::move(*opened);
      }
      Log(absl::StrFormat("loading layers [%d, %d) of %s", req.layer_begin(), req.layer_end(),
                          path));
      auto loaded = ModelWeights::Load(*file, req.layer_begin(), req.layer_end());
      if (!loaded.ok()) return loaded.status();
      weights = std::move(*loaded);
      // A Hugging Face directory's in-memory image holds only this range and
      // Load copied what it keeps: free it rather than hold the model twice.
      // (A GGUF file stays mapped for the next placement.)
      if (IsHfCheckpointDir(path)) file.reset();
    }
    auto engine = StageEngine::Create(weights, engine_options);
    if (!engine.ok()) return engine.status();
    auto stage = std::make_unique<StageRunner>(std::move(*engine), wire, req.stage_index());

    const std::string next_address =
        req.next_address().empty() ? options.coordinator : req.next_address();
    const uint64_t epoch = req.epoch();
    auto sender = transport.Connect(next_address, [this, epoch](const absl::Status& s) {
      OnLinkError(epoch, s);
    });
    if (!sender.ok()) return sender.status();
    {
      absl::MutexLock lock(&stage_mu);
      runner = std::move(stage);
      next = std::move(*sender);
      placement = req;
      weights_bytes_snapshot = weights->memory_bytes();
    }
    {
      absl::MutexLock lock(&link_mu);
      link_error.clear();
    }
    serving::SetHealth(server.get(), true, kHealthServices);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    resp->set_weight_bytes(weights->memory_bytes());
    resp->set_load_seconds(secs);
    Log(absl::StrFormat("stage %d/%d ready: layers [%d, %d), %.1f MB, %.2f s, next hop %s",
                        req.stage_index(), req.n_stages(), req.layer_begin(), req.layer_end(),
                        weights->memory_bytes() / 1e6, secs, next_address));
    return absl::OkStatus();
  }

  void OnLinkError(uint64_t epoch, const absl::Status& s) {
    {
      absl::MutexLock lock(&stage_mu);
      if (placement.epoch() != epoch) return;  // an old link going away
    }
    Log(absl::StrCat("link to the next stage failed: ", s.ToString()));
    absl::MutexLock lock(&link_mu);
    link_error = std::string(s.message());
  }

  void FillStats(v1::StageStats* stats) ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu) {
    stats->set_epoch(placement.epoch());
    stats->set_stage_index(placement.stage_index());
    stats->set_layer_begin(placement.layer_begin());
    stats->set_layer_end(placement.layer_end());
    stats->set_loaded(runner != nullptr);
    if (runner != nullptr) {
      runner->FillStats(stats);
      stats->set_weight_bytes(weights_bytes_snapshot);
    }
  }

  // --- registration and heartbeats -------------------------------------
  void RegistrationLoop() {
    auto channel = serving::MakeChannel(options.coordinator);
    auto stub = v1::Cluster::NewStub(channel);
    std::string worker_id;
    uint32_t interval_ms = 1000;
    bool warned = false;
    while (true) {
      {
        absl::MutexLock lock(&reg_mu);
        if (stopping) return;
      }
      if (worker_id.empty()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::RegisterWorkerRequest req;
        req.set_name(options.name);
        req.set_address(address);
        *req.mutable_capacity() = capacity;
        v1::RegisterWorkerResponse resp;
        grpc::Status s = stub->RegisterWorker(&ctx, req, &resp);
        if (s.ok()) {
          worker_id = resp.worker_id();
          interval_ms = resp.heartbeat_interval_ms() > 0 ? resp.heartbeat_interval_ms() : 1000;
          warned = false;
          Log(absl::StrCat("registered with ", options.coordinator, " as ", worker_id));
        } else if (!warned) {
          Log(absl::StrCat("cannot register with ", options.coordinator, " (",
                           s.error_message(), "); retrying every second"));
          warned = true;
        }
      } else {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::HeartbeatRequest req;
        req.set_worker_id(worker_id);
        {
          absl::MutexLock lock(&stage_mu);
          FillStats(req.mutable_stats());
        }
        {
          absl::MutexLock lock(&link_mu);
          req.set_link_error(link_error);
        }
        v1::HeartbeatResponse resp;
        grpc::Status s = stub->Heartbeat(&ctx, req, &resp);
        if (s.ok() && !resp.known()) {
          Log("the coordinator no longer knows this worker; registering again");
          worker_id.clear();
          continue;
        }
      }
      absl::MutexLock lock(&reg_mu);
      reg_mu.AwaitWithTimeout(absl::Condition(&stopping),
                              absl::Milliseconds(worker_id.empty() ? 1000 : interval_ms));
    }
  }

  void Log(absl::string_view message) {
    if (!options.quiet) serving::LogLine(absl::StrCat("worker ", options.name), message);
  }

  WorkerOptions options;
  std::string address;
  v1::WorkerCapacity capacity;
  serving::GrpcStageTransport transport;
  std::unique_ptr<serving::GrpcStageService> stage_service;
  std::unique_ptr<grpc::Server> server;

  absl::Mutex load_mu;  // one LoadStage at a time
  std::string file_path ABSL_GUARDED_BY(load_mu);
  std::unique_ptr<gguf::File> file ABSL_GUARDED_BY(load_mu);
  std::shared_ptr<const ModelWeights> weights;  // written under load_mu

  absl::Mutex stage_mu;  // the stage: frames run under it
  std::unique_ptr<StageRunner> runner ABSL_GUARDED_BY(stage_mu);
  std::unique_ptr<serving::StageSender> next ABSL_GUARDED_BY(stage_mu);
  v1::LoadStageRequest placement ABSL_GUARDED_BY(stage_mu);
  uint64_t weights_bytes_snapshot ABSL_GUARDED_BY(stage_mu) = 0;

  absl::Mutex link_mu;
  std::string link_error ABSL_GUARDED_BY(link_mu);

  absl::Mutex reg_mu;
  bool stopping ABSL_GUARDED_BY(reg_mu) = false;
  std::thread registrar;
  absl::Notification done;
};

absl::StatusOr<std::unique_ptr<Worker>> Worker::Start(WorkerOptions options) {
  if (options.coordinator.empty()) {
    return absl::InvalidArgumentError("--coordinator host:port is required");
  }
  if (options.threads <= 0) return absl::InvalidArgumentError("--threads must be >= 1");
  auto impl = std::make_unique<Impl>(std::move(options));
  Impl& w = *impl;
  w.capacity.set_memory_bytes(w.options.memory_bytes > 0 ? w.options.memory_bytes
                                                         : AvailableMemoryBytes());
  w.capacity.set_bandwidth_bytes_per_s(w.options.bandwidth > 0 ? w.options.bandwidth
                                                               : MeasureReadBandwidth(w.options.threads));
  w.capacity.set_threads(w.options.threads);
  w.capacity.set_backend("cpu");

  w.stage_service = std::make_unique<serving::GrpcStageService>(&w);
  int port = 0;
  auto server = serving::StartServer(w.options.listen, {&w, w.stage_service.get()}, &port);
  if (!server.ok()) return server.status();
  w.server = std::move(*server);
  serving::SetHealth(w.server.get(), false, kHealthServices);
  if (auto* health = w.server->GetHealthCheckService()) {
    health->SetServingStatus(kLivenessService, true);
  }

  if (!w.options.advertise.empty()) {
    w.address = w.options.advertise;
  } else {
    std::string host = serving::HostOf(w.options.listen);
    if (IsWildcardHost(host)) {
      host = IsLoopbackHost(serving::HostOf(w.options.coordinator)) ? "127.0.0.1" : Hostname();
    }
    w.address = absl::StrCat(host, ":", port);
  }
  if (w.options.name.empty()) w.options.name = w.address;
  w.Log(absl::StrFormat("listening on %s (memory %.1f GB, read bandwidth %.1f GB/s)", w.address,
                        w.capacity.memory_bytes() / 1e9,
                        w.capacity.bandwidth_bytes_per_s() / 1e9));
  w.registrar = std::thread([&w] { w.RegistrationLoop(); });
  return std::unique_ptr<Worker>(new Worker(std::move(impl)));
}

Worker::Worker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Worker::~Worker() { Shutdown(); }

const std::string& Worker::address() const { return impl_->address; }

void Worker::Shutdown() {
  Impl& w = *impl_;
  {
    absl::MutexLock lock(&w.reg_mu);
    if (w.stopping) return;
    w.stopping = true;
  }
  if (w.registrar.joinable()) w.registrar.join();
  // Cancels the stage streams still open, then drops the downstream link.
  w.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  {
    absl::MutexLock lock(&w.stage_mu);
    w.next.reset();
    w.runner.reset();
  }
  w.done.Notify();
}

void Worker::Wait() { impl_->done.WaitForNotification(); }

}  // namespace bitnet::worker
