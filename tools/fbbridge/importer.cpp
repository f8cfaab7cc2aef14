#include "fbbridge/importer.hpp"

#include <blosc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "fbbridge/bridge_wire.hpp"
#include "fbbridge/zmq_link.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbridge {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t random_u64() {
  static std::mt19937_64 rng(std::random_device{}() ^ uint64_t(realtime_ns()) ^ ::getpid());
  uint64_t v;
  do v = rng();
  while (v == 0);
  return v;
}

struct Format {
  uint32_t width = 0, height = 0, stride = 0;
  meta::PixelType pixel_type = meta::PixelType::Mono8;
  uint8_t bit_depth = 0;
  bool operator==(const Format&) const = default;
};

struct ImportStream {
  std::optional<Publisher> pub;
  Format format;
  bool have_seq = false;
  uint64_t last_seq = 0;
};

class Importer {
 public:
  Importer(const ImportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd)
      : o_(o),
        c_(c),
        stop_(stop),
        wake_fd_(wake_fd),
        dealer_(ctx_.get(), ZMQ_DEALER),
        client_(Client::connect(o.local)),
        importer_id_(random_u64()) {
    dealer_.set(ZMQ_MAXMSGSIZE, o.max_message_mb * 1024 * 1024);
    dealer_.set(ZMQ_RCVHWM, 10000);
    dealer_.set(ZMQ_SNDHWM, 1000);
    set_link_options(dealer_);
    if (!o.curve_client_key.empty()) {
      if (o.curve_server_public.empty())
        throw std::runtime_error("--curve-client-key needs --curve-server-public");
      curve_client(dealer_, read_key_file(o.curve_client_key, true),
                   read_key_file(o.curve_server_public, false).public_key);
    }
    monitor_.emplace(ctx_.get(), dealer_, "import",
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    if (zmq_connect(dealer_.get(), o.connect.c_str()) != 0)
      throw std::runtime_error("cannot connect " + o.connect + ": " + zmq_strerror(zmq_errno()));
    if (o.curve_client_key.empty())
      spdlog::warn("fbbridge import: the link to {} is UNENCRYPTED (no --curve-client-key)",
                   o.connect);
    else
      spdlog::info("fbbridge import: CURVE to {}", o.connect);
    info_.tags.resize(1);
    info_.tags[0].first = "bridge.remote_realtime_ns";
    name_ = "fbbridge import " + o.prefix + " <- " + o.connect;
  }

  ~Importer() {
    streams_.clear();  // each local stream ends after its last frame
    dealer_.close();
    monitor_.reset();
    ctx_.term();
  }

  int run() {
    auto next_stats = Clock::now() + o_.stats_interval;
    while (!stop_) {
      zmq_pollitem_t items[] = {{dealer_.get(), 0, ZMQ_POLLIN, 0},
                                {monitor_->get(), 0, ZMQ_POLLIN, 0},
                                {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
      if (zmq_poll(items, 3, 100) < 0 && zmq_errno() != EINTR)
        throw std::runtime_error(std::string("zmq_poll: ") + zmq_strerror(zmq_errno()));
      handle_monitor();
      while (!stop_ && receive_one()) {
      }
      keepalive();
      const auto now = Clock::now();
      if (now >= next_stats) {
        const std::string line = stats_.line("import", c_);
        if (o_.stats_interval.count() > 0) spdlog::info("{}", line);
        report_stats();
        next_stats = now + (o_.stats_interval.count() > 0 ? o_.stats_interval : 1000ms);
      }
    }
    return 0;
  }

 private:
  // The broker lists this for `fbctl status` (docs/fbbridge.md, "Counters").
  void report_stats() {
    nlohmann::json streams = nlohmann::json::array();
    for (const auto& [name, st] : streams_) streams.push_back(o_.prefix + name);
    try {
      client_.report_stats(stats_.report(
          "import", c_, {{"peer", o_.connect}, {"prefix", o_.prefix}, {"stream_names", streams}}));
    } catch (const Error& e) {
      spdlog::debug("fbbridge import: stats not reported: {}", e.what());
    }
  }

  void handle_monitor() {
    Monitor::Event e;
    while (monitor_->next(e)) {
      if (e.id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        // A new connection: a new session, so the exporter forgets what the old one had in
        // flight (it is lost with the old connection).
        session_ = random_u64();
        received_ = 0;
        build_hello(fbb_, importer_id_, session_, o_.window, name_);
        send_bytes(dealer_.get(), fbb_.GetBufferPointer(), fbb_.GetSize(), ZMQ_DONTWAIT);
        send_credit();
        ++c_.sessions;
        c_.link = LinkState::Up;
        spdlog::info("fbbridge import: connected to {} (session {:016x}, window {})", e.address,
                     session_, o_.window);
      } else if (e.id == ZMQ_EVENT_DISCONNECTED) {
        ++c_.disconnects;
        c_.link = LinkState::Down;
        spdlog::warn("fbbridge import: the link to {} is down; reconnecting (back-off {}..{} ms)",
                     e.address, kReconnectIvlMs, kReconnectIvlMaxMs);
      } else {
        spdlog::error("fbbridge import: {} with {} ({})", event_name(e.id), e.address, e.value);
      }
    }
  }

  void send_credit() {
    build_credit(fbb_, session_, received_, o_.window);
    send_bytes(dealer_.get(), fbb_.GetBufferPointer(), fbb_.GetSize(), ZMQ_DONTWAIT);
    last_credit_ = Clock::now();
  }

  // Every 250 ms: a Credit tells the exporter this importer is alive (it drops silent peers).
  void keepalive() {
    if (session_ != 0 && Clock::now() - last_credit_ >= 250ms) send_credit();
  }

  // One message; false when none is waiting.
  bool receive_one() {
    if (!header_.recv(dealer_.get())) return false;
    ++received_;  // every frame message counts against the window, a refused one too
    if (!header_.more()) {
      bad("a one-part message (a frame is a header and pixels)");
      send_credit();
      return true;
    }
    pixels_.recv(dealer_.get());
    if (pixels_.more()) {
      drain_parts(dealer_.get());
      bad("a message of more than two parts");
      send_credit();
      return true;
    }
    const auto parsed = parser_.parse(header_.bytes());
    const bridge::FrameHeader* h = parsed.message ? parsed.message->body_as_FrameHeader() : nullptr;
    if (!h) {
      bad(parsed.message ? "a message that is not a frame" : parsed.error);
    } else if (auto err = check_pixels(*h, pixels_.bytes().size()); !err.empty()) {
      bad(err);
    } else {
      publish(*h, pixels_.bytes());
    }
    send_credit();
    return true;
  }

  void publish(const bridge::FrameHeader& h, std::span<const std::byte> px) {
    const std::string_view name = h.stream()->string_view();
    auto it = streams_.find(name);
    if (it == streams_.end()) it = streams_.emplace(std::string(name), ImportStream{}).first;
    auto& s = it->second;
    const Format f{h.width(), h.height(), h.stride(), h.pixel_type(), h.bit_depth()};
    if (!s.pub || s.format != f) {
      if (!advertise(it->first, s, f)) return;
    }
    // Gaps: the remote seqs skipped, upstream (missed at the exporter's broker) or on the wire.
    if (s.have_seq && h.seq() > s.last_seq + 1) {
      const uint64_t n = h.seq() - s.last_seq - 1;
      c_.gaps += n;
      ++c_.gap_events;
      spdlog::warn("fbbridge import: '{}' skipped {} remote frame(s) (seq {}..{})", name, n,
                   s.last_seq + 1, h.seq() - 1);
    } else if (s.have_seq && h.seq() <= s.last_seq) {
      spdlog::warn("fbbridge import: '{}' seq went back from {} to {} (remote broker restarted?)",
                   name, s.last_seq, h.seq());
    }
    s.have_seq = true;
    s.last_seq = h.seq();
    std::optional<Loan> loan;
    while (!stop_ && !(loan = s.pub->loan(100ms))) keepalive();  // local subscribers behind
    if (!loan) return;
    auto dst = loan->pixels();
    if (h.raw_bytes() > dst.size()) {
      bad("a frame larger than its slot");
      return;  // the loan goes back unpublished
    }
    if (h.compressed()) {
      const int n = blosc_decompress_ctx(px.data(), dst.data(), dst.size(), 1);
      if (n < 0 || uint64_t(n) != h.raw_bytes()) {
        bad("'" + std::string(name) + "' seq " + std::to_string(h.seq()) +
            ": the compressed pixels do not decompress to " + std::to_string(h.raw_bytes()) +
            " bytes");
        return;
      }
    } else {
      std::memcpy(dst.data(), px.data(), px.size());
    }
    // Provenance names the origin: the remote frame's own source when it has one.
    info_.camera_frame_id = h.camera_frame_id();
    info_.hw_timestamp_ns.reset();
    if (h.has_hw_timestamp()) info_.hw_timestamp_ns = h.hw_timestamp_ns();
    info_.exposure_us = h.exposure_us();
    if (h.source_seq() >= 0 && h.source_stream() && h.source_stream()->size() > 0) {
      info_.source_stream.assign(h.source_stream()->c_str(), h.source_stream()->size());
      info_.source_seq = h.source_seq();
    } else {
      info_.source_stream.assign(name.data(), name.size());
      info_.source_seq = int64_t(h.seq());
    }
    char buf[24];
    std::snprintf(buf, sizeof buf, "%" PRIu64, h.realtime_ns());
    info_.tags[0].second.assign(buf);
    info_.bytes = h.raw_bytes();
    loan->commit(info_);
    ++c_.frames;
    c_.bytes += px.size();
    c_.raw_bytes += h.raw_bytes();
    if (h.realtime_ns() > 0) c_.note_lag((realtime_ns() - int64_t(h.realtime_ns())) / 1000);
  }

  bool advertise(const std::string& remote, ImportStream& s, const Format& f) {
    const std::string local = o_.prefix + remote;
    if (s.pub) {
      spdlog::info("fbbridge import: '{}' changed format; advertising '{}' again", remote, local);
      s.pub.reset();
    }
    PublishOptions po;
    po.width = f.width;
    po.height = f.height;
    po.stride = f.stride;
    po.pixel_type = framebroker::to_string(f.pixel_type);
    po.bit_depth = f.bit_depth;
    po.slots = o_.slots;
    // The old stream's name is free once the broker handled its end: retry a moment.
    for (int attempt = 0; attempt < 20 && !stop_; ++attempt) {
      try {
        s.pub.emplace(client_.advertise(local, po));
        s.format = f;
        c_.streams = uint32_t(streams_.size());
        spdlog::info("fbbridge import: publishing '{}' as '{}' ({}x{} {}, stride {})", remote,
                     local, f.width, f.height, po.pixel_type, f.stride);
        return true;
      } catch (const Error& e) {
        if (e.code() != Errc::Refused || attempt == 19) {
          if (e.code() == Errc::BrokerLost || e.code() == Errc::BrokerNotRunning) throw;
          bad("cannot publish '" + local + "': " + e.what());
          return false;
        }
        std::this_thread::sleep_for(50ms);
      }
    }
    return false;
  }

  void bad(const std::string& what) {
    const auto n = ++c_.bad_messages;
    if (n <= 10 || n % 1000 == 0)
      spdlog::error("fbbridge import: refused {} (refused so far: {})", what, n);
  }

  const ImportOptions& o_;
  BridgeCounters& c_;
  std::atomic<bool>& stop_;
  int wake_fd_;
  ZmqContext ctx_;
  ZmqSocket dealer_;
  std::optional<Monitor> monitor_;
  Client client_;
  std::map<std::string, ImportStream, std::less<>> streams_;
  uint64_t importer_id_, session_ = 0, received_ = 0;
  Clock::time_point last_credit_{};
  flatbuffers::FlatBufferBuilder fbb_{256};
  AlignedParser parser_;
  ZmqMsg header_, pixels_;
  CommitInfo info_;
  std::string name_;
  StatsLine stats_;
};

}  // namespace

int run_importer(const ImportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd) {
  Importer i(o, c, stop, wake_fd);
  return i.run();
}

}  // namespace framebroker::fbbridge
