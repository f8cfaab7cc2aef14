// Fuzz target: fbview's HTTP and WebSocket handling (tools/fbview/web_server.cpp,
// view_socket.cpp): request parsing (Boost.Beast), routing, the query decoding, the Origin check
// of an upgrade, WebSocket frames and the page's JSON messages (ready, restyle, probe).
//
// The real WebServer listens on 127.0.0.1 (an ephemeral port) on this thread's io_context for
// the whole run, with --allow-origin http://example.org:8080. Each input is one connection: its
// bytes are sent as they are (several requests, an upgrade and masked WebSocket frames after it,
// or garbage), the client half-closes, and the replies are read until fbview closes the
// connection. No broker runs (its socket does not exist): /api/streams says so, and a view
// socket's frame pump finds no broker; what is fuzzed is fbview's side of the HTTP connection.
// fbview must answer or close, never crash or keep a half-closed connection.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "fbview/stream_directory.hpp"
#include "fbview/web_server.hpp"
#include "socket_feed.hpp"

namespace fv = framebroker::fbview;
using fbfuzz::pump;

// web_server.cpp's page; fbview embeds tools/fbview/web/index.html at build time.
const char* const framebroker::fbview::kIndexHtml = "<!doctype html><title>fbview</title>\n";

namespace {

struct World {
  boost::asio::io_context io{1};
  std::unique_ptr<fv::StreamDirectory> streams;
  std::unique_ptr<fv::WebServer> server;
  sockaddr_in at{};

  World() {
    spdlog::set_level(spdlog::level::off);
    framebroker::ConnectOptions connect;
    connect.socket_path = "/nonexistent/fb-fuzz-fbview/broker.sock";
    connect.client_name = "fbview-fuzz";
    streams = std::make_unique<fv::StreamDirectory>(connect, std::vector<std::string>{});
    server = std::make_unique<fv::WebServer>(
        io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0), *streams,
        std::vector<std::string>{"http://example.org:8080"}, "");
    at.sin_family = AF_INET;
    at.sin_port = htons(server->local_endpoint().port());
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
};

World& world() {
  static World w;
  return w;
}

// Reads and drops fbview's replies; false once it closed the connection.
bool drain(int fd) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  const int me = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (me < 0 || ::connect(me, reinterpret_cast<const sockaddr*>(&w.at), sizeof w.at) != 0)
    std::abort();
  const int one = 1;
  ::setsockopt(me, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fbfuzz::feed_and_close(me, data, size, size, w.io, drain, "fuzz_fbview_http");
  return 0;
}
