#include "fbview/stream_directory.hpp"

#include <algorithm>

namespace framebroker::fbview {

StreamDirectory::StreamDirectory(ConnectOptions connect, std::vector<std::string> allowed)
    : connect_(std::move(connect)), allowed_(std::move(allowed)) {}

bool StreamDirectory::allowed(const std::string& name) const {
  return allowed_.empty() || std::find(allowed_.begin(), allowed_.end(), name) != allowed_.end();
}

std::optional<Status> StreamDirectory::status(std::string& error, std::string* socket_path) {
  std::lock_guard lock(mu_);
  for (int attempt = 0; attempt < 2; ++attempt) {  // a stale connection gets one retry
    try {
      if (!client_) client_.emplace(Client::connect(connect_));
      if (socket_path) *socket_path = client_->socket_path();
      return client_->status();
    } catch (const std::exception& e) {
      client_.reset();
      error = e.what();
    }
  }
  return std::nullopt;
}

nlohmann::json StreamDirectory::streams_json() {
  std::string error, socket;
  const auto s = status(error, &socket);
  nlohmann::json broker = {{"connected", s.has_value()}};
  if (s) {
    broker["socket"] = socket;
  } else {
    broker["error"] = error;
  }
  nlohmann::json streams = nlohmann::json::array();
  if (s) {
    for (const auto& st : s->streams) {
      if (!allowed(st.name)) continue;
      bool running = false;
      for (const auto& c : s->cameras)
        if (c.name == st.camera) running = c.running;
      streams.push_back({{"name", st.name},
                         {"width", st.width},
                         {"height", st.height},
                         {"pixel_type", st.pixel_type},
                         {"fps", st.fps},
                         {"running", running},
                         {"dropped", st.dropped}});
    }
  }
  return {{"broker", broker}, {"streams", streams}};
}

std::string StreamDirectory::refuse(const std::string& name) {
  std::string error;
  const auto s = status(error);
  std::string names;
  bool found = false;
  if (s) {
    for (const auto& st : s->streams) {
      if (!allowed(st.name)) continue;
      names += (names.empty() ? "" : ", ") + st.name;
      found = found || st.name == name;
    }
  }
  if (found || (!s && allowed(name))) return {};  // a lost broker: the viewer will say so
  return "unknown stream '" + name + "'; streams: " + (names.empty() ? "(none)" : names);
}

std::optional<std::string> StreamDirectory::first_stream() {
  const auto j = streams_json();
  if (j["streams"].empty()) return std::nullopt;
  return j["streams"][0]["name"].get<std::string>();
}

}  // namespace framebroker::fbview
