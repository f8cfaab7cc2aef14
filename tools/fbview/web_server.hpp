// fbview's HTTP and WebSocket server (Boost.Beast on one Asio thread):
//   GET /                 the page (embedded in the binary)
//   GET /api/streams      the streams on offer, as JSON
//   GET /ws?stream=NAME   WebSocket: frames for one tab (see view_socket.hpp)
// Anything else gets a JSON error with the right status; a bad request never stops the server.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "fbview/stream_directory.hpp"

namespace framebroker::fbview {

class WebServer {
 public:
  // Binds and listens at once (throws boost::system::system_error, e.g. address in use).
  WebServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at,
            StreamDirectory& streams);
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
