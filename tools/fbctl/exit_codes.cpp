#include "fbctl/exit_codes.hpp"

#include <iostream>

#include "framebroker/client.hpp"

namespace framebroker::fbctl {

int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << "fbctl: " << e.what() << "\n";
    switch (e.code()) {
      case Errc::BrokerNotRunning:
      case Errc::BrokerLost:
        return kBrokerNotRunning;
      case Errc::InvalidArgument:
        return kUsage;
      default:
        return kRefused;
    }
  } catch (const std::exception& e) {
    std::cerr << "fbctl: " << e.what() << "\n";
    return kRefused;
  }
}

}  // namespace framebroker::fbctl
