#include "framebroker/error.hpp"

namespace framebroker {

const char* to_string(Errc code) {
  switch (code) {
    case Errc::BrokerNotRunning:
      return "BrokerNotRunning";
    case Errc::BrokerLost:
      return "BrokerLost";
    case Errc::ProtocolMismatch:
      return "ProtocolMismatch";
    case Errc::UnknownStream:
      return "UnknownStream";
    case Errc::Refused:
      return "Refused";
    case Errc::Timeout:
      return "Timeout";
    case Errc::InvalidArgument:
      return "InvalidArgument";
    case Errc::Protocol:
      return "Protocol";
  }
  return "Unknown";
}

}  // namespace framebroker
