#include "cameras/aravis/aravis_camera.hpp"

#include <arv.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "cameras/aravis/genicam_properties.hpp"

namespace framebroker::cameras {
namespace {

using namespace std::chrono_literals;

using genicam::take_error;

// Aravis keeps its interfaces' device lists in globals, unlocked: a scan (the broker's discovery
// thread) and opening a device (the socket thread, a reconnect thread) take turns.
std::mutex& aravis_system_mutex() {
  static std::mutex m;
  return m;
}

uint8_t bit_depth(PixelType t) {
  switch (t) {
    case PixelType::Mono10:
      return 10;
    case PixelType::Mono12:
      return 12;
    case PixelType::Mono8:
    case PixelType::RGB8:
      return 8;
    default:
      return 16;
  }
}

const char* status_text(ArvBufferStatus s) {
  switch (s) {
    case ARV_BUFFER_STATUS_MISSING_PACKETS:
      return "aravis: missing packets";
    case ARV_BUFFER_STATUS_WRONG_PACKET_ID:
      return "aravis: wrong packet id";
    case ARV_BUFFER_STATUS_SIZE_MISMATCH:
      return "aravis: size mismatch";
    case ARV_BUFFER_STATUS_FILLING:
      return "aravis: frame incomplete";
    case ARV_BUFFER_STATUS_ABORTED:
      return "aravis: aborted";
    case ARV_BUFFER_STATUS_TIMEOUT:
      return "aravis: timeout";
    default:
      return "aravis: buffer failed";
  }
}

constexpr int kQueuedBuffers = 8;

}  // namespace

struct AravisCamera::Device {
  ArvCamera* camera = nullptr;
  ArvStream* stream = nullptr;
  gulong lost_handler = 0;
  // Per slot of the current generation, grown on first use: its ArvBuffer (user data: the slot
  // index) and the loan while it is queued. Nothing is allocated per frame.
  std::vector<ArvBuffer*> buffers;
  std::vector<std::optional<Loan>> queued;
  uint32_t gen = 0;
  int queued_count = 0;

  void release_buffers() {
    for (ArvBuffer* b : buffers)
      if (b) g_object_unref(b);
    buffers.clear();
    queued.clear();
    queued_count = 0;
  }

