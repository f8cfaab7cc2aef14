#include "fbview/web_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "fbview/view_socket.hpp"

namespace framebroker::fbview {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// "/ws?stream=a&x=1" -> path "/ws", query value of `key` ("" when absent).
std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

std::string query_value(std::string_view target, std::string_view key) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key && eq != std::string_view::npos) {
      std::string out;
      const std::string_view v = pair.substr(eq + 1);
      for (size_t i = 0; i < v.size(); ++i) {  // percent-decoding, '+' as space
        if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(uint8_t(v[i + 1])) &&
            std::isxdigit(uint8_t(v[i + 2]))) {
          out += char(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
          i += 2;
        } else {
          out += v[i] == '+' ? ' ' : v[i];
        }
      }
      return out;
    }
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return {};
}

Response reply(const Request& req, http::status status, std::string body,
               const char* type = "application/json") {
  Response res{status, req.version()};
  res.set(http::field::server, "fbview");
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response error_reply(const Request& req, http::status status, const std::string& message) {
  return reply(req, status, json{{"error", message}}.dump() + "\n");
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, StreamDirectory& streams)
      : stream_(std::move(socket)), streams_(streams) {}

  void start() { read(); }

 private:
  void read() {
    req_ = {};
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return;  // closed, timed out or not HTTP: nothing to answer
                       self->handle();
                     });
  }

  void handle() {
    const std::string target(req_.target());
    const std::string_view path = path_of(target);
    if (beast::websocket::is_upgrade(req_)) {
      if (path != "/ws")
        return respond(
            error_reply(req_, http::status::not_found, "no WebSocket at " + std::string(path)));
      std::string name = query_value(target, "stream");
      if (name.empty()) name = streams_.first_stream().value_or("");
      if (name.empty())
        return respond(error_reply(req_, http::status::not_found, "the broker has no streams"));
      if (const std::string why = streams_.refuse(name); !why.empty())
        return respond(error_reply(req_, http::status::not_found, why));
      stream_.expires_never();
      return serve_view_socket(stream_.release_socket(), std::move(req_),
                               streams_.connect_options(), name);
    }
    if (req_.method() != http::verb::get && req_.method() != http::verb::head)
      return respond(error_reply(req_, http::status::method_not_allowed,
                                 std::string(req_.method_string()) + " is not supported"));
    if (path == "/" || path == "/index.html")
      return respond(reply(req_, http::status::ok, kIndexHtml, "text/html; charset=utf-8"));
    if (path == "/api/streams")
      return respond(reply(req_, http::status::ok, streams_.streams_json().dump() + "\n"));
    if (path == "/favicon.ico") return respond(reply(req_, http::status::no_content, ""));
    respond(error_reply(req_, http::status::not_found, "no such page: " + std::string(path)));
  }

  void respond(Response res) {
    auto shared = std::make_shared<Response>(std::move(res));
    http::async_write(stream_, *shared,
                      [self = shared_from_this(), shared](beast::error_code ec, size_t) {
                        if (ec || !shared->keep_alive()) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          return;
                        }
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  StreamDirectory& streams_;
  beast::flat_buffer buffer_;
  Request req_;
};

}  // namespace

class WebServer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, const tcp::endpoint& at, StreamDirectory& streams)
      : acceptor_(io), streams_(streams) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
  }

  void accept() {
    acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        std::make_shared<HttpSession>(std::move(s), self->streams_)->start();
      } else {
        spdlog::warn("accept: {}", ec.message());
      }
      self->accept();
    });
  }

  tcp::acceptor acceptor_;
  StreamDirectory& streams_;
};

WebServer::WebServer(asio::io_context& io, const tcp::endpoint& at, StreamDirectory& streams)
    : impl_(std::make_shared<Impl>(io, at, streams)) {
  impl_->accept();
}

WebServer::~WebServer() {
  stop();
}

tcp::endpoint WebServer::local_endpoint() const {
  return impl_->acceptor_.local_endpoint();
}

void WebServer::stop() {
  beast::error_code ignored;
  impl_->acceptor_.close(ignored);
}

}  // namespace framebroker::fbview
