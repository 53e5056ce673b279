// The coordinator's scheduler against a scripted fake pipeline (no network,
// no model): stop conditions, chunked prefill, one micro-batch per stage,
// frees travelling behind the last frame, the bounded queue, and re-prefill
// after the pipeline breaks. Also the stop-sequence matcher.
#include "coordinator/scheduler.h"

#include <deque>
#include <functional>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "model/gguf.h"
#include "tests/test_support.h"

namespace bitnet::coordinator {
namespace {

// Answers every frame from another thread, like a last stage: the k-th token
// sampled for a sequence is script(seq, k). Records every frame it saw.
class FakePipeline {
 public:
  using Script = std::function<TokenId(uint64_t seq, int k)>;
  FakePipeline(Scheduler* scheduler, Script script)
      : scheduler_(scheduler), script_(std::move(script)), thread_([this] { Run(); }) {}
  ~FakePipeline() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  Scheduler::SendFn Sender() {
    return [this](const v1::StageFrame& f) {
      absl::MutexLock lock(&mu_);
      pending_.push_back(f);
      seen_.push_back(f);
      return absl::OkStatus();
    };
  }
  std::vector<v1::StageFrame> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // Frames answered only while not held (to keep several in flight).
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  // Answers `n` more frames, then holds (a deterministic point to break at).
  void HoldAfter(int n) {
    absl::MutexLock lock(&mu_);
    budget_ = n;
  }
  int pending() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(pending_.size());
  }

 private:
  void Run() {
    while (true) {
      v1::StageFrame f;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || (!hold_ && budget_ != 0 && !pending_.empty());
        };
        mu_.Await(absl::Condition(&ready));
        if (stop_) return;
        f = std::move(pending_.front());
        pending_.pop_front();
        if (budget_ > 0) --budget_;
      }
      for (uint32_t r : f.sample_rows()) {
        const uint64_t seq = f.seq_ids(static_cast<int>(r));
        f.add_sampled(script_(seq, samples_[seq]++));
      }
      scheduler_->OnResult(std::move(f));
    }
  }
  Scheduler* scheduler_;
  Script script_;
  std::map<uint64_t, int> samples_;  // only the pipeline thread touches it
  absl::Mutex mu_;
  std::deque<v1::StageFrame> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::StageFrame> seen_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  int budget_ ABSL_GUARDED_BY(mu_) = -1;  // frames to answer before holding; -1: no limit
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_ORACLE();
    // The oracle model's byte-level tokenizer: ids 0-255 are the bytes.
    auto file = gguf::File::Open(testing::OracleDir() + "/tiny-gqa-tq2_0.gguf");
    ASSERT_TRUE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    ASSERT_TRUE(tok.ok());
    tokenizer_ = std::move(*tok);
  }

  static GenerationSpec Spec(std::vector<TokenId> prompt, int max_tokens) {
    GenerationSpec s;
    s.prompt = std::move(prompt);
    s.max_tokens = max_tokens;
    s.sampling.temperature = 0;
    return s;
  }

  static std::string Collect(Generation& g, v1::GenerateResponse* last) {
    Generation::Cursor cursor;
    std::string text;
    while (!cursor.final_sent) {
      v1::GenerateResponse chunk;
      if (g.Next(&cursor, &chunk, absl::Seconds(5))) {
        text += chunk.text();
        *last = chunk;
      } else {
        ADD_FAILURE() << "generation did not finish";
        break;
      }
    }
    return text;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(SchedulerTest, StopsAtMaxTokensEosAndStopSequences) {
  SchedulerOptions opt;
  Scheduler sched(opt, tokenizer_.get(), 512);
  // Sequence 1 spells "hello world!" forever; 2 says "ab" then EOS (289).
  const std::string hello = "hello world!";
  FakePipeline pipe(&sched, [&](uint64_t seq, int k) -> TokenId {
    if (seq == 2) return k < 2 ? 'a' + k : 289;
    return static_cast<unsigned char>(hello[static_cast<size_t>(k) % hello.size()]);
  });
  sched.AttachPipeline(1, 1, pipe.Sender());

  auto a = sched.Submit(Spec({288, 65}, 5));
  auto b = sched.Submit(Spec({288, 66}, 50));
  GenerationSpec stop_spec = Spec({288, 67}, 50);
  stop_spec.stop = {"wor"};
  auto c = sched.Submit(stop_spec);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  v1::GenerateResponse last;
  EXPECT_EQ(Collect(**a, &last), "hello");
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().completion_tokens(), 5);
  EXPECT_EQ(Collect(**b, &last), "ab");
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(last.usage().completion_tokens(), 3);  // the EOS id is reported, not its text
  EXPECT_EQ(Collect(**c, &last), "hello ");
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_STOP_SEQUENCE);
}

