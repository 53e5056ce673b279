// serving::WaitForConnection over real sockets on 127.0.0.1: a live server
// is reached, a closed port is refused soon (not after the whole timeout),
// the wait can be cancelled, and a client's call to a dead address fails
// with an error naming it.
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "serving/grpc_util.h"
#include "serving/inference_client.h"

namespace bitnet::serving {
namespace {

// A port that nothing listens on: bound by a server that is then shut down.
int ClosedPort() {
  int port = 0;
  auto server = StartServer("127.0.0.1:0", {}, &port);
  EXPECT_TRUE(server.ok()) << server.status();
  (*server)->Shutdown();
  return port;
}

TEST(WaitForConnection, ReachesALiveServer) {
  int port = 0;
  auto server = StartServer("127.0.0.1:0", {}, &port);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto channel = MakeChannel(address);
  EXPECT_TRUE(WaitForConnection(*channel, address).ok());
  (*server)->Shutdown();
}

TEST(WaitForConnection, AClosedPortIsRefusedLongBeforeTheTimeout) {
  const std::string address = absl::StrCat("127.0.0.1:", ClosedPort());
  auto channel = MakeChannel(address);
  const absl::Time start = absl::Now();
  const absl::Status s = WaitForConnection(*channel, address, absl::Minutes(5));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find(address), std::string::npos) << s;
  // Refused means down: the caller hears it within the retry window, not
  // after the 5 minutes (the bound is loose for a loaded machine).
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
}

TEST(WaitForConnection, CancellingEndsTheWait) {
  const std::string address = absl::StrCat("127.0.0.1:", ClosedPort());
  auto channel = MakeChannel(address);
  int polls = 0;
  const absl::Status s =
      WaitForConnection(*channel, address, absl::Minutes(5), [&] { return ++polls >= 1; });
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_EQ(polls, 1);
}

TEST(InferenceClient, GeneratingAgainstADeadAddressNamesIt) {
  const std::string address = absl::StrCat("127.0.0.1:", ClosedPort());
  InferenceClient client(address);
  v1::GenerateRequest req;
  req.set_prompt("hello");
  const GenerateResult result = client.Generate(req);
  EXPECT_TRUE(absl::IsUnavailable(result.status)) << result.status;
  EXPECT_NE(result.status.message().find(address), std::string::npos) << result.status;
  EXPECT_TRUE(result.tokens.empty());
}

}  // namespace
}  // namespace bitnet::serving
