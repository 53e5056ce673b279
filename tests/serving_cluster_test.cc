// A real cluster on 127.0.0.1: bitnet-coordinator + 3 bitnet-worker
// processes, fp32 activations on the wire. Checks that it computes exactly
// what the single-node engine computes, alone and under 16 concurrent
// streams, that cancellation frees the KV cache on every stage, and that bad
// requests are refused naming the field.
#include <atomic>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "nlohmann/json.hpp"
#include "serving/local_pipeline.h"
#include "tests/serving_cluster.h"

namespace bitnet::testing {
namespace {

struct Prompt {
  std::string name;
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Prompt> OraclePrompts() {
  std::ifstream in(OracleDir() + "/expected.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<Prompt> out;
  for (const auto& p : j["prompts"]) {
    out.push_back({p["name"], p["text"].is_null() ? "" : p["text"].get<std::string>(),
                   p["ids"].get<std::vector<int32_t>>()});
  }
  return out;
}

constexpr int kMaxTokens = 32;

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!HaveOracle()) return;
    model_ = OracleDir() + "/tiny-gqa-tq2_0.gguf";
    prompts_ = OraclePrompts();
    // Single-node reference: the whole model in one engine, prompt in one batch.
    auto file = gguf::File::Open(model_);
    ASSERT_TRUE(file.ok()) << file.status();
    auto tokenizer = Tokenizer::FromGguf(**file);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer).release();
    const int n_layer = 4;
    auto single = serving::LocalPipeline::Create(**file, {0, n_layer}, EngineOptions(),
                                                 *serving::ParseWireFormat("fp32"));
    ASSERT_TRUE(single.ok()) << single.status();
    for (const Prompt& p : prompts_) {
      auto run = serving::RunGeneration(**single, 1, p.ids, GreedySamplingParams(), kMaxTokens,
                                        tokenizer_, 1 << 20, false);
      ASSERT_TRUE(run.ok()) << run.status();
      reference_.push_back(run->tokens);
    }
    // Chunked prefill (4 rows) on purpose: the cluster must still match.
    std::string error;
    cluster_ = ServingCluster::Start(model_, 3, {"--wire=fp32", "--prefill_chunk=4"}, &error)
                   .release();
    ASSERT_NE(cluster_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    SKIP_WITHOUT_ORACLE();
    ASSERT_NE(cluster_, nullptr);
  }

  static std::string model_;
  static std::vector<Prompt> prompts_;
  static std::vector<std::vector<TokenId>> reference_;
  static Tokenizer* tokenizer_;
  static ServingCluster* cluster_;
};

std::string ClusterTest::model_;
std::vector<Prompt> ClusterTest::prompts_;
std::vector<std::vector<TokenId>> ClusterTest::reference_;
Tokenizer* ClusterTest::tokenizer_ = nullptr;
ServingCluster* ClusterTest::cluster_ = nullptr;

TEST_F(ClusterTest, PlacesEveryLayerOnThreeStages) {
  v1::ClusterStatus status = cluster_->Status();
  EXPECT_TRUE(status.serving());
  ASSERT_EQ(status.workers_size(), 3);
  int next = 0;
  for (int stage = 0; stage < 3; ++stage) {
    bool found = false;
    for (const auto& w : status.workers()) {
      if (w.stage_index() != stage) continue;
      found = true;
      EXPECT_EQ(w.layer_begin(), next);
      EXPECT_GT(w.layer_end(), w.layer_begin());
      EXPECT_TRUE(w.stats().loaded());
      next = w.layer_end();
    }
    EXPECT_TRUE(found) << "no worker on stage " << stage;
  }
  EXPECT_EQ(next, 4);

  v1::ListModelsResponse models;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cluster_->client().inference().ListModels(&ctx, {}, &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_TRUE(models.models(0).ready());
  EXPECT_EQ(models.models(0).n_stages(), 3);
  EXPECT_EQ(models.models(0).n_layer(), 4);
  EXPECT_TRUE(*cluster_->client().IsServing("bitnet.v1.Inference"));
  EXPECT_TRUE(*cluster_->client().IsServing("bitnet.v1.Cluster"));  // liveness
}

TEST_F(ClusterTest, Fp32WireGivesTheSingleNodeTokens) {
  for (size_t i = 0; i < prompts_.size(); ++i) {
    auto result = cluster_->client().Generate(GreedyRequest(prompts_[i].ids, kMaxTokens));
    ASSERT_TRUE(result.status.ok()) << result.status << "\n" << cluster_->Logs();
    EXPECT_EQ(result.tokens, reference_[i]) << prompts_[i].name;
    EXPECT_EQ(result.last.usage().prompt_tokens(), static_cast<int>(prompts_[i].ids.size()));
    EXPECT_EQ(result.last.usage().completion_tokens(), static_cast<int>(reference_[i].size()));
    const bool eos = !reference_[i].empty() && tokenizer_->IsEndOfGeneration(reference_[i].back());
    EXPECT_EQ(result.last.finish_reason(),
              eos ? v1::FINISH_REASON_STOP : v1::FINISH_REASON_LENGTH);
  }
}

TEST_F(ClusterTest, SixteenConcurrentStreamsGetTheirTokensAlone) {
  constexpr int kClients = 16;
  std::vector<serving::GenerateResult> results(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      serving::InferenceClient client(cluster_->address());  // its own connection
      results[c] = client.Generate(GreedyRequest(prompts_[c % prompts_.size()].ids, kMaxTokens));
    });
  }
  for (auto& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) {
    ASSERT_TRUE(results[c].status.ok()) << results[c].status;
    EXPECT_EQ(results[c].tokens, reference_[c % prompts_.size()]) << "client " << c;
  }
}