  ~Device() {
    if (stream) g_object_unref(stream);
    release_buffers();
    if (camera) {
      if (lost_handler) g_signal_handler_disconnect(arv_camera_get_device(camera), lost_handler);
      g_object_unref(camera);
    }
  }
  ArvDevice* device() const { return arv_camera_get_device(camera); }
};

std::vector<AravisDevice> discover_aravis_devices(bool with_fake) {
  std::lock_guard lock(aravis_system_mutex());
  if (with_fake) arv_enable_interface("Fake");
  arv_update_device_list();
  std::vector<AravisDevice> out;
  for (unsigned i = 0; i < arv_get_n_devices(); ++i) {
    auto s = [](const char* p) { return std::string(p ? p : ""); };
    AravisDevice d{s(arv_get_device_id(i)),         s(arv_get_device_physical_id(i)),
                   s(arv_get_device_vendor(i)),     s(arv_get_device_model(i)),
                   s(arv_get_device_serial_nbr(i)), s(arv_get_device_protocol(i)),
                   s(arv_get_device_address(i))};
    // The Fake interface stays enabled once anything in this process used it (a Fake camera, an
    // earlier scan), so it is filtered here rather than left out of the scan.
    if (!with_fake && d.protocol == "Fake") continue;
    out.push_back(std::move(d));
  }
  return out;
}

AravisCamera::AravisCamera(std::string name, std::string device)
    : name_(std::move(name)), device_id_(std::move(device)) {
  props_.add({"Device", PropertyType::String, device_id_, "", {}, {}, {}, true, false});
  open();
}

AravisCamera::~AravisCamera() {
  {
    std::lock_guard lock(reconnect_mu_);
    closing_ = true;
  }
  reconnect_cv_.notify_all();
  if (reconnect_.joinable()) reconnect_.join();
  stop();
}

void AravisCamera::open() {
  GError* err = nullptr;
  auto dev = std::make_unique<Device>();
  {
    std::lock_guard system(aravis_system_mutex());
    if (device_id_.rfind("Fake", 0) == 0) arv_enable_interface("Fake");
    dev->camera = arv_camera_new(device_id_.c_str(), &err);
  }
  if (!dev->camera)
    throw CameraError("camera '" + name_ + "': cannot open device '" + device_id_ + "': " +
                      take_error(err, "not found (fbctl cameras --discover lists the ids)"));
  dev->lost_handler = g_signal_connect_swapped(
      dev->device(), "control-lost",
      G_CALLBACK(+[](AravisCamera* self) { self->on_control_lost(); }), this);
  std::lock_guard lock(mu_);
  dev_ = std::move(dev);
  read_properties();
}

// Mirrors the device's values into props_ (the device may round what it was given).
void AravisCamera::read_properties() {
  genicam::read_named(dev_->camera, props_);
}

PropertySet& AravisCamera::properties() {
  return props_;
}

std::string AravisCamera::get(const std::string& prop) const {
  std::lock_guard lock(mu_);
  if (!genicam::is_feature(prop)) return props_.get(prop);
  // The mirror keeps the last value read, for `fbctl props`.
  return genicam::get_feature(dev_->device(), const_cast<PropertySet&>(props_), name_, prop);
}

void AravisCamera::set(const std::string& prop, const std::string& value) {
  std::lock_guard lock(mu_);
  if (genicam::is_feature(prop)) {
    genicam::set_feature(dev_->device(), name_, prop, value, running_);
    read_properties();  // a feature may move a named property (Width, AcquisitionFrameRate, ...)
  } else {
    genicam::set_named(dev_->camera, props_, prop, value, running_);
  }
  remember(prop, value);  // only what the device took is given back after a reconnect
}

void AravisCamera::remember(const std::string& prop, const std::string& value) {
  std::erase_if(applied_, [&](const auto& p) { return p.first == prop; });
  applied_.emplace_back(prop, value);
}

FrameFormat AravisCamera::format() const {
  std::lock_guard lock(mu_);
  return format_unlocked();
}

FrameFormat AravisCamera::format_unlocked() const {
  FrameFormat f;
  f.width = uint32_t(props_.get_int("Width"));
  f.height = uint32_t(props_.get_int("Height"));
  f.pixel_type = parse_pixel_type(props_.get("PixelType")).value_or(PixelType::Mono8);
  f.bit_depth = bit_depth(f.pixel_type);
  f.stride = uint32_t(f.width * bytes_per_pixel(f.pixel_type));
  f.roi_x = uint32_t(props_.get_int("OffsetX"));
  f.roi_y = uint32_t(props_.get_int("OffsetY"));
  f.roi_w = f.width;
  f.roi_h = f.height;
  if (props_.has("Binning")) f.binning_x = f.binning_y = uint8_t(props_.get_int("Binning"));
  return f;
}

void AravisCamera::start(FrameSink& sink, std::optional<uint64_t> frames) {
  std::lock_guard life(life_mu_);
  start_locked(sink, frames);
}

void AravisCamera::start_locked(FrameSink& sink, std::optional<uint64_t> frames) {
  if (running_) throw CameraError("camera '" + name_ + "' is already running; stop it first");
  if (thread_.joinable()) thread_.join();  // a finished run (frames reached)
  if (lost_) throw CameraError("camera '" + name_ + "': " + last_error());
  if (!parse_pixel_type(get("PixelType")))
    throw CameraError("camera '" + name_ + "': pixel format " + get("PixelType") +
                      " is not supported (Mono8, Mono10, Mono12, Mono16, RGB8)");
  GError* err = nullptr;
  {
    std::lock_guard lock(mu_);
    const size_t payload = arv_camera_get_payload(dev_->camera, &err);
    g_clear_error(&err);
    if (payload > format_unlocked().frame_bytes())
      throw CameraError("camera '" + name_ + "' sends " + std::to_string(payload) +
                        "-byte buffers for " + std::to_string(format_unlocked().frame_bytes()) +
                        "-byte frames (chunk data?); turn genicam.ChunkModeActive off");
    dev_->stream = arv_camera_create_stream(dev_->camera, nullptr, nullptr, &err);
    if (!dev_->stream)
      throw CameraError("camera '" + name_ + "': cannot open a stream: " + take_error(err));
    arv_camera_set_acquisition_mode(dev_->camera, ARV_ACQUISITION_MODE_CONTINUOUS, &err);
    g_clear_error(&err);
  }
  stop_ = false;
  running_ = true;
  wanted_ = true;
  sink_ = &sink;
  frames_left_ = frames;
  thread_ = std::thread([this, &sink, frames] { acquire(sink, frames); });
}

// The adapter's thread: keeps the device's queue full of lent slots, commits filled ones.
void AravisCamera::acquire(FrameSink& sink, std::optional<uint64_t> frames) {
  ArvStream* stream;
  ArvCamera* camera;
  {
    std::lock_guard lock(mu_);
    stream = dev_->stream;
    camera = dev_->camera;
  }
  const FrameFormat fmt = format();
  GError* err = nullptr;
  const size_t payload = arv_camera_get_payload(camera, &err);
  g_clear_error(&err);
  auto top_up = [&] {
    Device& d = *dev_;
    while (d.queued_count < kQueuedBuffers) {
      std::optional<Loan> l = sink.loan_ahead(payload);
      if (!l) return;         // the ring is full: the device has fewer buffers for now
      if (d.gen != l->gen) {  // a new ring generation: only ever between runs
        if (d.queued_count > 0) {
          sink.abort(*l);
          return;
        }
        d.release_buffers();
        d.gen = l->gen;
      }
      if (l->slot >= d.buffers.size()) {
        d.buffers.resize(l->slot + 1, nullptr);
        d.queued.resize(l->slot + 1);
      }
      ArvBuffer*& b = d.buffers[l->slot];
      if (!b)
        b = arv_buffer_new_full(payload, l->data.data(),
                                reinterpret_cast<void*>(uintptr_t(l->slot)), nullptr);
      d.queued[l->slot] = *l;
      ++d.queued_count;
      arv_stream_push_buffer(stream, ARV_BUFFER(g_object_ref(b)));  // the stream takes a ref
    }
  };
  top_up();
  arv_camera_start_acquisition(camera, &err);
  if (err) {
    set_error("cannot start acquisition: " + take_error(err));
    stop_ = true;
  }
  guint64 underruns_seen = 0;
  uint64_t id_high = 0;  // the 16-bit GVSP frame id, widened
  std::optional<uint16_t> last_id;
  uint64_t done = 0;
  while (!stop_ && !lost_ && (!frames || done < *frames)) {
    top_up();
    ArvBuffer* b = arv_stream_timeout_pop_buffer(stream, 100'000);
    if (!b) continue;
    g_object_unref(b);  // the stream's ref; ours stays in dev_->buffers
    const auto slot = size_t(reinterpret_cast<uintptr_t>(arv_buffer_get_user_data(b)));
    if (slot >= dev_->queued.size() || !dev_->queued[slot]) continue;  // not ours (cannot happen)
    const Loan loan = *dev_->queued[slot];
    dev_->queued[slot].reset();
    --dev_->queued_count;
    // GVSP ids are 16-bit, wrap, and skip 0: widen by counting wraps.
    const uint16_t id = uint16_t(arv_buffer_get_frame_id(b));
    if (last_id && id < *last_id) id_high += 0x10000;
    // Ids the device sent but no buffer came back for are lost frames. Aravis counts an
    // underrun per packet that found no buffer, so it only says *why*: no free slot.
    guint64 completed = 0, failures = 0, underruns = 0;
    arv_stream_get_statistics(stream, &completed, &failures, &underruns);
    const bool starved = underruns > underruns_seen;
    underruns_seen = underruns;
    if (last_id) {
      const uint64_t prev = (id < *last_id ? id_high - 0x10000 : id_high) + *last_id;
      const uint64_t now = id_high + id;
      // 0 is never a GVSP id: crossing the wrap skips it.
      uint64_t missing = now > prev + 1 ? now - prev - 1 : 0;
      if (id < *last_id && missing > 0) --missing;
      for (uint64_t i = 0; i < std::min<uint64_t>(missing, 1'000'000); ++i) {
        if (starved) {
          sink.drop_ring_full();
        } else {
          sink.drop("aravis: frame never arrived");
        }
      }
    }
    last_id = id;
    if (arv_buffer_get_status(b) != ARV_BUFFER_STATUS_SUCCESS) {
      sink.abort(loan);
      sink.drop(status_text(arv_buffer_get_status(b)));
      continue;
    }
    FrameInfo info;
    info.camera_frame_id = id_high + id;
    info.hw_timestamp_ns = arv_buffer_get_timestamp(b);
    info.format = fmt;
    last_data_ = loan.data.data();
    sink.commit(loan, info);
    ++committed_;
    ++done;
  }
  arv_camera_stop_acquisition(camera, &err);
  g_clear_error(&err);
  {
    std::lock_guard lock(mu_);
    // Only once the stream (and its thread) is gone may the slots it still had go back: until
    // then it could write into them.
    g_object_unref(dev_->stream);
    dev_->stream = nullptr;
    for (const auto& loan : dev_->queued)
      if (loan) sink.abort(*loan);
    dev_->release_buffers();
  }
  running_ = false;
}

void AravisCamera::stop() {
  std::lock_guard life(life_mu_);
  wanted_ = false;  // also: a reconnect in progress does not restart it
  halt_locked();
  sink_ = nullptr;
}

void AravisCamera::halt_locked() {
  stop_ = true;
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void AravisCamera::snap(FrameSink& sink) {
  if (running_) throw CameraError("camera '" + name_ + "' is running; stop it before snap");
  start(sink, 1);  // the frame arrives on the adapter's thread, like any other
}

std::string AravisCamera::last_error() const {
  std::lock_guard lock(error_mu_);
  return error_;
}

void AravisCamera::set_error(const std::string& e) {
  std::lock_guard lock(error_mu_);
  error_ = e;
}

// Aravis' heartbeat thread: the device stopped answering.
void AravisCamera::on_control_lost() {
  if (lost_.exchange(true)) return;
  set_error("device '" + device_id_ + "' lost (control-lost); reconnecting");
  std::lock_guard lock(reconnect_mu_);
  if (closing_) return;
  if (reconnect_.joinable()) reconnect_.join();  // the last reconnect, finished
  reconnect_ = std::thread([this] { reconnect_loop(); });
}

void AravisCamera::reconnect_loop() {
  {
    std::lock_guard life(life_mu_);
    halt_locked();
  }
  auto wait = 1s;
  for (;;) {
    {
      std::unique_lock lock(reconnect_mu_);
      if (reconnect_cv_.wait_for(lock, wait, [&] { return closing_; })) return;
    }
    try {
      open();
      replay_settings();
      lost_ = false;
      set_error("");
      std::lock_guard life(life_mu_);
      if (wanted_ && sink_) start_locked(*sink_, frames_left_);
      return;
    } catch (const std::exception& e) {
      set_error("device '" + device_id_ + "' lost; reopening failed (" + e.what() +
                "); next try in " + std::to_string(std::min<long>(wait.count() * 2, 30)) + " s");
      wait = std::min(wait * 2, std::chrono::seconds(30));
    }
  }
}

// A reopened device has its power-on settings: give it back the ones set since we opened it.
void AravisCamera::replay_settings() {
  std::vector<std::pair<std::string, std::string>> settings;
  {
    std::lock_guard lock(mu_);
    settings = applied_;
  }
  for (const auto& [prop, value] : settings) {
    try {
      set(prop, value);
    } catch (const std::exception& e) {
      set_error("after reconnecting, " + prop + " = " + value + " failed: " + e.what());
    }
  }
}

}  // namespace framebroker::cameras
