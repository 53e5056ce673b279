// Admission and failure handling on a real cluster: a full queue gives
// RESOURCE_EXHAUSTED, a passed deadline stops the generation and frees its
// KV cache, and a lost worker is replaced by a newcomer without changing
// the tokens.
#include <thread>

#include "gtest/gtest.h"
#include "tests/serving_cluster.h"

namespace bitnet::testing {
namespace {

const std::vector<int32_t> kBos = {288};  // the oracle model's BOS: prompt p4

std::string Model() { return OracleDir() + "/tiny-gqa-tq2_0.gguf"; }

// Polls until no stage holds any sequence.
bool WaitForEmptyStages(ServingCluster& cluster, v1::ClusterStatus* last) {
  for (int i = 0; i < 100; ++i) {
    *last = cluster.Status();
    bool empty = last->active() == 0 && last->queued() == 0 && last->workers_size() > 0;
    for (const auto& w : last->workers()) {
      empty = empty && w.stats().live_sequences() == 0 && w.stats().kv_bytes() == 0;
    }
    if (empty) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(ServingAdmission, FullQueueGivesResourceExhausted) {
  SKIP_WITHOUT_ORACLE();
  std::string error;
  auto cluster = ServingCluster::Start(Model(), 1, {"--max_active=1", "--max_queue=1"}, &error);
  ASSERT_NE(cluster, nullptr) << error;
  auto& api = cluster->client().inference();
  // One runs, one waits; the rest are refused while they do.
  std::vector<std::string> accepted;
  int refused = 0;
  for (int i = 0; i < 6; ++i) {
    v1::SubmitJobRequest submit;
    *submit.mutable_request() = GreedyRequest(kBos, 500);
    submit.mutable_request()->set_ignore_eos(true);
    v1::Job job;
    grpc::ClientContext ctx;
    grpc::Status s = api.SubmitJob(&ctx, submit, &job);
    if (s.ok()) {
      accepted.push_back(job.id());
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
      EXPECT_NE(s.error_message().find("queue is full"), std::string::npos) << s.error_message();
      ++refused;
    }
  }
  EXPECT_GE(refused, 1);
  EXPECT_LE(accepted.size(), 3u);  // running + queued (+ one admitted between submits)
  for (const std::string& id : accepted) {
    grpc::ClientContext ctx;
    v1::CancelJobRequest c;
    c.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(api.CancelJob(&ctx, c, &job).ok());
  }
  v1::ClusterStatus status;
  EXPECT_TRUE(WaitForEmptyStages(*cluster, &status)) << status.DebugString();
}

TEST(ServingAdmission, DeadlineStopsTheGenerationAndFreesItsCache) {
  SKIP_WITHOUT_ORACLE();
  std::string error;
  auto cluster = ServingCluster::Start(Model(), 2, {}, &error);
  ASSERT_NE(cluster, nullptr) << error;
  v1::GenerateRequest req = GreedyRequest(kBos, 500);
  req.set_ignore_eos(true);
  // 500 tokens take far longer than 20 ms (each one is a pipeline round trip).
  auto result = cluster->client().Generate(req, {}, absl::Milliseconds(20));
  EXPECT_EQ(result.status.code(), absl::StatusCode::kDeadlineExceeded) << result.status;
  EXPECT_LT(result.tokens.size(), 500u);
  v1::ClusterStatus status;
  EXPECT_TRUE(WaitForEmptyStages(*cluster, &status)) << status.DebugString();

  // A job's own timeout: it ends FAILED with finish reason DEADLINE.
  v1::SubmitJobRequest submit;
  *submit.mutable_request() = req;
  submit.set_timeout_ms(20);
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(cluster->client().inference().SubmitJob(&ctx, submit, &job).ok());
  }
  v1::Job final_job;
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    v1::GetJobRequest g;
    g.set_job_id(job.id());
    ASSERT_TRUE(cluster->client().inference().GetJob(&ctx, g, &final_job).ok());
    if (final_job.state() != v1::JOB_STATE_RUNNING && final_job.state() != v1::JOB_STATE_QUEUED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(final_job.state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(final_job.finish_reason(), v1::FINISH_REASON_DEADLINE);
  EXPECT_TRUE(WaitForEmptyStages(*cluster, &status)) << status.DebugString();
}

TEST(ServingRecovery, ALostWorkerIsReplacedAndTheTokensStayTheSame) {
  SKIP_WITHOUT_ORACLE();
  std::string error;
  auto cluster = ServingCluster::Start(Model(), 2, {"--wire=fp32"}, &error);
  ASSERT_NE(cluster, nullptr) << error;
  const std::vector<int32_t> prompt = {288, 84, 257, 32, 113, 117, 105, 99, 107};
  auto before = cluster->client().Generate(GreedyRequest(prompt, 24));
  ASSERT_TRUE(before.status.ok()) << before.status;

  cluster->worker(1).Stop(SIGKILL);
  // The coordinator notices (broken link or missed heartbeats) and stops serving.
  bool down = false;
  for (int i = 0; i < 200 && !down; ++i) {
    auto serving = cluster->client().IsServing();
    down = serving.ok() && !*serving;
    if (!down) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(down) << cluster->Logs();
  auto during = cluster->client().Generate(GreedyRequest(prompt, 4));
  EXPECT_EQ(during.status.code(), absl::StatusCode::kUnavailable) << during.status;

  cluster->AddWorker();  // a replacement registers; the model is placed again
  ASSERT_TRUE(cluster->client().WaitServing(absl::Seconds(30)).ok()) << cluster->Logs();
  auto after = cluster->client().Generate(GreedyRequest(prompt, 24));
  ASSERT_TRUE(after.status.ok()) << after.status << cluster->Logs();
  EXPECT_EQ(after.tokens, before.tokens);
}

}  // namespace
}  // namespace bitnet::testing