TEST_F(ClusterTest, TextStreamsAsCompleteUtf8AndMatchesTokenize) {
  // Tokenize agrees with llama-tokenize on the oracle prompt.
  v1::TokenizeRequest treq;
  treq.set_text(prompts_[0].text);
  treq.set_add_bos(true);
  treq.set_parse_special(true);
  v1::TokenizeResponse tresp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(cluster_->client().inference().Tokenize(&ctx, treq, &tresp).ok());
  EXPECT_EQ(std::vector<int32_t>(tresp.token_ids().begin(), tresp.token_ids().end()),
            prompts_[0].ids);

  v1::GenerateRequest req;
  req.set_prompt(prompts_[0].text);
  req.mutable_sampling()->set_temperature(0);
  req.set_max_tokens(kMaxTokens);
  auto result = cluster_->client().Generate(req);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.tokens, reference_[0]);
  std::vector<TokenId> ids(result.tokens.begin(), result.tokens.end());
  if (!ids.empty() && tokenizer_->IsEndOfGeneration(ids.back())) ids.pop_back();
  StreamingDetokenizer detok(*tokenizer_);
  std::string expected;
  for (TokenId t : ids) expected += detok.Push(t);
  expected += detok.Flush();
  EXPECT_EQ(result.text, expected);
}