TEST_F(SchedulerTest, StopsWhenTheContextIsFull) {
  Scheduler sched(SchedulerOptions(), tokenizer_.get(), /*n_ctx=*/8);
  FakePipeline pipe(&sched, [](uint64_t, int) { return TokenId{'x'}; });
  sched.AttachPipeline(1, 1, pipe.Sender());
  auto g = sched.Submit(Spec({288, 1, 2}, 100));
  ASSERT_TRUE(g.ok());
  v1::GenerateResponse last;
  Collect(**g, &last);
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_CONTEXT);
  // Positions 0..7 were fed; the token sampled at position 7 is the last one.
  EXPECT_EQ(last.usage().completion_tokens(), 8 - 3 + 1);
  for (const auto& f : pipe.seen()) {
    for (int32_t p : f.positions()) EXPECT_LT(p, 8);
  }
}

TEST_F(SchedulerTest, PrefillIsChunkedAndSamplesOnlyAtTheEnd) {
  SchedulerOptions opt;
  opt.prefill_chunk = 4;
  Scheduler sched(opt, tokenizer_.get(), 512);
  FakePipeline pipe(&sched, [](uint64_t, int) { return TokenId{'z'}; });
  sched.AttachPipeline(7, 1, pipe.Sender());
  std::vector<TokenId> prompt;
  for (int i = 0; i < 10; ++i) prompt.push_back(100 + i);
  auto g = sched.Submit(Spec(prompt, 2));
  ASSERT_TRUE(g.ok());
  v1::GenerateResponse last;
  Collect(**g, &last);
  std::vector<v1::StageFrame> frames;
  for (const auto& f : pipe.seen()) {
    if (f.batch_id() != 0) frames.push_back(f);
  }
  // 10 prompt rows in chunks of 4, 4, 2 (the last samples), then 1 decode row.
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].seq_ids_size(), 4);
  EXPECT_EQ(frames[1].seq_ids_size(), 4);
  EXPECT_EQ(frames[2].seq_ids_size(), 2);
  EXPECT_EQ(frames[3].seq_ids_size(), 1);
  EXPECT_EQ(frames[0].sample_rows_size(), 0);
  EXPECT_EQ(frames[1].sample_rows_size(), 0);
  ASSERT_EQ(frames[2].sample_rows_size(), 1);
  EXPECT_EQ(frames[2].sample_rows(0), 1u);
  EXPECT_EQ(frames[0].starts_size(), 1);  // sampling params travel with the first frame
  EXPECT_EQ(frames[1].starts_size(), 0);
  int32_t pos = 0;
  for (const auto& f : frames) {
    EXPECT_EQ(f.epoch(), 7u);
    for (int i = 0; i < f.positions_size(); ++i) EXPECT_EQ(f.positions(i), pos++);
  }
  EXPECT_EQ(frames[3].tokens(0), 'z');
  // Once finished, its cache is freed on every stage.
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    for (const auto& f : pipe.seen()) {
      for (uint64_t s : f.free()) freed |= s == (*g)->id();
    }
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(freed);
}

TEST_F(SchedulerTest, OneMicroBatchPerStage) {
  Scheduler sched(SchedulerOptions(), tokenizer_.get(), 512);
  FakePipeline pipe(&sched, [](uint64_t, int) { return TokenId{'q'}; });
  pipe.Hold(true);
  sched.AttachPipeline(1, 2, pipe.Sender());
  // Two streams on two stages: two micro-batches of one sequence each.
  auto a = sched.Submit(Spec({288, 1}, 3));
  auto b = sched.Submit(Spec({288, 2}, 3));
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 200 && pipe.pending() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(pipe.pending(), 2);
  EXPECT_EQ(sched.stats().inflight_batches, 2);
  pipe.Hold(false);
  v1::GenerateResponse last;
  Collect(**a, &last);
  Collect(**b, &last);
  for (const auto& f : pipe.seen()) {
    if (f.batch_id() == 0) continue;
    std::set<uint64_t> seqs(f.seq_ids().begin(), f.seq_ids().end());
    EXPECT_EQ(seqs.size(), 1u) << f.DebugString();
  }
}

