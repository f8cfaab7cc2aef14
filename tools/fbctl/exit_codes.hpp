// fbctl's exit codes, and the one place that turns errors into them.
#pragma once

#include <functional>

namespace framebroker::fbctl {

enum Exit : int {
  kOk = 0,
  kRefused = 1,           // the broker refused; the message says why
  kUsage = 2,             // bad command line
  kBrokerNotRunning = 3,  // nothing listens on the socket, or the broker went away
};

// Runs `body`, printing any framebroker::Error as one line on stderr and
// returning the matching exit code.
int guarded(const std::function<int()>& body);

}  // namespace framebroker::fbctl
