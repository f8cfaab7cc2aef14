#include "service_manager.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstring>
#include <stdexcept>

namespace framebroker::daemon::service {
namespace {

void notify(const std::string& state) {
  if (const int r = sd_notify(0, state.c_str()); r < 0)
    spdlog::warn("sd_notify({}): {}", state.substr(0, state.find('\n')), std::strerror(-r));
}

}  // namespace

void notify_ready(const std::string& status) {
  notify("READY=1\nSTATUS=" + status);
}

void notify_status(const std::string& status) {
  notify("STATUS=" + status);
}

void notify_watchdog() {
  notify("WATCHDOG=1");
}

void notify_stopping() {
  notify("STOPPING=1\nSTATUS=stopping");
}

void notify_reloading() {
  notify("RELOADING=1\nSTATUS=reloading the configuration");
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

int take_listen_socket() {
  const int n = sd_listen_fds(1);
  if (n < 0) throw std::runtime_error(std::string("LISTEN_FDS: ") + std::strerror(-n));
  if (n == 0) return -1;
  if (n > 1)
    throw std::runtime_error("systemd passed " + std::to_string(n) +
                             " sockets; framebrokerd takes exactly one (ListenStream=)");
  const int fd = SD_LISTEN_FDS_START;
  if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0)
    throw std::runtime_error(
        "the socket systemd passed is not a listening Unix stream socket (ListenStream=PATH)");
  return fd;
}

}  // namespace framebroker::daemon::service
