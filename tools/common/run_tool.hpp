// The tools' way of ending on an error: the message on stderr after "<tool>: ", and exit code 3
// when the broker is not running or went away, 1 for any other error.
#pragma once

#include <cstdio>
#include <exception>

#include "framebroker/error.hpp"

namespace framebroker::tools {

// Runs `body` (which returns the exit code) and turns what it throws into an exit code.
template <typename Body>
int run_tool(const char* tool, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return e.code() == Errc::BrokerNotRunning || e.code() == Errc::BrokerLost ? 3 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return 1;
  }
}

}  // namespace framebroker::tools
