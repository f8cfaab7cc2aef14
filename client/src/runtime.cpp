#include "framebroker/runtime.hpp"

#include <unistd.h>

#include <cstdlib>

namespace framebroker {

std::string default_runtime_dir() {
  if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d && *d) return d;
  if (geteuid() == 0) return kSystemRuntimeDir;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x)
    return std::string(x) + "/framebroker";
  return "/tmp/framebroker-" + std::to_string(geteuid());
}

std::string socket_path_in(const std::string& runtime_dir, const std::string& instance) {
  return runtime_dir + "/" + instance + ".sock";
}

std::string choose_socket_path(const std::string& own, const std::string& system) {
  if (::access(own.c_str(), F_OK) != 0 && ::access(system.c_str(), F_OK) == 0) return system;
  return own;
}

std::string resolve_socket_path(const std::string& instance) {
  if (const char* s = std::getenv("FRAMEBROKER_SOCKET"); s && *s) return s;
  return choose_socket_path(socket_path_in(default_runtime_dir(), instance),
                            socket_path_in(kSystemRuntimeDir, instance));
}

}  // namespace framebroker
