// libframebroker: subscribe to frames of a framebrokerd and control its cameras.
//
//   auto client = framebroker::Client::connect({});
//   auto sub = client.subscribe("sim0", {.mode = framebroker::Mode::Every});
//   while (auto frame = sub.next(std::chrono::seconds(1))) {
//     use(frame->pixels());          // read-only, straight from shared memory
//   }                                // the frame is released here
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "framebroker/camera_control.hpp"
#include "framebroker/error.hpp"
#include "framebroker/frame.hpp"
#include "framebroker/options.hpp"
#include "framebroker/publisher.hpp"
#include "framebroker/runtime.hpp"
#include "framebroker/status.hpp"
#include "framebroker/subscription.hpp"

namespace framebroker {

class Client {
 public:
  // Connects and says hello. Throws Error(BrokerNotRunning) naming the socket.
  static Client connect(const ConnectOptions& options);

  Subscription subscribe(const std::string& stream, const SubscribeOptions& options = {});
  // Publishes a stream of your own under `stream` (see publisher.hpp). Throws Error(Refused)
  // when the name is taken, the format is not valid or the ring is too large.
  Publisher advertise(const std::string& stream, const PublishOptions& options);
  // slots_of: also fetch that stream's slot map (Status::slot_map).
  Status status(const std::string& slots_of = {});
  CameraControl camera(const std::string& name) { return CameraControl(core_, name); }
  // The GenICam devices the broker can open now, as its Aravis finds them (what
  // `fbctl cameras --discover` lists). The broker scans on a thread of its own, so frames keep
  // flowing meanwhile; this call waits for the scan, a second or more on a GigE network.
  // include_fake: also Aravis' simulated camera Fake_1.
  std::vector<DeviceInfo> discover_cameras(bool include_fake = false);

  const std::string& socket_path() const;
  const std::string& instance() const;
  const std::string& broker_version() const;
  // Hands the broker this client's own counters, one JSON object of at most 8 KiB, replacing
  // the last one: `fbctl status` lists them with the client's name, pid and role (fbbridge
  // reports its link this way). Does not wait for the broker. Throws Error(InvalidArgument)
  // when the text is too long or not a JSON object; errors the broker finds come back through
  // take_async_errors().
  void report_stats(std::string_view json_object);
  // Sends releases that are still batched.
  void flush();
  // Errors the broker reported outside a request (e.g. a bad release).
  std::vector<std::string> take_async_errors();

  explicit Client(std::shared_ptr<detail::Core> core) : core_(std::move(core)) {}

 private:
  std::shared_ptr<detail::Core> core_;
  ConnectOptions connect_options_;  // a Publisher connects again with these
};

}  // namespace framebroker
