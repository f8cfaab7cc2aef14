// fbview's HTTP and WebSocket server (Boost.Beast on one Asio thread):
//   GET /                 the page (embedded in the binary)
//   GET /api/streams      the streams on offer, as JSON
//   GET /ws?stream=NAME[&channel=C]   WebSocket: frames for one tab (see view_socket.hpp); C
//                         shows one channel of a sequence only (default: `channel`)
// Anything else gets a JSON error with the right status; a bad request never stops the server.
//
// A browser lets any page open a WebSocket to any address, and names the page in `Origin`.
// An upgrade is refused (403) unless its Origin is fbview's own: http:// with the port served
// and the host localhost, 127.0.0.1, [::1] or the address the connection came in on, or one
// given with --allow-origin. No Origin at all is allowed: browsers always send one, so that
// is a program (a test client, websocat, a script), which could connect anyway.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "fbview/stream_directory.hpp"

namespace framebroker::fbview {

class WebServer {
 public:
  // Binds and listens at once (throws boost::system::system_error, e.g. address in use;
  // std::invalid_argument for a malformed origin). `channel`: the channel filter of a tab that
  // names none (empty: every channel).
  WebServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at,
            StreamDirectory& streams, const std::vector<std::string>& allow_origins = {},
            const std::string& channel = "");
  ~WebServer();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void stop();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

// The page, embedded at build time from tools/fbview/web/index.html.
extern const char* const kIndexHtml;

}  // namespace framebroker::fbview
