// Placement: contiguous ranges covering every layer, proportional to speed,
// within each worker's memory, and a clear error when the model cannot fit.
#include "serving/placement.h"

#include "gtest/gtest.h"
#include "model/model_config.h"
#include "tests/test_support.h"

namespace bitnet::serving {
namespace {

ModelFootprint Uniform(int layers, uint64_t layer_bytes, uint64_t head_bytes = 0) {
  ModelFootprint fp;
  fp.layer_bytes.assign(static_cast<size_t>(layers), layer_bytes);
  fp.head_bytes = head_bytes;
  fp.embedding_bytes = 0;
  return fp;
}

void ExpectCovers(const std::vector<StagePlan>& plan, int layers) {
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan.front().layer_begin, 0);
  EXPECT_EQ(plan.back().layer_end, layers);
  for (size_t i = 0; i < plan.size(); ++i) {
    EXPECT_LT(plan[i].layer_begin, plan[i].layer_end);
    if (i > 0) {
      EXPECT_EQ(plan[i].layer_begin, plan[i - 1].layer_end);
      EXPECT_GT(plan[i].worker, plan[i - 1].worker);  // worker order is kept
    }
  }
}

TEST(Placement, EqualWorkersGetEqualShares) {
  auto plan = PlanPlacement(Uniform(30, 100), {{"a", 0, 1e9}, {"b", 0, 1e9}, {"c", 0, 1e9}}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 30);
  ASSERT_EQ(plan->size(), 3u);
  for (const StagePlan& s : *plan) EXPECT_EQ(s.layer_end - s.layer_begin, 10);
}

TEST(Placement, ProportionalToBandwidth) {
  auto plan = PlanPlacement(Uniform(30, 100), {{"fast", 0, 2e9}, {"slow", 0, 1e9}}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 30);
  ASSERT_EQ(plan->size(), 2u);
  EXPECT_EQ((*plan)[0].layer_end, 20);
}

TEST(Placement, LastStageCarriesTheHead) {
  // The lm_head costs as much as 4 layers: the last stage gets fewer layers.
  auto plan = PlanPlacement(Uniform(12, 100, 400), {{"a", 0, 1e9}, {"b", 0, 1e9}}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 12);
  EXPECT_EQ((*plan)[0].layer_end, 8);
}

TEST(Placement, RespectsMemory) {
  // Each worker fits 10 layers; a fast first worker cannot take more.
  auto plan = PlanPlacement(Uniform(20, 100),
                            {{"fast", 1000, 10e9}, {"slow", 1000, 1e9}}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 20);
  for (const StagePlan& s : *plan) EXPECT_LE(s.memory_bytes, 1000u);
}

TEST(Placement, KvReserveCountsAgainstMemory) {
  ModelFootprint fp = Uniform(10, 100);
  fp.kv_bytes_per_token_layer = 1;
  PlacementOptions opt;
  opt.kv_reserve_tokens = 100;  // doubles every layer's need
  EXPECT_FALSE(PlanPlacement(fp, {{"a", 1500, 1e9}}, opt).ok());
  EXPECT_TRUE(PlanPlacement(fp, {{"a", 2000, 1e9}}, opt).ok());
}

TEST(Placement, TooLargeIsAClearError) {
  auto plan = PlanPlacement(Uniform(10, 1000), {{"a", 2000, 1e9}, {"b", 2000, 1e9}}, {});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(plan.status().message().find("does not fit"), absl::string_view::npos);
}

TEST(Placement, MoreWorkersThanLayersLeavesStandbys) {
  auto plan = PlanPlacement(Uniform(2, 100), {{"a", 0, 1e9}, {"b", 0, 1e9}, {"c", 0, 1e9}}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 2);
  EXPECT_EQ(plan->size(), 2u);
}

TEST(Placement, MaxStagesLimitsTheSplit) {
  PlacementOptions opt;
  opt.max_stages = 2;
  auto plan = PlanPlacement(Uniform(9, 100), {{"a", 0, 1e9}, {"b", 0, 1e9}, {"c", 0, 1e9}}, opt);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ExpectCovers(*plan, 9);
  EXPECT_EQ(plan->size(), 2u);
}

TEST(Placement, NoWorkersOrLayers) {
  EXPECT_FALSE(PlanPlacement(Uniform(4, 1), {}, {}).ok());
  EXPECT_FALSE(PlanPlacement(Uniform(0, 1), {{"a", 0, 1}}, {}).ok());
}

TEST(Placement, FootprintOfTheOracleModel) {
  SKIP_WITHOUT_ORACLE();
  auto file = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto config = ConfigFromGguf(**file);
  ASSERT_TRUE(config.ok()) << config.status();
  auto fp = FootprintFromGguf(**file, *config, KvType::kF16);
  ASSERT_TRUE(fp.ok()) << fp.status();
  ASSERT_EQ(fp->layer_bytes.size(), 4u);
  EXPECT_EQ(fp->embedding_bytes, 290u * 256u * 4u);
  EXPECT_TRUE(fp->head_shares_embedding);
  EXPECT_EQ(fp->head_bytes, 290u * 256u * 4u + 256u * 4u);
  EXPECT_EQ(fp->kv_bytes_per_token_layer, 2u * 128u * 2u);
  // Ternary layers at 2 bits: q,k,v,o,gate,up,down hold 256*(256+128+128+256) +
  // 3*256*768 = 786432 weights; scales and norms add a few percent.
  for (uint64_t b : fp->layer_bytes) {
    EXPECT_GE(b, 786432u / 4);
    EXPECT_LT(b, 786432u / 4 * 115 / 100);
  }
}

}  // namespace
}  // namespace bitnet::serving
