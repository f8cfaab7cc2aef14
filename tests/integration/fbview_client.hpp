// fbview under test: the real program on a free port next to a real broker, and a small
// HTTP/WebSocket client (Boost.Beast) that speaks to it like the page does.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace fbtest {

// fbview --listen 127.0.0.1:0 for `broker`; waits for its "serving http://..." line.
class Viewer {
 public:
  Viewer(Broker& broker, std::vector<std::string> extra_args = {});
  const std::string& url() const { return url_; }  // http://127.0.0.1:PORT/
  uint16_t port() const { return port_; }
  Process& process() { return *proc_; }

 private:
  std::unique_ptr<Process> proc_;
  std::string url_;
  uint16_t port_ = 0;
};

struct HttpReply {
  int status = 0;
  std::string content_type, body;
};
// One request on a fresh connection ("GET", "/api/streams"); a WebSocket upgrade if `upgrade`,
// with an Origin header unless `origin` is empty.
HttpReply http_request(uint16_t port, const std::string& method, const std::string& target,
                       bool upgrade = false, const std::string& origin = "");

// A decoded frame message: the JSON header and the 8-bit pixels.
struct ViewFrame {
  nlohmann::json header;
  std::vector<uint8_t> pixels;
};

class ViewClient {
 public:
  // Throws on a refused upgrade (the message includes the HTTP status and body). Sends no
  // Origin unless given one.
  ViewClient(uint16_t port, const std::string& target, const std::string& origin = "");
  ~ViewClient();
  void send(const nlohmann::json& m);
  void ready(uint32_t max_side = 256, nlohmann::json extra = nlohmann::json::object());
  // The next message within `timeout`: a frame (binary) or a text JSON message.
  struct Message {
    std::optional<ViewFrame> frame;
    nlohmann::json text;
  };
  std::optional<Message> receive(std::chrono::milliseconds timeout);
  // Skips text messages until a frame arrives (or the timeout).
  std::optional<ViewFrame> next_frame(std::chrono::milliseconds timeout);
  // Skips frames until a text message of `type` arrives.
  std::optional<nlohmann::json> next_text(const std::string& type,
                                          std::chrono::milliseconds timeout);

 private:
  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::deque<Message> inbox_;
  bool closed_ = false;
  void start_read();
};

}  // namespace fbtest
