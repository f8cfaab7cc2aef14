// What the fuzz targets that drive a server through a connected socket share: polling the
// server's io_context, and feeding it one input then waiting until it lets go of the connection.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace fbfuzz {

// Runs what is ready (an io_context with no work left stops; it is restarted here).
inline size_t pump(boost::asio::io_context& io) {
  if (io.stopped()) io.restart();
  return io.poll();
}

// Sends `size` bytes on `me` in pieces of at most `piece`, running the server and reading its
// replies (`drain(me)`: false once the server closed) after each; then half-closes and waits until
// the server closes its end too, and closes `me`. A server that keeps a half-closed peer 20 s is a
// bug: abort, naming `who`.
template <typename Drain>
void feed_and_close(int me, const uint8_t* data, size_t size, size_t piece,
                    boost::asio::io_context& io, Drain&& drain, const char* who) {
  bool open = true;
  for (size_t at = 0; at < size && open;) {
    const ssize_t n =
        ::send(me, data + at, std::min(piece, size - at), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
      at += size_t(n);
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
      break;  // the server closed: fine
    pump(io);
    open = drain(me);
  }
  ::shutdown(me, SHUT_WR);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (drain(me)) {
    if (pump(io) == 0) {
      pollfd p{me, POLLIN, 0};
      ::poll(&p, 1, 1);
    }
    if (std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr, "%s: the server kept a half-closed connection 20 s\n", who);
      std::abort();
    }
  }
  ::close(me);
  pump(io);
}

}  // namespace fbfuzz
