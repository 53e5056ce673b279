#include "coordinator/inference_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "serving/grpc_util.h"
#include "serving/sampling_params.h"

namespace bitnet::coordinator {
namespace {

constexpr int32_t kDefaultMaxTokens = 128;
constexpr int kMaxStops = 16;
constexpr size_t kMaxStopBytes = 512;
constexpr size_t kMaxTagBytes = 256;

absl::Time DeadlineOf(const grpc::ServerContext* context) {
  const auto d = context->deadline();
  if (d >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

InferenceService::InferenceService(ServedModel model, const Tokenizer* tokenizer,
                                   Scheduler* scheduler, const ClusterManager* cluster)
    : model_(std::move(model)), tokenizer_(tokenizer), scheduler_(scheduler), cluster_(cluster) {}

absl::Status InferenceService::CheckModel(const std::string& model) const {
  if (model.empty() || model == model_.name) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model: '", model, "' is not served here; this server "
                                          "serves '", model_.name, "' (see ListModels)"));
}

absl::StatusOr<GenerationSpec> InferenceService::BuildSpec(const v1::GenerateRequest& req,
                                                           absl::Time deadline) const {
  if (auto s = CheckModel(req.model()); !s.ok()) return s;
  GenerationSpec spec;
  const bool add_bos = tokenizer_->add_bos() && !req.no_bos();
  const int64_t n_vocab = tokenizer_->n_vocab();
  switch (req.input_case()) {
    case v1::GenerateRequest::kPrompt:
      spec.prompt = tokenizer_->Encode(req.prompt(), add_bos, /*parse_special=*/true);
      break;
    case v1::GenerateRequest::kChat: {
      auto text = RenderChat(model_.chat_format, req.chat());
      if (!text.ok()) return text.status();
      spec.prompt = tokenizer_->Encode(*text, add_bos, /*parse_special=*/true);
      break;
    }
    case v1::GenerateRequest::kPromptTokens:
      for (int i = 0; i < req.prompt_tokens().ids_size(); ++i) {
        const int32_t id = req.prompt_tokens().ids(i);
        if (id < 0 || id >= n_vocab) {
          return absl::InvalidArgumentError(absl::StrCat("prompt_tokens.ids[", i, "] = ", id,
                                                         " is outside the vocabulary [0, ",
                                                         n_vocab, ")"));
        }
        spec.prompt.push_back(id);
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "prompt: set one of prompt, chat or prompt_tokens");
  }
  if (spec.prompt.empty()) {
    return absl::InvalidArgumentError(
        "prompt: the prompt is empty (and no BOS token is added); give some text or tokens");
  }
  if (static_cast<int64_t>(spec.prompt.size()) >= model_.n_ctx) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt: ", spec.prompt.size(), " tokens leave no room in the context window of ",
        model_.n_ctx, " tokens; shorten the prompt"));
  }
  auto sampling = serving::SamplingFromProto(req.has_sampling() ? &req.sampling() : nullptr);
  if (!sampling.ok()) return sampling.status();
  spec.sampling = *sampling;
  if (req.max_tokens() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens must be >= 0 (0 means ", kDefaultMaxTokens, "), got ",
                     req.max_tokens()));
  }
  spec.max_tokens = req.max_tokens() == 0 ? kDefaultMaxTokens : req.max_tokens();
  if (req.stop_size() > kMaxStops) {
    return absl::InvalidArgumentError(
        absl::StrCat("stop: at most ", kMaxStops, " stop sequences, got ", req.stop_size()));
  }
  for (int i = 0; i < req.stop_size(); ++i) {
    if (req.stop(i).empty() || req.stop(i).size() > kMaxStopBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stop[", i, "] must be 1 to ", kMaxStopBytes, " bytes, got ", req.stop(i).size()));
    }
    spec.stop.push_back(req.stop(i));
  }
  if (req.request_tag().size() > kMaxTagBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_tag: at most ", kMaxTagBytes, " bytes"));
  }
  spec.ignore_eos = req.ignore_eos();
  spec.request_tag = req.request_tag();
  spec.deadline = deadline;
  return spec;
}

