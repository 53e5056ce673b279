#include "coordinator/coordinator.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/health_check_service_interface.h"
#include "coordinator/chat_format.h"
#include "coordinator/cluster_manager.h"
#include "coordinator/inference_service.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/model_file.h"
#include "model/tokenizer.h"
#include "serving/grpc_stage_transport.h"
#include "serving/grpc_util.h"
#include "serving/log.h"
#include "serving/placement.h"

namespace bitnet::coordinator {
namespace {

// Readiness: the whole server ("") and the client API are SERVING only while
// every layer is placed and loaded. bitnet.v1.Cluster (workers register
// through it) is SERVING whenever the process is up: a liveness check.
const std::vector<std::string> kHealthServices = {"bitnet.v1.Inference"};
constexpr char kLivenessService[] = "bitnet.v1.Cluster";

std::string FileStem(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0) name.resize(name.size() - 5);
  return name;
}

}  // namespace

struct Coordinator::Impl {
  CoordinatorOptions options;
  std::unique_ptr<gguf::File> file;  // metadata only: weight pages are never touched
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Scheduler> scheduler;
  serving::GrpcStageTransport transport;
  std::unique_ptr<ClusterManager> cluster;
  std::unique_ptr<InferenceService> inference;
  std::unique_ptr<serving::GrpcStageService> results;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  absl::Mutex mu;
  bool serving ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;
  absl::Notification done;
};

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(CoordinatorOptions options) {
  auto impl = std::make_unique<Impl>();
  Impl& c = *impl;
  c.options = std::move(options);
  if (c.options.model_path.empty()) return absl::InvalidArgumentError("--model is required");
  if (c.options.min_workers < 1) return absl::InvalidArgumentError("--workers must be >= 1");
  auto wire = serving::ParseWireFormat(c.options.wire);
  if (!wire.ok()) return wire.status();
  auto kv = KvTypeFromName(c.options.kv_type);
  if (!kv.ok()) return kv.status();

  // Metadata only: a Hugging Face directory is read without its layers.
  auto file = OpenModelFile(c.options.model_path, 0, 0);
  if (!file.ok()) return file.status();
  c.file = std::move(*file);
  auto config = ConfigFromGguf(*c.file);
  if (!config.ok()) return config.status();
  c.config = *config;
  auto tokenizer = Tokenizer::FromGguf(*c.file);
  if (!tokenizer.ok()) return tokenizer.status();
  c.tokenizer = std::move(*tokenizer);
  auto footprint = serving::FootprintFromGguf(*c.file, c.config, *kv);
  if (!footprint.ok()) return footprint.status();

  int64_t n_ctx = c.options.n_ctx > 0 ? c.options.n_ctx : c.config.n_ctx_train;
  if (n_ctx <= 0) n_ctx = 2048;
  if (c.config.n_ctx_train > 0 && n_ctx > c.config.n_ctx_train) {
    return absl::InvalidArgumentError(absl::StrCat("--ctx ", n_ctx, " exceeds the model's "
                                                   "training context of ", c.config.n_ctx_train));
  }

  ServedModel served;
  served.name = !c.options.model_name.empty() ? c.options.model_name
                : !c.config.name.empty()      ? c.config.name
                                              : FileStem(c.options.model_path);
  served.config = c.config;
  served.n_ctx = n_ctx;
  served.chat_format = DetectChatFormat(*c.file);

  c.scheduler = std::make_unique<Scheduler>(c.options.scheduler, c.tokenizer.get(), n_ctx);
  ClusterOptions co;
  co.model_path = c.options.model_path;
  co.min_workers = c.options.min_workers;
  co.rebalance_on_join = c.options.rebalance_on_join;
  co.wire = *wire;
  co.n_ctx = n_ctx;
  co.kv_type = c.options.kv_type;
  co.act_quant = c.options.act_quant;
  co.placement.kv_reserve_tokens =
      c.options.kv_reserve_tokens >= 0 ? c.options.kv_reserve_tokens : n_ctx;
  co.placement.max_stages = c.options.max_stages;
  co.heartbeat_timeout_ms = c.options.heartbeat_timeout_ms;
  co.quiet = c.options.quiet;
  c.cluster = std::make_unique<ClusterManager>(co, *std::move(footprint), c.scheduler.get(),
                                               &c.transport);
  c.inference = std::make_unique<InferenceService>(served, c.tokenizer.get(), c.scheduler.get(),
                                                   c.cluster.get());
  c.results = std::make_unique<serving::GrpcStageService>(c.cluster.get());

  auto server = serving::StartServer(
      c.options.listen, {c.inference.get(), c.cluster.get(), c.results.get()}, &c.port);
  if (!server.ok()) return server.status();
  c.server = std::move(*server);
  serving::SetHealth(c.server.get(), false, kHealthServices);
  if (auto* health = c.server->GetHealthCheckService()) {
    health->SetServingStatus(kLivenessService, true);
  }
  if (!c.options.quiet) {
    serving::LogLine("coordinator", absl::StrFormat(
        "serving '%s' (%s, %d layers, n_embd %d, context %d, chat format %s) on port %d; "
        "wire %s; waiting for %d worker(s)",
        served.name, c.config.arch_name, c.config.n_layer, c.config.n_embd, n_ctx,
        ChatFormatName(served.chat_format), c.port, serving::WireFormatName(*wire),
        c.options.min_workers));
  }
  Impl* raw = &c;
  c.cluster->Start([raw](bool serving) {
    serving::SetHealth(raw->server.get(), serving, kHealthServices);
    absl::MutexLock lock(&raw->mu);
    raw->serving = serving;
  });
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

Coordinator::Coordinator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Coordinator::~Coordinator() { Shutdown(); }

int Coordinator::port() const { return impl_->port; }

bool Coordinator::WaitUntilServing(absl::Duration timeout) {
  absl::MutexLock lock(&impl_->mu);
  return impl_->mu.AwaitWithTimeout(absl::Condition(&impl_->serving), timeout);
}

void Coordinator::Shutdown() {
  Impl& c = *impl_;
  {
    absl::MutexLock lock(&c.mu);
    if (c.stopped) return;
    c.stopped = true;
  }
  c.cluster->Shutdown();
  c.scheduler->Shutdown();  // finishes every open generation, so streams end
  c.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  c.done.Notify();
}

void Coordinator::Wait() { impl_->done.WaitForNotification(); }

}  // namespace bitnet::coordinator
