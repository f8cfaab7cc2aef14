// framebroker::Error: every failure of the client library, with a code to
// branch on and a sentence to show.
#pragma once

#include <stdexcept>
#include <string>

namespace framebroker {

enum class Errc {
  BrokerNotRunning,  // nothing listens on the socket (the message names the path)
  BrokerLost,        // the connection to the broker ended
  ProtocolMismatch,  // broker and library speak different protocol versions
  UnknownStream,
  Refused,  // the broker refused the request (see broker_code())
  Timeout,
  InvalidArgument,
  Protocol,  // the broker sent something this library cannot read
};

const char* to_string(Errc code);

class Error : public std::runtime_error {
 public:
  Error(Errc code, const std::string& message, int broker_code = 0)
      : std::runtime_error(message), code_(code), broker_code_(broker_code) {}
  Errc code() const noexcept { return code_; }
  // The broker's wire::ErrorCode when code() == Refused, else 0.
  int broker_code() const noexcept { return broker_code_; }

 private:
  Errc code_;
  int broker_code_;
};

}  // namespace framebroker