grpc::Status InferenceService::StreamOut(grpc::ServerContext* context, Generation& gen,
                                         grpc::ServerWriter<v1::GenerateResponse>* writer,
                                         bool owns_generation) {
  Generation::Cursor cursor;
  auto stop_generation = [&] {
    if (owns_generation) {
      gen.RequestCancel();
      scheduler_->Wake();
    }
  };
  while (!cursor.final_sent) {
    if (context->IsCancelled()) {
      stop_generation();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the call");
    }
    v1::GenerateResponse chunk;
    if (!gen.Next(&cursor, &chunk, absl::Milliseconds(50))) continue;
    if (!writer->Write(chunk)) {
      stop_generation();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
    }
  }
  const absl::Status error = gen.error();
  return serving::ToGrpcStatus(error);
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context,
                                        const v1::GenerateRequest* req,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  auto spec = BuildSpec(*req, DeadlineOf(context));
  if (!spec.ok()) return serving::ToGrpcStatus(spec.status());
  auto gen = scheduler_->Submit(std::move(*spec));
  if (!gen.ok()) return serving::ToGrpcStatus(gen.status());
  return StreamOut(context, **gen, writer, /*owns_generation=*/true);
}

grpc::Status InferenceService::SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                                         v1::Job* job) {
  const absl::Time deadline =
      req->timeout_ms() > 0 ? absl::Now() + absl::Milliseconds(req->timeout_ms())
                            : absl::InfiniteFuture();
  auto spec = BuildSpec(req->request(), deadline);
  if (!spec.ok()) {
    // Name the field as the caller wrote it: it is nested in `request`.
    return grpc::Status(static_cast<grpc::StatusCode>(spec.status().code()),
                        absl::StrCat("request.", spec.status().message()));
  }
  spec->job_id = jobs_.NewId();
  auto gen = scheduler_->Submit(std::move(*spec));
  if (!gen.ok()) return serving::ToGrpcStatus(gen.status());
  jobs_.Add(*gen);
  (*gen)->FillJob(job, /*summary_only=*/false);
  return grpc::Status::OK;
}

std::shared_ptr<Generation> InferenceService::FindJob(const std::string& id,
                                                      grpc::Status* status) const {
  if (id.empty()) {
    *status = Invalid("job_id: required");
    return nullptr;
  }
  auto job = jobs_.Find(id);
  if (job == nullptr) {
    *status = grpc::Status(grpc::StatusCode::NOT_FOUND,
                           absl::StrCat("job_id: no job '", id,
                                        "' (unknown, or finished long ago and evicted)"));
  }
  return job;
}

grpc::Status InferenceService::GetJob(grpc::ServerContext*, const v1::GetJobRequest* req,
                                      v1::Job* job) {
  grpc::Status status;
  auto gen = FindJob(req->job_id(), &status);
  if (gen == nullptr) return status;
  gen->FillJob(job, /*summary_only=*/false);
  return grpc::Status::OK;
}

grpc::Status InferenceService::WatchJob(grpc::ServerContext* context,
                                        const v1::WatchJobRequest* req,
                                        grpc::ServerWriter<v1::GenerateResponse>* writer) {
  grpc::Status status;
  auto gen = FindJob(req->job_id(), &status);
  if (gen == nullptr) return status;
  return StreamOut(context, *gen, writer, /*owns_generation=*/false);
}

grpc::Status InferenceService::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                                         v1::Job* job) {
  grpc::Status status;
  auto gen = FindJob(req->job_id(), &status);
  if (gen == nullptr) return status;
  if (!gen->finished()) {
    gen->RequestCancel();
    scheduler_->Wake();
    // Answer with the final state when it comes quickly (it normally does).
    gen->WaitFinished(absl::Seconds(2));
  }
  gen->FillJob(job, /*summary_only=*/false);
  return grpc::Status::OK;
}

grpc::Status InferenceService::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                                        v1::ListJobsResponse* resp) {
  if (req->limit() < 0) return Invalid("limit must be >= 0 (0 means 100)");
  const size_t limit = req->limit() == 0 ? 100 : static_cast<size_t>(req->limit());
  for (const auto& gen : jobs_.List(limit, req->state())) {
    gen->FillJob(resp->add_jobs(), req->summary_only());
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                                          v1::ListModelsResponse* resp) {
  v1::ModelInfo* m = resp->add_models();
  m->set_name(model_.name);
  m->set_architecture(model_.config.arch_name);
  m->set_n_layer(model_.config.n_layer);
  m->set_n_embd(model_.config.n_embd);
  m->set_n_vocab(model_.config.n_vocab);
  m->set_n_ctx(model_.n_ctx);
  m->set_ready(cluster_->serving());
  m->set_n_stages(cluster_->n_stages());
  return grpc::Status::OK;
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* req,
                                        v1::TokenizeResponse* resp) {
  if (auto s = CheckModel(req->model()); !s.ok()) return serving::ToGrpcStatus(s);
  for (TokenId id : tokenizer_->Encode(req->text(), req->add_bos(), req->parse_special())) {
    resp->add_token_ids(id);
    resp->add_pieces(tokenizer_->TokenBytes(id, /*render_special=*/true));
  }
  return grpc::Status::OK;
}

}  // namespace bitnet::coordinator
