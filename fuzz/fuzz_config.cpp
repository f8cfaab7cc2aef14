// Fuzz target: the daemon's configuration parsers. Each input is, at once,
//   - a TOML file (written to a temporary file, read with load_toml_file, then finalize()d as
//     framebrokerd does after reading its flags and file), and
//   - `--camera` specs: the whole input, and each of its lines (parse_camera_spec).
// ConfigError is the clean refusal; any other exception escaping is a bug (abort()).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "config.hpp"

namespace fd = framebroker::daemon;

namespace {

[[noreturn]] void bug(const char* what, const std::exception& e) {
  std::fprintf(stderr, "fuzz_config: %s threw something other than ConfigError: %s\n", what,
               e.what());
  std::abort();
}

const std::string& temp_file() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/fb-fuzz-config-XXXXXX";
    const int f = ::mkstemp(tmpl);
    if (f < 0) std::abort();
    ::close(f);
    return std::string(tmpl);
  }();
  return path;
}

struct RemoveAtExit {
  ~RemoveAtExit() { ::unlink(temp_file().c_str()); }
} remove_at_exit;

void spec(std::string_view s) {
  try {
    const fd::CameraConfig cam = fd::parse_camera_spec(s);
    // What a spec yields is a driver and keys; a stream key parsed means its value checked.
    if (cam.driver.empty()) std::abort();
  } catch (const fd::ConfigError&) {
  } catch (const std::exception& e) {
    bug("parse_camera_spec", e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const std::string& path = temp_file();
  const int f = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (f < 0 || ::write(f, data, size) != ssize_t(size)) std::abort();
  ::close(f);
  try {
    fd::BrokerConfig config;
    config.runtime_dir = "/tmp/fb-fuzz-config-runtime";  // never made: nothing is started
    fd::load_toml_file(path, config);
    fd::finalize(config);
  } catch (const fd::ConfigError&) {
  } catch (const std::exception& e) {
    bug("load_toml_file/finalize", e);
  }

  spec(text);
  for (size_t at = 0; at < text.size();) {
    const size_t nl = std::min(text.find('\n', at), text.size());
    spec(text.substr(at, nl - at));
    at = nl + 1;
  }
  return 0;
}
