// The broker as fbview's HTTP side sees it: which streams exist (for /api/streams and for
// refusing an unknown stream before a WebSocket opens). One connection, reopened when lost;
// callable from any thread.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "framebroker/client.hpp"

namespace framebroker::fbview {

class StreamDirectory {
 public:
  // allowed: the streams fbview offers (empty: all the broker has).
  StreamDirectory(ConnectOptions connect, std::vector<std::string> allowed);

  // {"broker": {"connected", "socket", "error"}, "streams": [{name, width, height, pixel_type,
  // fps, running}]}
  nlohmann::json streams_json();
  // Empty when `name` may be viewed (or the broker cannot be asked now); else why not.
  std::string refuse(const std::string& name);
  // The first stream offered, if any.
  std::optional<std::string> first_stream();
  bool allowed(const std::string& name) const;
  const ConnectOptions& connect_options() const { return connect_; }

 private:
  std::optional<Status> status(std::string& error, std::string* socket_path = nullptr);

  ConnectOptions connect_;
  std::vector<std::string> allowed_;
  std::mutex mu_;
  std::optional<Client> client_;
};

}  // namespace framebroker::fbview
