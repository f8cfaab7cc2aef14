// DiscoverRequest: the GenICam devices this broker could open (fbctl cameras --discover). The
// broker owns the cameras, and under the system service only its user may reach the devices, so
// tools ask it rather than scan themselves.
//
// Aravis' scan waits for GigE answers (a second or more). On the socket thread, under the state
// lock, that would stall every delivery, so it runs on a thread of its own. That thread sends the
// reply the way a camera thread delivers: under the state lock, to the connection if it is still
// open.
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <thread>

#include "broker.hpp"
#include "cameras/aravis/aravis_camera.hpp"

namespace framebroker::daemon {

namespace {

// Scans wait their turn (Aravis allows one at a time); beyond this many the request is refused
// rather than queued without bound.
constexpr size_t kMaxWaiting = 8;

flatbuffers::Offset<wire::DeviceInfo> device_info(flatbuffers::FlatBufferBuilder& fbb,
                                                  const cameras::AravisDevice& d) {
  return wire::CreateDeviceInfoDirect(fbb, d.id.c_str(), d.physical_id.c_str(), d.vendor.c_str(),
                                      d.model.c_str(), d.serial.c_str(), d.protocol.c_str(),
                                      d.address.c_str());
}

}  // namespace

struct Broker::Discovery {
  struct Job {
    std::weak_ptr<Connection> connection;
    uint32_t rid;
    bool include_fake;
  };

  explicit Discovery(std::mutex& state) : state_(state) {}
  ~Discovery() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();  // a scan under way finishes first
  }

  // False when too many requests wait already.
  bool add(Job job) {
    std::lock_guard lock(mu_);
    if (jobs_.size() >= kMaxWaiting) return false;
    jobs_.push_back(std::move(job));
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    cv_.notify_one();
    return true;
  }

 private:
  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return closing_ || !jobs_.empty(); });
        if (closing_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      if (job.connection.expired()) continue;  // the client left while it waited
      flatbuffers::FlatBufferBuilder fbb;
      size_t found = 0;
      try {
        const auto devices = cameras::discover_aravis_devices(job.include_fake);
        std::vector<flatbuffers::Offset<wire::DeviceInfo>> list;
        for (const auto& d : devices) list.push_back(device_info(fbb, d));
        found = list.size();
        wire::finish(fbb, job.rid, wire::Message::DiscoverReply,
                     wire::CreateDiscoverReply(fbb, fbb.CreateVector(list)));
      } catch (const std::exception& e) {
        spdlog::error("camera discovery failed: {}", e.what());
        fbb.Clear();
        wire::build_error(fbb, job.rid, wire::ErrorCode::Internal,
                          std::string("camera discovery failed: ") + e.what());
      }
      std::lock_guard state(state_);
      auto c = job.connection.lock();
      if (!c || !c->open()) continue;
      spdlog::info("client {} ({}): discovery found {} device(s)", c->id(), c->client_name(),
                   found);
      c->send(fbb);
    }
  }

  std::mutex& state_;
  std::mutex mu_;  // guards jobs_ and closing_
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool closing_ = false;
  std::thread thread_;  // started with the first request
};

void Broker::on_discover(Connection& c, uint32_t rid, const wire::DiscoverRequest& m) {
  if (!discovery_) discovery_ = std::make_shared<Discovery>(state_);
  if (!discovery_->add({c.weak_from_this(), rid, m.include_fake()}))
    c.send_error(rid, wire::ErrorCode::CameraBusy,
                 std::to_string(kMaxWaiting) +
                     " camera discoveries are waiting already; try again in a few seconds");
}

}  // namespace framebroker::daemon
