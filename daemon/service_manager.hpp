// What the daemon says to systemd and takes from it (sd-daemon(3)): readiness, a status
// line, watchdog pings and shutdown through $NOTIFY_SOCKET, and the listening socket of a
// .socket unit through $LISTEN_FDS. Every call does nothing when systemd did not start us.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace framebroker::daemon::service {

void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_watchdog();
void notify_stopping();
void notify_reloading();  // READY=1 (notify_ready) follows when done

// How often systemd wants WATCHDOG=1 (WatchdogSec), if it does.
std::optional<std::chrono::microseconds> watchdog_interval();

// The listening Unix stream socket systemd passed us (taken over: the environment variables
// are unset), or -1 when there is none. Throws std::runtime_error for anything else.
int take_listen_socket();

}  // namespace framebroker::daemon::service
