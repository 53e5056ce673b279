// bitnet.v1.Inference: the client API (see proto/bitnet/v1/inference.proto).
// Validates requests (INVALID_ARGUMENT naming the field), turns them into
// GenerationSpecs for the scheduler, and streams Generation output back.
#pragma once

#include <memory>
#include <string>

#include "bitnet/v1/inference.grpc.pb.h"
#include "coordinator/chat_format.h"
#include "coordinator/cluster_manager.h"
#include "coordinator/job_store.h"
#include "coordinator/scheduler.h"
#include "model/model_config.h"
#include "model/tokenizer.h"

namespace bitnet::coordinator {

struct ServedModel {
  std::string name;
  ModelConfig config;
  int64_t n_ctx = 0;
  ChatFormat chat_format = ChatFormat::kPlain;
};

class InferenceService final : public v1::Inference::Service {
 public:
  InferenceService(ServedModel model, const Tokenizer* tokenizer, Scheduler* scheduler,
                   const ClusterManager* cluster);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* req,
                         v1::Job* job) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* req,
                      v1::Job* job) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* req,
                         v1::Job* job) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status ListModels(grpc::ServerContext* context, const v1::ListModelsRequest* req,
                          v1::ListModelsResponse* resp) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* req,
                        v1::TokenizeResponse* resp) override;

  // Validation and tokenization of a request (public for tests).
  absl::StatusOr<GenerationSpec> BuildSpec(const v1::GenerateRequest& req,
                                           absl::Time deadline) const;

 private:
  // Streams `gen` to `writer` until it finishes. When the client goes away
  // (or its deadline passes) a Generate call cancels the generation; a
  // WatchJob call leaves the job running.
  grpc::Status StreamOut(grpc::ServerContext* context, Generation& gen,
                         grpc::ServerWriter<v1::GenerateResponse>* writer, bool owns_generation);
  absl::Status CheckModel(const std::string& model) const;
  std::shared_ptr<Generation> FindJob(const std::string& id, grpc::Status* status) const;

  const ServedModel model_;
  const Tokenizer* tokenizer_;
  Scheduler* scheduler_;
  const ClusterManager* cluster_;
  JobStore jobs_;
};

}  // namespace bitnet::coordinator
