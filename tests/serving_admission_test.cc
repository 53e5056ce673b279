// Admission control on a real cluster: a full queue gives
// RESOURCE_EXHAUSTED, and a passed deadline stops the generation and frees
// its KV cache on every stage.
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

}  // namespace
}  // namespace bitnet::testing
