// gRPC plumbing shared by the coordinator, the workers and the clients:
// status conversion, channel and server settings, health status.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace bitnet::serving {

// absl and gRPC use the same canonical codes.
grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s);

// Frames of a long prefill chunk of a wide model exceed gRPC's 4 MiB default.
inline constexpr int kMaxMessageBytes = 1 << 30;

// A channel to `address` with large messages allowed and keepalive pings, so
// a dead peer is noticed within seconds even on an idle stream.
// Reconnects are retried from 100 ms, backing off to at most 2 s.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

// How long a first call waits for its connection before it is refused.
inline constexpr absl::Duration kConnectTimeout = absl::Seconds(5);

// Waits until `channel` (to `address`) is connected: up to `timeout`, or
// half a second once the peer has refused; else UNAVAILABLE naming the
// address. Our calls are fail-fast, so a call made while a connection attempt
// fails is refused at once. gRPC 1.51 (Debian 12) fails about one healthy
// localhost connect() in a few hundred with a clobbered errno ("connect: No
// such file or directory", grpc/grpc#35064); waiting here rides through the
// retry instead of failing a generation or breaking a pipeline.
// `cancelled`, if given, is polled every 50 ms and ends the wait (CANCELLED).
absl::Status WaitForConnection(grpc::Channel& channel, const std::string& address,
                               absl::Duration timeout = kConnectTimeout,
                               const std::function<bool()>& cancelled = {});

// Message limits, keepalive policy, and the standard services every server
// here exposes: grpc.health.v1 and server reflection. Call before
// BuildAndStart.
void PrepareServerBuilder(grpc::ServerBuilder* builder);

// Sets the grpc.health.v1 status of the whole server ("") and of `services`.
void SetHealth(grpc::Server* server, bool serving, const std::vector<std::string>& services);

// Builds and starts a server listening on `address` (host:port; port 0
// picks a free one). Returns the server and writes the bound port.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    const std::string& address, const std::vector<grpc::Service*>& services, int* bound_port);

// Writes `port` to `path` atomically (temp file + rename), so a script or
// test polling for the file never reads half of it.
absl::Status WritePortFile(const std::string& path, int port);

// "host:port" -> host (for turning a listen address into an advertised one).
std::string HostOf(const std::string& address);

}  // namespace bitnet::serving
