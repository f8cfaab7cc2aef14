// Where the broker's socket lives (docs/DESIGN.md, "Wire protocol").
#pragma once

#include <string>

namespace framebroker {

// The system service's runtime directory (systemd's RuntimeDirectory=framebroker).
inline constexpr const char* kSystemRuntimeDir = "/run/framebroker";

// $RUNTIME_DIRECTORY, else /run/framebroker for root, else
// $XDG_RUNTIME_DIR/framebroker, else /tmp/framebroker-<uid>.
std::string default_runtime_dir();
// <runtime_dir>/<instance>.sock
std::string socket_path_in(const std::string& runtime_dir, const std::string& instance);
// `own` (a broker of the user's) when it exists or `system` does not, else `system`.
std::string choose_socket_path(const std::string& own, const std::string& system);
// $FRAMEBROKER_SOCKET if set; else the instance's socket in default_runtime_dir(), or, when
// there is none, the system service's in /run/framebroker.
std::string resolve_socket_path(const std::string& instance);

}  // namespace framebroker
