// Helpers for the serving tests: real bitnet-coordinator / bitnet-worker /
// bitnet-serve processes on 127.0.0.1 with ports picked by the kernel, their
// logs in a temp dir (printed when a test fails), stopped on destruction.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "serving/inference_client.h"
#include "tests/test_support.h"

extern char** environ;

namespace bitnet::testing {

class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path)
      : log_path_(log_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~ChildProcess() { Stop(); }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // True if it has exited (reaps it).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return false;
  }

  // Sends `sig`, waits up to 5 s, then SIGKILL.
  void Stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    for (int i = 0; i < 100; ++i) {
      if (Exited()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for a port file written by --port_file; 0 on timeout.
inline int WaitForPortFile(const std::string& path, ChildProcess& owner,
                           std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    const std::string text = ReadText(path);
    if (!text.empty()) return std::atoi(text.c_str());
    if (owner.Exited()) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// A coordinator and its workers as separate processes.
class ServingCluster {
 public:
  // Starts `bitnet-coordinator --model model --workers n` (plus `flags`) and n
  // `bitnet-worker`s, and waits until the coordinator reports SERVING.
  // Workers advertise equal speed so the placement is deterministic.
  static std::unique_ptr<ServingCluster> Start(const std::string& model, int n_workers,
                                               const std::vector<std::string>& flags,
                                               std::string* error) {
    auto c = std::unique_ptr<ServingCluster>(new ServingCluster());
    const std::string port_file = c->dir_.File("port");
    std::vector<std::string> argv = {BinDir() + "/bitnet-coordinator",
                                     "--model=" + model,
                                     "--listen=127.0.0.1:0",
                                     "--port_file=" + port_file,
                                     absl::StrCat("--workers=", n_workers),
                                     "--heartbeat_timeout_ms=4000"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    c->coordinator_ = std::make_unique<ChildProcess>(argv, c->dir_.File("coordinator.log"));
    const int port = WaitForPortFile(port_file, *c->coordinator_);
    if (port == 0) {
      *error = "the coordinator did not start:\n" + c->Logs();
      return nullptr;
    }
    c->address_ = absl::StrCat("127.0.0.1:", port);
    for (int i = 0; i < n_workers; ++i) c->AddWorker();
    c->client_ = std::make_unique<serving::InferenceClient>(c->address_);
    absl::Status s = c->client_->WaitServing(absl::Seconds(60));
    if (!s.ok()) {
      *error = absl::StrCat(s.ToString(), "\n", c->Logs());
      return nullptr;
    }
    return c;
  }

  void AddWorker() {
    const size_t i = workers_.size();
    workers_.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{BinDir() + "/bitnet-worker", "--coordinator=" + address_,
                                 "--listen=127.0.0.1:0", absl::StrCat("--name=w", i),
                                 "--bandwidth_gbps=10", "--memory=4G"},
        dir_.File(absl::StrCat("worker", i, ".log"))));
  }

  const std::string& address() const { return address_; }
  serving::InferenceClient& client() { return *client_; }
  ChildProcess& worker(size_t i) { return *workers_[i]; }

  v1::ClusterStatus Status() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetClusterStatusRequest req;
    req.set_fetch_stage_stats(true);
    v1::ClusterStatus status;
    client_->cluster().GetClusterStatus(&ctx, req, &status);
    return status;
  }

  // Every log, for a failure message.
  std::string Logs() const {
    std::string out = "--- coordinator.log\n" + ReadText(coordinator_->log_path());
    for (const auto& w : workers_) {
      out += "--- " + w->log_path() + "\n" + ReadText(w->log_path());
    }
    return out;
  }

  ~ServingCluster() {
    for (auto& w : workers_) w->Stop();
    if (coordinator_) coordinator_->Stop();
  }

 private:
  ServingCluster() = default;
  TempDir dir_;
  std::string address_;
  std::unique_ptr<ChildProcess> coordinator_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  std::unique_ptr<serving::InferenceClient> client_;
};

inline v1::GenerateRequest GreedyRequest(const std::vector<int32_t>& prompt, int max_tokens) {
  v1::GenerateRequest req;
  for (int32_t t : prompt) req.mutable_prompt_tokens()->add_ids(t);
  req.mutable_sampling()->set_temperature(0);
  req.set_max_tokens(max_tokens);
  return req;
}

}  // namespace bitnet::testing
