#include "fbview/web_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

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
  // The message may quote the request (its path), which need not be UTF-8: dump() would throw
  // and end fbview. Bytes that are not UTF-8 become U+FFFD.
  return reply(
      req, status,
      json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(uint8_t(c)));
  return out;
}

// An origin as browsers write it, scheme://host[:port], lower-cased and with the port made
// explicit; nullopt for anything else ("null", a path, user info, ...).
struct Origin {
  std::string scheme, host;
  uint32_t port = 0;  // 0: a scheme without a default port
  bool operator==(const Origin&) const = default;
};

std::optional<Origin> parse_origin(std::string_view s) {
  const auto sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;
  Origin o;
  o.scheme = lower(s.substr(0, sep));
  if (o.scheme.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789+-.") != std::string::npos)
    return std::nullopt;
  std::string_view rest = s.substr(sep + 3);
  if (rest.ends_with('/')) rest.remove_suffix(1);  // as people type it in --allow-origin
  if (rest.empty() || rest.find_first_of("/?#@\\ \t") != std::string_view::npos)
    return std::nullopt;
  size_t colon = std::string_view::npos;
  if (rest.front() == '[') {  // an IPv6 address
    const auto close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return std::nullopt;
      colon = close + 1;
    }
  } else {
    colon = rest.find(':');
  }
  const std::string_view host = rest.substr(0, colon);
  if (host.empty()) return std::nullopt;
  o.host = lower(host);
  if (colon != std::string_view::npos) {
    const std::string_view port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    o.port = uint32_t(std::stoul(std::string(port)));
    if (o.port > 65535) return std::nullopt;
  } else {
    o.port = o.scheme == "http" ? 80 : o.scheme == "https" ? 443 : 0;
  }
  return o;
}

// For logs: an attacker chooses the header, so no terminal escapes and no novels.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += std::isprint(uint8_t(c)) ? c : '?';
  return out;
}

struct OriginPolicy {
  std::vector<Origin> allowed;   // --allow-origin
  std::set<std::string> logged;  // refused origins already logged (a page retries each second)
};

// fbview's own origin as a browser reached it at `local` (the server side of the connection).
bool is_own_origin(const Origin& o, const tcp::endpoint& local) {
  if (o.scheme != "http" || o.port != local.port()) return false;
  if (o.host == "localhost" || o.host == "127.0.0.1" || o.host == "[::1]") return true;
  asio::ip::address a = local.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())  // a dual-stack socket, an IPv4 client
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return o.host == (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string());
}

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, StreamDirectory& streams, std::shared_ptr<OriginPolicy> origins,
              std::string channel)
      : stream_(std::move(socket)),
        streams_(streams),
        origins_(std::move(origins)),
        channel_(std::move(channel)) {}

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
      // Before anything else, so a foreign page does not even learn which streams exist.
      if (const std::string why = refuse_origin(); !why.empty())
        return respond(error_reply(req_, http::status::forbidden, why));
      if (path != "/ws")
        return respond(
            error_reply(req_, http::status::not_found, "no WebSocket at " + std::string(path)));
      std::string name = query_value(target, "stream");
      if (name.empty()) name = streams_.first_stream().value_or("");
      if (name.empty())
        return respond(error_reply(req_, http::status::not_found, "the broker has no streams"));
      if (const std::string why = streams_.refuse(name); !why.empty())
        return respond(error_reply(req_, http::status::not_found, why));
      std::string channel = query_value(target, "channel");
      if (channel.empty()) channel = channel_;
      stream_.expires_never();
      return serve_view_socket(stream_.release_socket(), std::move(req_),
                               streams_.connect_options(), name, channel);
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

  // Empty when the upgrade's Origin may connect; else why not.
  std::string refuse_origin() {
    const auto it = req_.find(http::field::origin);
    if (it == req_.end()) return {};
    const std::string_view origin(it->value().data(), it->value().size());
    if (const auto o = parse_origin(origin)) {
      beast::error_code ec;
      const tcp::endpoint local = stream_.socket().local_endpoint(ec);
      if (!ec && is_own_origin(*o, local)) return {};
      for (const Origin& a : origins_->allowed)
        if (*o == a) return {};
    }
    const std::string shown = printable(origin);
    if (origins_->logged.size() < 100 && origins_->logged.insert(shown).second)
      spdlog::warn("refused a WebSocket from a page of origin '{}' (--allow-origin allows it)",
                   shown);
    return "WebSocket refused for origin '" + shown + "': fbview serves pages of its own " +
           "origin and those given with --allow-origin";
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
  std::shared_ptr<OriginPolicy> origins_;
  std::string channel_;  // fbview --channel: the tabs' channel filter unless they name one
  beast::flat_buffer buffer_;
  Request req_;
};

}  // namespace

class WebServer::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, const tcp::endpoint& at, StreamDirectory& streams,
       const std::vector<std::string>& allow_origins, std::string channel)
      : acceptor_(io),
        streams_(streams),
        origins_(std::make_shared<OriginPolicy>()),
        channel_(std::move(channel)) {
    for (const std::string& a : allow_origins) {
      auto o = parse_origin(a);
      if (!o)
        throw std::invalid_argument("--allow-origin: '" + a +
                                    "' is not an origin like http://host:8080");
      origins_->allowed.push_back(std::move(*o));
    }
    acceptor_.open(at.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
  }

  void accept() {
    acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        std::make_shared<HttpSession>(std::move(s), self->streams_, self->origins_, self->channel_)
            ->start();
      } else {
        spdlog::warn("accept: {}", ec.message());
      }
      self->accept();
    });
  }

  tcp::acceptor acceptor_;
  StreamDirectory& streams_;
  std::shared_ptr<OriginPolicy> origins_;
  std::string channel_;
};

WebServer::WebServer(asio::io_context& io, const tcp::endpoint& at, StreamDirectory& streams,
                     const std::vector<std::string>& allow_origins, const std::string& channel)
    : impl_(std::make_shared<Impl>(io, at, streams, allow_origins, channel)) {
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
