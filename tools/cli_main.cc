// bitnet-cli: a command-line client of the serving API.
//
//   bitnet-cli --server host:port generate --prompt "Hello" [--max_tokens 64]
//   bitnet-cli --server host:port submit --prompt "Hello"      # prints the job id
//   bitnet-cli --server host:port watch JOB_ID | get JOB_ID | cancel JOB_ID
//   bitnet-cli --server host:port list-jobs | list-models | status | health
//   bitnet-cli --server host:port tokenize --prompt "Hello"
//
// --json prints responses as JSON (one object per line) for scripts.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "serving/grpc_util.h"
#include "serving/inference_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "coordinator address (host:port)");
ABSL_FLAG(std::string, prompt, "", "prompt text (generate, submit, tokenize)");
ABSL_FLAG(std::string, system, "", "chat mode: a system message (with --prompt as the user's)");
ABSL_FLAG(bool, chat, false, "send --prompt as a chat user message (the model's chat format)");
ABSL_FLAG(int, max_tokens, 128, "tokens to generate");
ABSL_FLAG(double, temperature, 0.8, "sampling temperature (0: greedy)");
ABSL_FLAG(int, top_k, 40, "top-k (0: off)");
ABSL_FLAG(double, top_p, 0.95, "top-p (1: off)");
ABSL_FLAG(double, min_p, 0.05, "min-p (0: off)");
ABSL_FLAG(double, repeat_penalty, 1.0, "repetition penalty (1: off)");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");
ABSL_FLAG(std::vector<std::string>, stop, {}, "stop sequences, comma-separated");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past end-of-generation tokens");
ABSL_FLAG(double, timeout_s, 0, "deadline of the call (generate, watch) or job (submit); 0: none");
ABSL_FLAG(bool, json, false, "print responses as JSON");
ABSL_FLAG(std::string, model, "", "model name (optional; checked by the server)");

namespace {

using bitnet::v1::GenerateResponse;

int Fail(const std::string& what) {
  std::fprintf(stderr, "bitnet-cli: %s\n", what.c_str());
  return 1;
}

int FailStatus(const grpc::Status& s) {
  return Fail(absl::StrCat(bitnet::serving::FromGrpcStatus(s).ToString()));
}

void PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opt;
  opt.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opt);
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
}

bitnet::v1::GenerateRequest RequestFromFlags() {
  bitnet::v1::GenerateRequest req;
  req.set_model(absl::GetFlag(FLAGS_model));
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  if (absl::GetFlag(FLAGS_chat) || !absl::GetFlag(FLAGS_system).empty()) {
    auto* chat = req.mutable_chat();
    if (!absl::GetFlag(FLAGS_system).empty()) {
      auto* m = chat->add_messages();
      m->set_role("system");
      m->set_content(absl::GetFlag(FLAGS_system));
    }
    auto* m = chat->add_messages();
    m->set_role("user");
    m->set_content(prompt);
  } else {
    req.set_prompt(prompt);
  }
  req.set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  auto* s = req.mutable_sampling();
  s->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  s->set_top_k(absl::GetFlag(FLAGS_top_k));
  s->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
  s->set_min_p(static_cast<float>(absl::GetFlag(FLAGS_min_p)));
  s->set_repeat_penalty(static_cast<float>(absl::GetFlag(FLAGS_repeat_penalty)));
  s->set_seed(absl::GetFlag(FLAGS_seed));
  for (const std::string& stop : absl::GetFlag(FLAGS_stop)) req.add_stop(stop);
  req.set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  return req;
}

void SetTimeout(grpc::ClientContext* ctx) {
  const double t = absl::GetFlag(FLAGS_timeout_s);
  if (t > 0) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(t * 1000)));
  }
}

// Prints a stream of GenerateResponse: text as it comes, a summary at the end.
int PrintStream(grpc::ClientReader<GenerateResponse>* reader) {
  const bool json = absl::GetFlag(FLAGS_json);
  GenerateResponse chunk, last;
  bool any = false;
  while (reader->Read(&chunk)) {
    if (json) {
      PrintJson(chunk);
    } else {
      std::fputs(chunk.text().c_str(), stdout);
      std::fflush(stdout);
    }
    last = chunk;
    any = true;
  }
  grpc::Status s = reader->Finish();
  if (!json && any) {
    std::fputs("\n", stdout);
    if (last.finish_reason() != bitnet::v1::FINISH_REASON_UNSPECIFIED) {
      std::fprintf(stderr, "[%s: %d prompt + %d generated tokens; first token %.1f ms, %.1f tokens/s]\n",
                   bitnet::v1::FinishReason_Name(last.finish_reason()).c_str(),
                   last.usage().prompt_tokens(), last.usage().completion_tokens(),
                   last.timing().time_to_first_token_ms(), last.timing().decode_tokens_per_s());
    }
  }
  return s.ok() ? 0 : FailStatus(s);
}