TEST_F(SchedulerTest, OnOneStageALateStreamWaitsAndJoinsTheBatch) {
  Scheduler sched(SchedulerOptions(), tokenizer_.get(), 512);
  FakePipeline pipe(&sched, [](uint64_t, int) { return TokenId{'q'}; });
  pipe.Hold(true);
  sched.AttachPipeline(1, 1, pipe.Sender());
  auto a = sched.Submit(Spec({288, 1}, 4));
  ASSERT_TRUE(a.ok());
  for (int i = 0; i < 200 && pipe.pending() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The only stage is busy with a's batch: b must not go as a batch of one.
  auto b = sched.Submit(Spec({288, 2}, 4));
  ASSERT_TRUE(b.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pipe.pending(), 1);
  EXPECT_EQ(sched.stats().inflight_batches, 1);
  pipe.Hold(false);
  v1::GenerateResponse last;
  Collect(**a, &last);
  Collect(**b, &last);
  const auto frames = pipe.seen();
  ASSERT_GE(frames.size(), 2u);
  // From the second frame on, a and b travel together until a finishes.
  std::set<uint64_t> second(frames[1].seq_ids().begin(), frames[1].seq_ids().end());
  EXPECT_EQ(second.size(), 2u) << frames[1].DebugString();
}

TEST_F(SchedulerTest, FullQueueAndNoPipelineAreRefused) {
  SchedulerOptions opt;
  opt.max_active = 1;
  opt.max_queue = 1;
  Scheduler sched(opt, tokenizer_.get(), 512);
  auto refused = sched.Submit(Spec({288}, 4));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  FakePipeline pipe(&sched, [](uint64_t, int) { return TokenId{'q'}; });
  pipe.Hold(true);
  sched.AttachPipeline(1, 1, pipe.Sender());
  auto a = sched.Submit(Spec({288}, 4));
  ASSERT_TRUE(a.ok());
  for (int i = 0; i < 200 && sched.stats().active < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto b = sched.Submit(Spec({288}, 4));  // waits
  ASSERT_TRUE(b.ok());
  auto c = sched.Submit(Spec({288}, 4));  // no room
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  (*a)->RequestCancel();
  (*b)->RequestCancel();
  sched.Wake();
  EXPECT_TRUE((*a)->WaitFinished(absl::Seconds(5)));
  EXPECT_TRUE((*b)->WaitFinished(absl::Seconds(5)));
  EXPECT_EQ((*b)->state(), v1::JOB_STATE_CANCELLED);
  pipe.Hold(false);
}

TEST_F(SchedulerTest, ABrokenPipelinePrefillsRunningSequencesAgain) {
  Scheduler sched(SchedulerOptions(), tokenizer_.get(), 512);
  auto pipe = std::make_unique<FakePipeline>(&sched, [](uint64_t, int k) { return 'a' + k; });
  // Three frames answered (three tokens), then the fourth stays out: without
  // the limit the fake pipeline could finish all six before the break.
  pipe->HoldAfter(3);
  sched.AttachPipeline(1, 1, pipe->Sender());
  auto g = sched.Submit(Spec({288, 10}, 6));
  ASSERT_TRUE(g.ok());
  // Let it produce a few tokens, then break the pipeline while one frame is out.
  Generation::Cursor cursor;
  v1::GenerateResponse chunk;
  int got = 0;
  while (got < 3 && (*g)->Next(&cursor, &chunk, absl::Seconds(5))) {
    got += chunk.token_ids_size();
    chunk.Clear();  // Next appends
  }
  for (int i = 0; i < 200 && pipe->pending() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  sched.DetachPipeline(absl::UnavailableError("test"));
  pipe.reset();  // the old pipeline's answers never come
  // The new placement: everything so far is fed again from position 0.
  const int tokens_so_far = static_cast<int>(cursor.tokens);
  ASSERT_EQ(tokens_so_far, 3);
  FakePipeline fresh(&sched, [&](uint64_t, int k) { return 'a' + tokens_so_far + k; });
  sched.AttachPipeline(2, 1, fresh.Sender());
  v1::GenerateResponse last;
  std::string rest;
  while (!cursor.final_sent && (*g)->Next(&cursor, &last, absl::Seconds(5))) {
    rest += last.text();
  }
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().completion_tokens(), 6);
  const auto frames = fresh.seen();
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames[0].epoch(), 2u);
  EXPECT_EQ(frames[0].positions(0), 0);
  // Prompt (2) + the tokens generated before the break, in one prefill.
  EXPECT_EQ(frames[0].seq_ids_size(), 2 + tokens_so_far);
  EXPECT_EQ(frames[0].tokens(2), 'a');
  EXPECT_EQ(frames[0].starts_size(), 1);
}

TEST(StopMatcher, HoldsBackPossibleStartsAndCutsAtTheStop) {
  StopMatcher m({"END", "xyz"});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Push("E"), "");      // could be the start of END
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_EQ(m.Push("x"), "EN");    // ENx cannot become END; x could start xyz
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("yz tail"), "");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");

  StopMatcher none({});
  EXPECT_EQ(none.Push("anything"), "anything");
  StopMatcher held({"stop"});
  EXPECT_EQ(held.Push("to st"), "to ");
  EXPECT_EQ(held.Flush(), "st");  // the end came before the stop did
}

}  // namespace
}  // namespace bitnet::coordinator