TEST_F(ClusterTest, CancelFreesTheKvCacheOnEveryStage) {
  v1::GenerateRequest req = GreedyRequest(prompts_[2].ids, 400);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  auto reader = cluster_->client().inference().Generate(&ctx, req);
  v1::GenerateResponse chunk;
  int tokens = 0;
  while (tokens < 3 && reader->Read(&chunk)) tokens += chunk.token_ids_size();
  ASSERT_GE(tokens, 3);
  // While it runs, every stage holds the sequence's KV cache.
  v1::ClusterStatus during = cluster_->Status();
  for (const auto& w : during.workers()) {
    EXPECT_EQ(w.stats().live_sequences(), 1u) << w.name();
    EXPECT_GT(w.stats().kv_bytes(), 0u) << w.name();
  }
  ctx.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  bool freed = false;
  v1::ClusterStatus after;
  for (int i = 0; i < 100 && !freed; ++i) {
    after = cluster_->Status();
    freed = after.active() == 0;
    for (const auto& w : after.workers()) {
      freed = freed && w.stats().live_sequences() == 0 && w.stats().kv_bytes() == 0;
    }
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(freed) << after.DebugString();
}

TEST_F(ClusterTest, BadRequestsNameTheField) {
  auto expect_invalid = [&](const v1::GenerateRequest& req, const std::string& field) {
    auto result = cluster_->client().Generate(req);
    EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(result.status.message().find(field), absl::string_view::npos)
        << "message does not name " << field << ": " << result.status.message();
  };
  v1::GenerateRequest good = GreedyRequest(prompts_[1].ids, 4);
  v1::GenerateRequest r = good;
  r.mutable_sampling()->set_top_p(1.5f);
  expect_invalid(r, "sampling.top_p");
  r = good;
  r.mutable_sampling()->set_temperature(-1);
  expect_invalid(r, "sampling.temperature");
  r = good;
  r.set_max_tokens(-5);
  expect_invalid(r, "max_tokens");
  r = good;
  r.mutable_prompt_tokens()->set_ids(2, 100000);
  expect_invalid(r, "prompt_tokens.ids[2]");
  r = good;
  r.clear_prompt_tokens();
  expect_invalid(r, "prompt");
  r = good;
  auto* msg = r.mutable_chat()->add_messages();
  msg->set_role("robot");
  msg->set_content("hi");
  expect_invalid(r, "chat.messages[0].role");
  r = good;
  r.mutable_prompt_tokens()->clear_ids();
  for (int i = 0; i < 600; ++i) r.mutable_prompt_tokens()->add_ids(65);
  expect_invalid(r, "prompt");
  r = good;
  r.add_stop("");
  expect_invalid(r, "stop[0]");

  r = good;
  r.set_model("some-other-model");
  EXPECT_EQ(cluster_->client().Generate(r).status.code(), absl::StatusCode::kNotFound);

  // Jobs say where the field is nested.
  v1::SubmitJobRequest submit;
  *submit.mutable_request() = good;
  submit.mutable_request()->mutable_sampling()->set_min_p(2);
  v1::Job job;
  grpc::ClientContext ctx;
  grpc::Status s = cluster_->client().inference().SubmitJob(&ctx, submit, &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("request.sampling.min_p"), std::string::npos)
      << s.error_message();
}

TEST_F(ClusterTest, JobsRunWatchListAndCancel) {
  auto& api = cluster_->client().inference();
  v1::SubmitJobRequest submit;
  *submit.mutable_request() = GreedyRequest(prompts_[0].ids, kMaxTokens);
  submit.mutable_request()->set_request_tag("mine");
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(api.SubmitJob(&ctx, submit, &job).ok());
  }
  ASSERT_FALSE(job.id().empty());
  // Watching replays the whole output, whenever it starts.
  std::vector<int32_t> watched;
  {
    grpc::ClientContext ctx;
    v1::WatchJobRequest w;
    w.set_job_id(job.id());
    auto reader = api.WatchJob(&ctx, w);
    v1::GenerateResponse chunk;
    while (reader->Read(&chunk)) {
      EXPECT_EQ(chunk.job_id(), job.id());
      EXPECT_EQ(chunk.request_tag(), "mine");
      watched.insert(watched.end(), chunk.token_ids().begin(), chunk.token_ids().end());
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(std::vector<TokenId>(watched.begin(), watched.end()), reference_[0]);
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest g;
    g.set_job_id(job.id());
    v1::Job got;
    ASSERT_TRUE(api.GetJob(&ctx, g, &got).ok());
    EXPECT_EQ(got.state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(std::vector<TokenId>(got.token_ids().begin(), got.token_ids().end()),
              reference_[0]);
  }
  // A long job, cancelled.
  *submit.mutable_request() = GreedyRequest(prompts_[1].ids, 450);
  submit.mutable_request()->set_ignore_eos(true);
  v1::Job long_job;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(api.SubmitJob(&ctx, submit, &long_job).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::CancelJobRequest c;
    c.set_job_id(long_job.id());
    v1::Job cancelled;
    ASSERT_TRUE(api.CancelJob(&ctx, c, &cancelled).ok());
    EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
    EXPECT_EQ(cancelled.finish_reason(), v1::FINISH_REASON_CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    v1::ListJobsRequest l;
    v1::ListJobsResponse jobs;
    ASSERT_TRUE(api.ListJobs(&ctx, l, &jobs).ok());
    ASSERT_GE(jobs.jobs_size(), 2);
    EXPECT_EQ(jobs.jobs(0).id(), long_job.id());  // newest first
  }
  {
    grpc::ClientContext ctx;
    v1::GetJobRequest g;
    g.set_job_id("job-does-not-exist");
    v1::Job got;
    EXPECT_EQ(api.GetJob(&ctx, g, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

}  // namespace
}  // namespace bitnet::testing
