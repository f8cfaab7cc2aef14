// Real processes for integration tests: a framebrokerd in its own runtime
// directory and instance, client processes, and a raw protocol socket for
// feeding the broker bad input.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "framebroker/client.hpp"
#include "framebroker/internal/wire.hpp"

namespace fbtest {

using namespace std::chrono_literals;

// A child process with stdout and stderr captured in files.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_prefix,
          const std::vector<std::string>& extra_env = {});
  ~Process();  // SIGKILLs a child that is still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig);
  // Waits for exit; the raw wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_, err_path_;
};

struct Result {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out, err;
};

// Runs a command to completion (killed after `timeout`).
Result run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s);

// A broker of its own: unique instance, temporary runtime directory.
class Broker {
 public:
  explicit Broker(std::vector<std::string> extra_args = {});
  ~Broker();

  const std::string& socket() const { return socket_; }
  const std::string& instance() const { return instance_; }
  const std::string& runtime_dir() const { return dir_; }
  Process& process() { return *proc_; }

  // Starts another framebrokerd on the same instance and runtime dir.
  std::unique_ptr<Process> start_another(const std::vector<std::string>& extra_args = {});
  // (Re)starts this broker and waits for its socket.
  void start(const std::vector<std::string>& extra_args);

  // fbctl with --socket added.
  Result fbctl(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s);
  std::unique_ptr<Process> fbctl_async(std::vector<std::string> args);
  nlohmann::json status();
  // Polls status until pred holds (true) or timeout (false).
  template <typename Pred>
  bool wait_status(Pred pred, std::chrono::milliseconds timeout = 10s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    do {
      auto s = status();
      if (pred(s)) return true;
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < end);
    return false;
  }
  std::vector<std::string> segments() const;  // this instance's names in /dev/shm

 private:
  std::string dir_, instance_, socket_;
  std::unique_ptr<Process> proc_;
};

// Waits for an `fbctl watch --json` process (it must exit 0) and returns its summary.
nlohmann::json watch_summary(Process& p);
// A `watch --verify-counter` summary of exactly `frames` frames: no gap, no wrong pixel.
void expect_lossless(const nlohmann::json& summary, int frames);

// The subscriber entries of `status` on `stream`, optionally for one pid.
std::vector<nlohmann::json> subscribers(const nlohmann::json& status, pid_t pid = 0);
const nlohmann::json& stream_of(const nlohmann::json& status, const std::string& name);
// free + writing + ready == slots for every stream.
bool slot_invariant_holds(const nlohmann::json& status);
// A client of the test's broker.
framebroker::Client connect_to(const Broker& b);
// Runs `attack` while a lossless subscriber (fbctl watch) takes 400 frames of stream "cam": it
// must lose none, the broker must still run and no slot may be unaccounted for.
void others_lose_nothing(Broker& b, const std::function<void()>& attack);
// Broker arguments for one idle sim camera "cam", 32x16 Mono16, counter pattern.
std::vector<std::string> idle_counter_camera(int fps = 1000, int slots = 64);
// Waits until some subscriber holds `frames` frames (a stuck holder has filled its max_hold).
bool wait_held(Broker& b, int frames);
// Waits until `stream`'s sequence has started and finished.
bool wait_sequence_over(Broker& b, const std::string& stream,
                        std::chrono::milliseconds timeout = 20s);

// A protocol-level connection, for bad input the client library never sends.
class RawClient {
 public:
  explicit RawClient(const std::string& socket_path);
  ~RawClient();
  void send_bytes(const void* data, size_t n);
  void send(const flatbuffers::FlatBufferBuilder& fbb) {
    send_bytes(fbb.GetBufferPointer(), fbb.GetSize());
  }
  void hello(uint32_t version = framebroker::wire::kProtocolVersion, bool release_lanes = false);
  // The last fd the broker passed (SCM_RIGHTS), now the caller's; -1 when none came.
  int take_passed_fd() { return std::exchange(passed_fd_, -1); }
  // Next message, or nullopt on timeout or EOF (see closed()).
  std::optional<framebroker::wire::Received> receive(std::chrono::milliseconds timeout = 5s);
  // Next message of a type, skipping Deliver messages.
  std::optional<framebroker::wire::Received> receive_reply(std::chrono::milliseconds timeout = 5s);
  bool closed() const { return closed_; }
  // True when the broker closes the connection within `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout = 5s);

 private:
  int fd_ = -1;
  int passed_fd_ = -1;
  bool closed_ = false;
  framebroker::wire::FrameReader reader_;
};

}  // namespace fbtest
