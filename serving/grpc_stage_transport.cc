#include "serving/grpc_stage_transport.h"

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "serving/grpc_util.h"

namespace bitnet::serving {

grpc::Status GrpcStageService::Stream(
    grpc::ServerContext* context, grpc::ServerReaderWriter<v1::StageAck, v1::StageFrame>* stream) {
  v1::StageFrame frame;
  while (stream->Read(&frame)) {
    absl::Status s = sink_->Consume(frame);
    if (!s.ok()) {
      v1::StageAck ack;
      ack.set_batch_id(frame.batch_id());
      ack.mutable_error()->set_code(static_cast<int>(s.code()));
      ack.mutable_error()->set_message(std::string(s.message()));
      // The sender learns why; the stream stays open (later frames, e.g. of a
      // new epoch, may be accepted).
      if (!stream->Write(ack)) break;
    }
  }
  return grpc::Status::OK;
}

namespace {

class GrpcStageSender final : public StageSender {
 public:
  GrpcStageSender(std::string peer, LinkErrorCallback on_error)
      : peer_(std::move(peer)), on_error_(std::move(on_error)) {}

  ~GrpcStageSender() override {
    {
      absl::MutexLock lock(&mu_);
      reported_ = true;  // the owner is going away: no callbacks any more
    }
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  absl::Status Open() {
    channel_ = MakeChannel(peer_);
    if (auto s = WaitForConnection(*channel_, peer_); !s.ok()) return s;
    stub_ = v1::StageService::NewStub(channel_);
    stream_ = stub_->Stream(&context_);
    if (stream_ == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot open a stage stream to ", peer_));
    }
    reader_ = std::thread([this] { ReadAcks(); });
    return absl::OkStatus();
  }

  absl::Status Send(const v1::StageFrame& frame) override {
    // Writes are serialized by write_mu_; state lives under mu_ so the ack
    // reader never waits behind a write blocked on flow control.
    absl::MutexLock write_lock(&write_mu_);
    {
      absl::MutexLock lock(&mu_);
      if (!broken_.ok()) return broken_;
      if (closed_) return absl::FailedPreconditionError("stage link already closed");
    }
    if (!stream_->Write(frame)) {
      // The reader thread learns the real reason from Finish().
      absl::MutexLock lock(&mu_);
      if (broken_.ok()) {
        broken_ = absl::UnavailableError(absl::StrCat("stage link to ", peer_, " is broken"));
      }
      return broken_;
    }
    return absl::OkStatus();
  }

  absl::Status Close() override {
    {
      absl::MutexLock write_lock(&write_mu_);
      absl::MutexLock lock(&mu_);
      if (!closed_ && broken_.ok()) stream_->WritesDone();
      closed_ = true;
    }
    if (reader_.joinable()) reader_.join();
    absl::MutexLock lock(&mu_);
    return broken_;
  }

 private:
  void ReadAcks() {
    v1::StageAck ack;
    absl::Status error;
    while (stream_->Read(&ack)) {
      if (ack.has_error() && error.ok()) {
        error = absl::Status(static_cast<absl::StatusCode>(ack.error().code()),
                             absl::StrCat(peer_, " refused frame ", ack.batch_id(), ": ",
                                          ack.error().message()));
        Fail(error);
      }
    }
    const grpc::Status finish = stream_->Finish();
    bool expected_close;
    {
      absl::MutexLock lock(&mu_);
      expected_close = closed_;
    }
    if (!finish.ok()) {
      Fail(absl::Status(static_cast<absl::StatusCode>(finish.error_code()),
                        absl::StrCat("stage link to ", peer_, ": ", finish.error_message())));
    } else if (!expected_close) {
      Fail(absl::UnavailableError(absl::StrCat("stage link to ", peer_, " closed by the peer")));
    }
  }

  void Fail(const absl::Status& s) {
    LinkErrorCallback cb;
    {
      absl::MutexLock lock(&mu_);
      if (broken_.ok()) broken_ = s;
      if (reported_) return;
      reported_ = true;
      cb = on_error_;
    }
    if (cb) cb(s);
  }

  const std::string peer_;
  LinkErrorCallback on_error_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StageService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StageFrame, v1::StageAck>> stream_;
  std::thread reader_;

  absl::Mutex write_mu_;
  absl::Mutex mu_;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool reported_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StageSender>> GrpcStageTransport::Connect(
    const std::string& peer, LinkErrorCallback on_error) {
  auto sender = std::make_unique<GrpcStageSender>(peer, std::move(on_error));
  if (auto s = sender->Open(); !s.ok()) return s;
  return sender;
}

}  // namespace bitnet::serving
