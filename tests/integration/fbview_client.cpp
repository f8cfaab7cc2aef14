#include "fbview_client.hpp"

#include <boost/beast/http.hpp>
#include <cstring>
#include <regex>
#include <thread>

namespace fbtest {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

Viewer::Viewer(Broker& broker, std::vector<std::string> extra_args) {
  std::vector<std::string> argv = {FB_FBVIEW_BIN, "--socket", broker.socket(), "--listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  proc_ = std::make_unique<Process>(argv, broker.runtime_dir() + "/fbview");
  const std::regex serving(R"(serving (http://127\.0\.0\.1:(\d+)/))");
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < end) {
    std::smatch m;
    const std::string out = proc_->out();
    if (std::regex_search(out, m, serving)) {
      url_ = m[1];
      port_ = uint16_t(std::stoi(m[2]));
      return;
    }
    if (!proc_->running()) break;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("fbview did not start: " + proc_->out() + proc_->err());
}

HttpReply http_request(uint16_t port, const std::string& method, const std::string& target,
                       bool upgrade, const std::string& origin) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (upgrade) {
    req.set(http::field::upgrade, "websocket");
    req.set(http::field::connection, "upgrade");
    req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    req.set(http::field::sec_websocket_version, "13");
  }
  if (!origin.empty()) req.set(http::field::origin, origin);
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return {int(res.result_int()), std::string(res[http::field::content_type]), res.body()};
}

ViewClient::ViewClient(uint16_t port, const std::string& target, const std::string& origin)
    : ws_(io_) {
  beast::get_lowest_layer(ws_).connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  if (!origin.empty())
    ws_.set_option(beast::websocket::stream_base::decorator(
        [origin](beast::websocket::request_type& req) { req.set(http::field::origin, origin); }));
  http::response<http::string_body> refused;
  beast::error_code ec;
  ws_.handshake(refused, "127.0.0.1", target, ec);
  if (ec)
    throw std::runtime_error("WebSocket refused: HTTP " + std::to_string(refused.result_int()) +
                             " " + refused.body());
  start_read();
}

ViewClient::~ViewClient() {
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().close(ignored);
  io_.restart();
  io_.run();  // the outstanding read ends with an error
}

void ViewClient::send(const json& m) {
  ws_.text(true);
  ws_.write(asio::buffer(m.dump()));
}

void ViewClient::ready(uint32_t max_side, json extra) {
  json m = {{"type", "ready"}, {"max_width", max_side}, {"max_height", max_side}};
  m.update(extra);
  send(m);
}

// One read is always outstanding; its handler queues what arrives and issues the next.
void ViewClient::start_read() {
  ws_.async_read(buffer_, [this](beast::error_code ec, size_t) {
    if (ec) {
      closed_ = true;
      return;
    }
    const std::string data = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    Message m;
    if (ws_.got_binary()) {
      uint32_t n = 0;
      std::memcpy(&n, data.data(), 4);
      ViewFrame f;
      f.header = json::parse(data.substr(4, n));
      f.pixels.assign(data.begin() + 4 + n, data.end());
      m.frame = std::move(f);
    } else {
      m.text = json::parse(data);
    }
    inbox_.push_back(std::move(m));
    start_read();
  });
}

std::optional<ViewClient::Message> ViewClient::receive(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (inbox_.empty() && !closed_ && std::chrono::steady_clock::now() < end) {
    io_.restart();
    io_.run_one_for(std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now()));
  }
  if (inbox_.empty()) return std::nullopt;
  Message m = std::move(inbox_.front());
  inbox_.pop_front();
  return m;
}

std::optional<ViewFrame> ViewClient::next_frame(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    auto m = receive(std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now()));
    if (m && m->frame) return std::move(m->frame);
  }
  return std::nullopt;
}

std::optional<json> ViewClient::next_text(const std::string& type,
                                          std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    auto m = receive(std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now()));
    if (m && !m->frame && m->text.value("type", "") == type) return m->text;
  }
  return std::nullopt;
}

}  // namespace fbtest
