#include "fbview/view_socket.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cmath>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>

#include "fbview/frame_pump.hpp"

namespace framebroker::fbview {
namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using nlohmann::json;

// A number field clamped to [lo, hi] while still a double: converting an out-of-range double
// to an integer is undefined behaviour. Absent or null: `fallback`.
double number(const json& m, const char* key, double fallback, double lo, double hi) {
  const auto it = m.find(key);
  if (it == m.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw std::invalid_argument(std::string(key) + " must be a number");
  const double v = it->get<double>();
  if (std::isnan(v)) return fallback;
  return std::clamp(v, lo, hi);
}

uint32_t coordinate(const json& v) {
  if (!v.is_number()) throw std::invalid_argument("region must be [x, y, w, h] numbers");
  const double d = v.get<double>();
  return std::isnan(d) ? 0 : uint32_t(std::clamp(d, 0.0, 1e6));
}

// Throws json errors or std::invalid_argument.
Style parse_style(const json& m) {
  Style s;
  s.mode = auto_contrast_of(m.value("auto", std::string("minmax")));
  s.manual = {number(m, "black", 0, -1e30, 1e30), number(m, "white", 65535, -1e30, 1e30)};
  s.gamma = number(m, "gamma", 1, 0.1, 10);
  return s;
}

// A ready's "channel": a name, an index, or null / "" for every channel.
std::string channel_of(const json& c) {
  if (c.is_null()) return {};
  if (c.is_string()) return c.get<std::string>();
  if (c.is_number_unsigned()) return std::to_string(c.get<uint64_t>());
  throw std::invalid_argument("channel must be a channel name, an index, or null");
}

ViewRequest parse_ready(const json& m) {
  ViewRequest r;
  r.max_width = uint32_t(number(m, "max_width", 1024, 1, 8192));
  r.max_height = uint32_t(number(m, "max_height", 1024, 1, 8192));
  if (m.contains("region") && !m["region"].is_null()) {
    const auto& a = m["region"];
    if (!a.is_array() || a.size() != 4) throw std::invalid_argument("region must be [x, y, w, h]");
    r.region = {coordinate(a[0]), coordinate(a[1]), coordinate(a[2]), coordinate(a[3])};
  }
  r.style = parse_style(m);
  return r;
}

class ViewSocket : public std::enable_shared_from_this<ViewSocket> {
 public:
  ViewSocket(boost::asio::ip::tcp::socket socket, const ConnectOptions& connect, std::string stream,
             std::string channel)
      : ws_(std::move(socket)),
        connect_(connect),
        stream_(std::move(stream)),
        channel_(std::move(channel)) {}

  ~ViewSocket() {
    if (!pump_) return;
    pump_->stop();
    // Its thread may be in a broker call for a moment: join it off the socket thread.
    if (!pump_->finished()) std::thread([p = std::move(pump_)] {}).detach();
  }

  void start(beast::http::request<beast::http::string_body> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->on_open();
    });
  }

 private:
  void on_open() {
    std::weak_ptr<ViewSocket> weak = shared_from_this();
    auto executor = ws_.get_executor();
    pump_ = std::make_shared<FramePump>(
        connect_, stream_, [weak, executor](std::string msg, bool binary) {
          boost::asio::post(executor, [weak, m = std::move(msg), binary]() mutable {
            if (auto self = weak.lock()) self->send(std::move(m), binary);
          });
        });
    read();
  }

  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->pump_->stop();  // closed by the tab (or broken)
      self->on_message();
      self->read();
    });
  }

  void on_message() {
    const std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    try {
      if (ws_.got_binary()) throw std::invalid_argument("binary messages are not understood");
      const json m = json::parse(text);
      const std::string type = m.at("type").get<std::string>();
      if (type == "ready") {
        ViewRequest r;  // a bad ready still gets a frame (defaults): the page waits for one
        try {
          r = parse_ready(m);
          if (const auto c = m.find("channel"); c != m.end()) channel_ = channel_of(*c);
        } catch (const std::exception&) {
          r.channel = channel_;
          pump_->request(r);
          throw;
        }
        r.channel = channel_;
        pump_->request(r);
      } else if (type == "probe") {
        const auto x = m.at("x").get<double>(), y = m.at("y").get<double>();
        std::optional<double> v;
        if (x >= 0 && y >= 0 && x < 4294967296.0 && y < 4294967296.0)  // false for NaN too
          v = pump_->probe(uint32_t(x), uint32_t(y));
        send(json{{"type", "probe"}, {"x", x}, {"y", y}, {"value", v ? json(*v) : json()}}.dump(),
             false);
      } else if (type == "restyle") {
        pump_->restyle(parse_style(m));
      } else {
        throw std::invalid_argument("unknown message type '" + type + "'");
      }
    } catch (const std::exception& e) {
      // A parse error quotes the page's bytes, which need not be UTF-8 (dump() would throw).
      send(json{{"type", "error"}, {"message", std::string("bad message: ") + e.what()}}.dump(
               -1, ' ', false, json::error_handler_t::replace),
           false);
    }
  }

  void send(std::string msg, bool binary) {
    out_.push_back({std::move(msg), binary});
    if (out_.size() == 1) write();
  }

  void write() {
    ws_.binary(out_.front().binary);
    ws_.async_write(boost::asio::buffer(out_.front().data),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->out_.pop_front();
                      if (ec) return self->pump_->stop();
                      if (!self->out_.empty()) self->write();
                    });
  }

  struct Outgoing {
    std::string data;
    bool binary;
  };

  websocket::stream<beast::tcp_stream> ws_;
  ConnectOptions connect_;
  std::string stream_;
  std::string channel_;  // shown alone; sticky until a ready names another
  beast::flat_buffer in_;
  std::deque<Outgoing> out_;
  std::shared_ptr<FramePump> pump_;
};

}  // namespace

void serve_view_socket(boost::asio::ip::tcp::socket socket,
                       beast::http::request<beast::http::string_body> upgrade,
                       const ConnectOptions& connect, const std::string& stream,
                       const std::string& channel) {
  std::make_shared<ViewSocket>(std::move(socket), connect, stream, channel)
      ->start(std::move(upgrade));
}

}  // namespace framebroker::fbview
