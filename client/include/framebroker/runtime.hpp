// Where the broker's socket lives (DESIGN.md, "Wire protocol").
#pragma once

#include <string>

namespace framebroker {

// $RUNTIME_DIRECTORY, else /run/framebroker for root, else
// $XDG_RUNTIME_DIR/framebroker, else /tmp/framebroker-<uid>.
std::string default_runtime_dir();
// <runtime_dir>/<instance>.sock
std::string socket_path_in(const std::string& runtime_dir, const std::string& instance);
// $FRAMEBROKER_SOCKET if set, else socket_path_in(default_runtime_dir(), instance).
std::string resolve_socket_path(const std::string& instance);

}  // namespace framebroker
