// One browser tab's frames. A thread with its own broker connection and a `latest`
// subscription takes a frame only after the tab has asked for one (it drew the last), shrinks
// and maps it to 8-bit, releases the slot, and hands the message over. A slow tab costs this
// pump frames (counted as conflated), never the camera or another subscriber. When the broker
// goes away the pump says so and reconnects.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <thread>

#include "fbview/render.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbview {

// How raw values become display grey levels.
struct Style {
  AutoContrast mode = AutoContrast::MinMax;
  Levels manual;
  double gamma = 1;
};

struct ViewRequest {
  uint32_t max_width = 1024, max_height = 1024;
  Region region;  // empty: the whole frame
  Style style;
  // Show one channel of a sequence only: a channel name of the sequence, or its index on the c
  // axis ("1"). Empty: every frame. Frames of other channels are skipped; frames outside a
  // sequence, or of one without a c axis, are shown.
  std::string channel;
};

class FramePump {
 public:
  // Called on the pump's thread: a frame (binary) or a status line (text).
  using Send = std::function<void(std::string message, bool binary)>;

  FramePump(ConnectOptions connect, std::string stream, Send send);
  ~FramePump();  // stops and joins
  FramePump(const FramePump&) = delete;
  FramePump& operator=(const FramePump&) = delete;

  // The tab drew its frame and wants the next one.
  void request(const ViewRequest& r);
  // The tab changed levels or gamma: the last frame sent is sent again in that style (so a
  // stopped camera or a paused tab still sees the change), and the next frame has it too.
  void restyle(const Style& s);
  // The raw value at source pixel (x, y) of the last frame sent, if it showed that pixel.
  std::optional<double> probe(uint32_t x, uint32_t y);
  void stop();
  // The thread has ended: nothing more will be sent.
  bool finished() const { return finished_.load(); }
  // At exit: stops every pump and waits (up to `limit`) until their threads have ended.
  static void stop_all(std::chrono::milliseconds limit);

 private:
  void run();
  bool connect();
  void serve();
  std::optional<Frame> take_newest(const std::string& channel);
  bool shows(const Frame& f, const std::string& channel);  // channel filter
  bool interrupted();                                      // stopped, or a restyle waits
  void refresh_stream_status();                            // at most once a second
  int64_t latest_seq();                                    // the stream's newest seq, asked now
  std::string render(const Frame& f, const ViewRequest& r);
  std::string compose(const Style& style, bool restyled);  // of scaled_ and shown_
  nlohmann::json sequence_json() const;                    // of shown_
  void say_status(bool connected, const std::string& message);
  bool sleep_for(std::chrono::milliseconds d);  // false: stopped

  ConnectOptions connect_;
  std::string stream_;
  Send send_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::optional<ViewRequest> pending_;
  std::optional<Style> restyle_;

  // The pump thread's own.
  std::optional<Client> client_;
  std::optional<Subscription> sub_;
  std::optional<bool> connected_;  // what the tab was last told
  std::optional<uint64_t> last_seq_;
  uint64_t conflated_ = 0;
  double camera_fps_ = 0;
  uint64_t dropped_ = 0;
  int64_t latest_seq_ = -1;
  std::chrono::steady_clock::time_point status_at_{};
  std::vector<uint8_t> mapped_;
  uint64_t skipped_ = 0;  // frames of other channels let go since the last one rendered
  // The channel filter resolved for one sequence, so a frame costs a comparison only.
  struct ChannelChoice {
    uint64_t sequence_id = 0;
    std::string filter;
    std::optional<uint32_t> index;  // nullopt: the filter names no channel of it (all shown)
  } choice_;

  // The last frame sent, shrunk, is all a restyle needs: no copy of the frame, no slot held.
  struct Shown {
    bool valid = false;
    uint64_t seq = 0, camera_frame_id = 0;
    uint64_t mono_ns = 0;
    uint32_t source_width = 0, source_height = 0, bit_depth = 0;
    const char* pixel_type = "";
    std::shared_ptr<const Sequence> sequence;  // nullptr: not in one
    int64_t position = -1;
    std::array<int64_t, 4> index{};  // on t, p, c, z (SequenceSpec::kAxisLetters); -1: no axis
    std::string channel_filter;
  } shown_;
  Histogram histogram_;   // of scaled_
  std::mutex scaled_mu_;  // probe() reads the last frame from the socket thread
  Scaled scaled_;

  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace framebroker::fbview