void PrintJob(const bitnet::v1::Job& job) {
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(job);
    return;
  }
  std::printf("%s  %-20s %4d tokens  %s\n", job.id().c_str(),
              bitnet::v1::JobState_Name(job.state()).c_str(), job.usage().completion_tokens(),
              job.finish_reason() ? bitnet::v1::FinishReason_Name(job.finish_reason()).c_str()
                                  : "");
  if (!job.text().empty()) std::printf("%s\n", job.text().c_str());
  if (!job.error().empty()) std::printf("error: %s\n", job.error().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "bitnet-cli --server host:port COMMAND [ARGS] [--flags]\n"
      "commands: generate, submit, watch JOB, get JOB, cancel JOB, list-jobs, list-models, "
      "tokenize, status, health");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Fail("give a command (see --help)");
  const std::string cmd = args[1];
  const std::string arg = args.size() > 2 ? args[2] : "";
  bitnet::serving::InferenceClient client(absl::GetFlag(FLAGS_server));
  if (absl::Status s = client.Connect(); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  auto& api = client.inference();
  grpc::ClientContext ctx;

  if (cmd == "generate") {
    SetTimeout(&ctx);
    auto reader = api.Generate(&ctx, RequestFromFlags());
    return PrintStream(reader.get());
  }
  if (cmd == "submit") {
    bitnet::v1::SubmitJobRequest req;
    *req.mutable_request() = RequestFromFlags();
    req.set_timeout_ms(static_cast<uint32_t>(absl::GetFlag(FLAGS_timeout_s) * 1000));
    bitnet::v1::Job job;
    grpc::Status s = api.SubmitJob(&ctx, req, &job);
    if (!s.ok()) return FailStatus(s);
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(job);
    } else {
      std::printf("%s\n", job.id().c_str());
    }
    return 0;
  }
  if (cmd == "watch") {
    if (arg.empty()) return Fail("watch needs a job id");
    SetTimeout(&ctx);
    bitnet::v1::WatchJobRequest req;
    req.set_job_id(arg);
    auto reader = api.WatchJob(&ctx, req);
    return PrintStream(reader.get());
  }
  if (cmd == "get" || cmd == "cancel") {
    if (arg.empty()) return Fail(cmd + " needs a job id");
    bitnet::v1::Job job;
    grpc::Status s;
    if (cmd == "get") {
      bitnet::v1::GetJobRequest req;
      req.set_job_id(arg);
      s = api.GetJob(&ctx, req, &job);
    } else {
      bitnet::v1::CancelJobRequest req;
      req.set_job_id(arg);
      s = api.CancelJob(&ctx, req, &job);
    }
    if (!s.ok()) return FailStatus(s);
    PrintJob(job);
    return 0;
  }
  if (cmd == "list-jobs") {
    bitnet::v1::ListJobsRequest req;
    req.set_summary_only(!absl::GetFlag(FLAGS_json));
    bitnet::v1::ListJobsResponse resp;
    grpc::Status s = api.ListJobs(&ctx, req, &resp);
    if (!s.ok()) return FailStatus(s);
    for (const auto& job : resp.jobs()) PrintJob(job);
    return 0;
  }
  if (cmd == "list-models") {
    bitnet::v1::ListModelsResponse resp;
    grpc::Status s = api.ListModels(&ctx, bitnet::v1::ListModelsRequest(), &resp);
    if (!s.ok()) return FailStatus(s);
    for (const auto& m : resp.models()) {
      if (absl::GetFlag(FLAGS_json)) {
        PrintJson(m);
      } else {
        std::printf("%s  %s  %lld layers  n_embd %lld  vocab %lld  ctx %lld  %s (%d stages)\n",
                    m.name().c_str(), m.architecture().c_str(),
                    static_cast<long long>(m.n_layer()), static_cast<long long>(m.n_embd()),
                    static_cast<long long>(m.n_vocab()), static_cast<long long>(m.n_ctx()),
                    m.ready() ? "ready" : "not ready", m.n_stages());
      }
    }
    return 0;
  }
  if (cmd == "tokenize") {
    bitnet::v1::TokenizeRequest req;
    req.set_text(absl::GetFlag(FLAGS_prompt));
    req.set_add_bos(true);
    req.set_parse_special(true);
    bitnet::v1::TokenizeResponse resp;
    grpc::Status s = api.Tokenize(&ctx, req, &resp);
    if (!s.ok()) return FailStatus(s);
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(resp);
    } else {
      std::printf("%s\n", absl::StrJoin(resp.token_ids(), " ").c_str());
    }
    return 0;
  }
  if (cmd == "status") {
    bitnet::v1::GetClusterStatusRequest req;
    req.set_fetch_stage_stats(true);
    bitnet::v1::ClusterStatus resp;
    grpc::Status s = client.cluster().GetClusterStatus(&ctx, req, &resp);
    if (!s.ok()) return FailStatus(s);
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(resp);
      return 0;
    }
    std::printf("%s\nqueued %d, running %d, micro-batches in flight %d, tokens %llu\n",
                resp.state().c_str(), resp.queued(), resp.active(), resp.inflight_batches(),
                static_cast<unsigned long long>(resp.tokens_generated()));
    for (const auto& w : resp.workers()) {
      std::printf("  %-4s %-22s stage %2d layers [%d,%d)  live seqs %llu  KV %.1f MB  "
                  "busy %.1f s\n",
                  w.worker_id().c_str(), w.address().c_str(), w.stage_index(), w.layer_begin(),
                  w.layer_end(), static_cast<unsigned long long>(w.stats().live_sequences()),
                  w.stats().kv_bytes() / 1e6, w.stats().busy_seconds());
    }
    return 0;
  }
  if (cmd == "health") {
    auto serving = client.IsServing();
    if (!serving.ok()) return Fail(std::string(serving.status().message()));
    std::printf("%s\n", *serving ? "SERVING" : "NOT_SERVING");
    return *serving ? 0 : 3;
  }
  return Fail(absl::StrCat("unknown command '", cmd, "' (see --help)"));
}
