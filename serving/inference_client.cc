#include "serving/inference_client.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "serving/grpc_util.h"

namespace bitnet::serving {

InferenceClient::InferenceClient(const std::string& address)
    : address_(address),
      channel_(MakeChannel(address)),
      inference_(v1::Inference::NewStub(channel_)),
      cluster_(v1::Cluster::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

absl::Status InferenceClient::Connect(absl::Duration timeout) {
  return WaitForConnection(*channel_, address_, timeout);
}

GenerateResult InferenceClient::Generate(
    const v1::GenerateRequest& request,
    const std::function<void(const v1::GenerateResponse&)>& on_chunk, absl::Duration timeout) {
  GenerateResult result;
  result.status = Connect(std::min(timeout, kConnectTimeout));
  if (!result.status.ok()) return result;
  grpc::ClientContext ctx;
  if (timeout != absl::InfiniteDuration()) {
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  }
  const auto start = std::chrono::steady_clock::now();
  auto reader = inference_->Generate(&ctx, request);
  v1::GenerateResponse chunk;
  while (reader->Read(&chunk)) {
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count();
    for (int32_t t : chunk.token_ids()) {
      result.tokens.push_back(t);
      result.token_arrival_ms.push_back(ms);
    }
    result.text += chunk.text();
    if (on_chunk) on_chunk(chunk);
    result.last = chunk;
  }
  result.status = FromGrpcStatus(reader->Finish());
  return result;
}

absl::StatusOr<bool> InferenceClient::IsServing(const std::string& service) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health_->Check(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

absl::Status InferenceClient::WaitServing(absl::Duration timeout, const std::string& service) {
  const absl::Time end = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("not SERVING yet");
  while (absl::Now() < end) {
    auto serving = IsServing(service);
    if (serving.ok() && *serving) return absl::OkStatus();
    if (!serving.ok()) last = serving.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      address_, " did not become SERVING within ", absl::FormatDuration(timeout), " (",
      last.message(), ")"));
}

}  // namespace bitnet::serving
