// The gRPC implementation of the stage transport: every hop is one
// long-lived StageService.Stream call. Frames go forward on the request side;
// the response side carries acknowledgements only when a frame is refused.
#pragma once

#include <memory>
#include <string>

#include "bitnet/v1/stage.grpc.pb.h"
#include "serving/stage_transport.h"

namespace bitnet::serving {

// Server side: hands every frame of every incoming stream to `sink`.
class GrpcStageService final : public v1::StageService::Service {
 public:
  explicit GrpcStageService(FrameSink* sink) : sink_(sink) {}
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<v1::StageAck, v1::StageFrame>* stream) override;

 private:
  FrameSink* sink_;
};

// Client side: opens streams to host:port peers.
class GrpcStageTransport final : public StageTransport {
 public:
  absl::StatusOr<std::unique_ptr<StageSender>> Connect(const std::string& peer,
                                                       LinkErrorCallback on_error) override;
};

}  // namespace bitnet::serving
