// GenICam cameras (GigE Vision, USB3 Vision) through Aravis 0.8.
//
// Zero copy: the broker's shared-memory slots are the Aravis stream buffers
// (arv_buffer_new_full over a slot lent with FrameSink::loan_ahead), so the device, or Aravis'
// own receive thread, writes the pixels where subscribers read them. A filled buffer is
// committed as is; its slot goes back to the device queue only once every holder released it
// and the adapter lends it again.
//
// Properties: Width, Height, OffsetX, OffsetY (the ROI), PixelType (Mono8, Mono10, Mono12 in
// u16, Mono16, RGB8), Exposure (ms), FrameRate, Binning, Gain when the camera has them, and
// genicam.<Feature> for any other feature of the node map (type and limits from it); the mirror
// lives in genicam_properties.cpp.
//
// A camera that disconnects puts the adapter in an error state (last_error()); a background
// thread reopens it with back-off and, if it was running, starts it again.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cameras/camera.hpp"

namespace framebroker::cameras {

struct AravisDevice {
  std::string id, physical_id, vendor, model, serial, protocol, address;
};

// The devices Aravis sees now (GigE discovery, USB3; the in-process Fake interface too when
// with_fake is set). Blocks for the scan (about a second on a GigE network); safe to call from
// any thread, one scan or device open at a time.
std::vector<AravisDevice> discover_aravis_devices(bool with_fake = false);

class AravisCamera final : public Camera {
 public:
  // Opens `device`: an Aravis id (vendor-serial, e.g. "Basler-21234567", or "Fake_1"), a
  // user id, or a GigE camera's IP address. Throws CameraError naming the device and the cause.
  AravisCamera(std::string name, std::string device);
  ~AravisCamera() override;

  const std::string& name() const override { return name_; }
  std::string driver() const override { return "aravis"; }
  PropertySet& properties() override;
  std::string get(const std::string& prop) const override;
  void set(const std::string& prop, const std::string& value) override;
  FrameFormat format() const override;
  void start(FrameSink& sink, std::optional<uint64_t> frames) override;
  void stop() override;
  void snap(FrameSink& sink) override;
  bool running() const override { return running_.load(); }
  uint64_t frames_committed() const override { return committed_.load(); }
  std::string last_error() const override;

  // Where the adapter's last committed frame was written (tests check zero copy with it).
  const void* last_buffer_data() const { return last_data_.load(); }

 private:
  struct Device;  // the Aravis objects (aravis_camera.cpp)

  void open();
  void start_locked(FrameSink& sink, std::optional<uint64_t> frames);
  void halt_locked();
  void remember(const std::string& prop, const std::string& value);
  void replay_settings();
  void read_properties();
  FrameFormat format_unlocked() const;
  void acquire(FrameSink& sink, std::optional<uint64_t> frames);
  void on_control_lost();
  void reconnect_loop();
  void set_error(const std::string& e);

  std::string name_, device_id_;
  mutable std::mutex mu_;  // the device and the property mirror
  std::unique_ptr<Device> dev_;
  PropertySet props_;

  std::mutex life_mu_;   // start, stop and the reconnect's restart, one at a time
  bool wanted_ = false;  // running, as far as the broker asked (a reconnect restarts it)
  std::vector<std::pair<std::string, std::string>> applied_;  // set() since open, in order
  std::atomic<bool> running_{false}, stop_{false}, lost_{false};
  std::atomic<uint64_t> committed_{0};
  std::atomic<const void*> last_data_{nullptr};
  std::thread thread_;
  FrameSink* sink_ = nullptr;  // while running, for a restart after a reconnect
  std::optional<uint64_t> frames_left_;

  mutable std::mutex error_mu_;
  std::string error_;
  std::thread reconnect_;
  std::mutex reconnect_mu_;
  std::condition_variable reconnect_cv_;
  bool closing_ = false;
};

}  // namespace framebroker::cameras
