// The stage-to-stage transport: the one seam between the pipeline logic (the
// coordinator's scheduler, a worker's stage) and the network.
//
// Frames (bitnet.v1.StageFrame) flow one way along the pipeline:
//   coordinator -> stage 0 -> stage 1 -> ... -> last stage -> coordinator.
// Each process sends through a StageSender to the next hop, and receives by
// handing every arriving frame to its FrameSink. A transport guarantees
// in-order delivery per sender (a `free` after a batch is applied after it)
// and reports a broken link instead of losing frames silently.
//
// Implementations: gRPC bidirectional streams (grpc_stage_transport.h, the
// default: works across hosts and in Kubernetes). An MPI implementation maps
// a sender to MPI_Send towards a rank and a receive loop calling the sink;
// neither the engine nor the scheduler changes.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bitnet/v1/stage.pb.h"

namespace bitnet::serving {

// Sends frames, in order, to one peer.
class StageSender {
 public:
  virtual ~StageSender() = default;
  // Delivers `frame` after every frame sent before it; blocks while the peer
  // is slow (backpressure). An error means the link is broken for good.
  virtual absl::Status Send(const v1::StageFrame& frame) = 0;
  // Flushes and closes the link.
  virtual absl::Status Close() = 0;
};

// Consumes frames arriving at this process.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Called once per frame, in the sender's order (frames from different
  // senders may interleave). A non-OK status refuses the frame; the transport
  // reports it back to the sender, whose link then fails with it.
  virtual absl::Status Consume(v1::StageFrame& frame) = 0;
};

// Called at most once, from a transport thread, when a link breaks or the
// peer refuses a frame.
using LinkErrorCallback = std::function<void(const absl::Status&)>;

// Opens senders to peers named by address (host:port for gRPC, a rank for MPI).
class StageTransport {
 public:
  virtual ~StageTransport() = default;
  virtual absl::StatusOr<std::unique_ptr<StageSender>> Connect(const std::string& peer,
                                                               LinkErrorCallback on_error) = 0;
};

}  // namespace bitnet::serving
