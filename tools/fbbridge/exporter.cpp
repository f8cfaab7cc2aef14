#include "fbbridge/exporter.hpp"

#include <blosc.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "fbbridge/bridge_wire.hpp"
#include "fbbridge/zmq_link.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbbridge {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Records ZeroMQ is done with, from its I/O thread to the exporter's thread. The free callback
// must not release the Frame itself: Core::release may flush releases to the broker socket (a
// blocking send under the client's send mutex), which would stall ZeroMQ's I/O thread and with
// it every peer's transfers; and a Record is reused only by the exporter's thread. So the
// callback only appends the record's index under a mutex (held for a push_back into reserved
// capacity: never contended for long, never allocating) and wakes the exporter through an
// eventfd; the exporter releases the frame. A mutex rather than a lock-free ring: the callback
// may also run on the exporter's own thread (zmq_msg_close of the last reference), and there
// are at most a few thousand a second.
class DoneQueue {
 public:
  explicit DoneQueue(int wake_fd) : wake_fd_(wake_fd) {}
  void reserve(size_t n) {
    std::lock_guard lock(mu_);
    items_.reserve(n);
  }
  void push(uint32_t index) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(index);
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }
  void take(std::vector<uint32_t>& out) {
    std::lock_guard lock(mu_);
    out.insert(out.end(), items_.begin(), items_.end());
    items_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<uint32_t> items_;
  int wake_fd_;
};

// One frame on its way: held from next() until ZeroMQ has sent (or dropped) every copy.
struct Record {
  uint32_t index = 0;
  DoneQueue* done = nullptr;
  std::optional<Frame> frame;  // (optional: Frame's default constructor needs FrameHandle)
  flatbuffers::FlatBufferBuilder header{1024};
  std::vector<std::byte> zbuf;  // --compress lz4: the compressed pixels (grown once)
  zmq_msg_t pixels;             // the original message; copies go to the peers
  bool open = false;            // `pixels` initialized (header built, pixels ready)
  uint64_t seq = 0;
  uint32_t stream = 0;
  uint32_t sent_to = 0;
  size_t wire_bytes = 0, raw_bytes = 0;
};

void on_zmq_done(void*, void* hint) {
  auto* r = static_cast<Record*>(hint);
  r->done->push(r->index);
}

struct Peer {
  std::string rid;  // ZeroMQ routing id of its current connection
  uint64_t importer_id = 0, session = 0;
  uint64_t sent = 0, acked = 0;
  uint32_t window = 1;
  Clock::time_point heard;
  std::string name;
  std::vector<uint64_t> last_sent;  // latest: per stream, seq + 1 of the last frame it got
  bool has_credit() const { return sent - acked < window; }
};

class Exporter {
 public:
  Exporter(const ExportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd)
      : o_(o),
        c_(c),
        stop_(stop),
        wake_fd_(wake_fd),
        router_(ctx_.get(), ZMQ_ROUTER),
        done_(wake_fd),
        client_(Client::connect(o.connect)),
        window_cap_(std::max(1u, o.max_window)) {
    router_.set(ZMQ_ROUTER_MANDATORY, 1);
    router_.set(ZMQ_SNDHWM, 100000);  // credits bound what is queued, not the HWM
    router_.set(ZMQ_RCVHWM, 10000);
    router_.set(ZMQ_MAXMSGSIZE, int64_t(kMaxControlMessage));
    set_link_options(router_);
    if (!o.curve_server_key.empty()) {
      curve_server(router_, read_key_file(o.curve_server_key, true));
      if (!o.curve_allow.empty()) {
        std::set<std::string> allowed;
        for (const auto& f : o.curve_allow) allowed.insert(read_key_file(f, false).public_key);
        zap_.emplace(ctx_.get(), std::move(allowed));
      }
    }
    monitor_.emplace(ctx_.get(), router_, "export",
                     ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_BIND_FAILED |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    if (zmq_bind(router_.get(), o.bind.c_str()) != 0)
      throw std::runtime_error("cannot bind " + o.bind + ": " + zmq_strerror(zmq_errno()));
    if (o.curve_server_key.empty())
      spdlog::warn(
          "fbbridge export: the link is UNENCRYPTED and unauthenticated (no "
          "--curve-server-key); listening only on {}",
          o.bind);
    else
      spdlog::info("fbbridge export: CURVE on {}; {}", o.bind,
                   zap_ ? std::to_string(o.curve_allow.size()) + " client key(s) allowed"
                        : std::string("any client that knows the server key"));
    subscribe_streams();
  }

  ~Exporter() {
    // Close the socket first: ZeroMQ drops what it still queues and runs the free callbacks;
    // then the frames go back to the broker before the connection ends.
    for (auto& s : streams_) drop_pending(s);
    for (auto& r : pool_)
      if (r->open) close_original(*r);
    router_.close();
    monitor_.reset();
    zap_.reset();
    ctx_.term();  // waits until ZeroMQ has run every free callback
    done_.take(done_batch_);
    for (auto& r : pool_) r->frame.reset();
  }

  int run() {
    auto next_stats = Clock::now() + o_.stats_interval;
    auto next_scan = Clock::now() + 1s;
    std::vector<zmq_pollitem_t> items;
    while (!stop_) {
      items.clear();
      items.push_back({router_.get(), 0, ZMQ_POLLIN, 0});
      items.push_back({nullptr, wake_fd_, ZMQ_POLLIN, 0});
      items.push_back({monitor_->get(), 0, ZMQ_POLLIN, 0});
      if (zap_) items.push_back({zap_->get(), 0, ZMQ_POLLIN, 0});
      if (o_.latest || can_send_every())
        for (auto& s : streams_) items.push_back({nullptr, s.sub.fileno(), ZMQ_POLLIN, 0});
      if (zmq_poll(items.data(), int(items.size()), 100) < 0 && zmq_errno() != EINTR)
        throw std::runtime_error(std::string("zmq_poll: ") + zmq_strerror(zmq_errno()));
      uint64_t drained;
      [[maybe_unused]] auto r = ::read(wake_fd_, &drained, sizeof drained);
      take_done();
      handle_control();
      handle_monitor();
      if (zap_) zap_->handle();
      expire_peers();
      if (o_.latest)
        pump_latest();
      else
        pump_every();
      const auto now = Clock::now();
      if (now >= next_stats) {
        const std::string line = stats_.line("export", c_);
        if (o_.stats_interval.count() > 0) spdlog::info("{}", line);
        report_stats();
        next_stats = now + (o_.stats_interval.count() > 0 ? o_.stats_interval : 1000ms);
      }
      if (now >= next_scan) {
        subscribe_streams();
        next_scan = now + 1s;
      }
    }
    return 0;
  }

 private:
  struct Stream {
    std::string name;
    Subscription sub;
    int32_t pending = -1;  // latest: the newest frame, not yet sent to every peer
    uint32_t bpp = 0;
  };

  // The broker lists this for `fbctl status` (docs/fbbridge.md, "Counters").
  void report_stats() {
    nlohmann::json streams = nlohmann::json::array(), peers = nlohmann::json::array();
    for (const auto& st : streams_) streams.push_back(st.name);
    for (const auto& p : peers_)
      peers.push_back({{"name", p.name},
                       {"in_flight", p.sent - p.acked},
                       {"credits", p.window - std::min<uint64_t>(p.window, p.sent - p.acked)},
                       {"window", p.window}});
    try {
      client_.report_stats(stats_.report("export", c_,
                                         {{"bind", o_.bind},
                                          {"mode", o_.latest ? "latest" : "every"},
                                          {"compress", o_.lz4 ? "lz4" : "none"},
                                          {"stream_names", streams},
                                          {"peer_list", peers}}));
    } catch (const Error& e) {
      spdlog::debug("fbbridge export: stats not reported: {}", e.what());
    }
  }

  void subscribe_streams() {
    std::vector<std::string> want = o_.streams;
    if (want.empty())
      for (const auto& s : client_.status().streams) want.push_back(s.name);
    // Streams whose publisher went away end; they may come back under the same name.
    std::erase_if(streams_, [&](Stream& s) {
      if (!s.sub.ended()) return false;
      drop_pending(s);
      spdlog::info("fbbridge export: stream '{}' ended", s.name);
      return true;
    });
    for (const auto& name : want) {
      if (std::any_of(streams_.begin(), streams_.end(),
                      [&](const Stream& s) { return s.name == name; }))
        continue;
      SubscribeOptions so;
      if (o_.latest) {
        so.mode = Mode::Latest;
        so.window = o_.max_window + 2;  // the credits' frames, the pending one, one arriving
      }
      try {
        auto sub = client_.subscribe(name, so);
        const uint32_t cap = o_.latest ? so.window - 2 : std::max(1u, sub.info().max_hold - 1);
        window_cap_ = std::min(window_cap_, cap);
        streams_.push_back({name, std::move(sub), -1, 0});
        spdlog::info("fbbridge export: exporting '{}' ({} mode, {} slots, credit window <= {})",
                     name, o_.latest ? "latest" : "every", streams_.back().sub.info().slots,
                     window_cap_);
        missing_.erase(name);
      } catch (const Error& e) {
        if (e.code() == Errc::BrokerLost || e.code() == Errc::BrokerNotRunning) throw;
        if (missing_.insert(name).second)
          spdlog::warn("fbbridge export: cannot subscribe '{}' yet ({}); retrying every second",
                       name, e.what());
      }
    }
    c_.streams = uint32_t(streams_.size());
    grow_pool();
  }

  // Enough records for every frame that may be held: per stream, a full window for each peer
  // (latest: peers may be at different frames) plus the pending one.
  void grow_pool() {
    const size_t peers = std::max<size_t>(1, peers_.size());
    const size_t need =
        std::max<size_t>(streams_.size(), 1) * (window_cap_ * (o_.latest ? peers : 1) + 2);
    if (pool_.size() >= need) return;
    done_.reserve(need);
    done_batch_.reserve(need);
    free_.reserve(need);
    while (pool_.size() < need) {
      auto r = std::make_unique<Record>();
      r->index = uint32_t(pool_.size());
      r->done = &done_;
      free_.push_back(r->index);
      pool_.push_back(std::move(r));
    }
  }

  void take_done() {
    done_batch_.clear();
    done_.take(done_batch_);
    for (const uint32_t i : done_batch_) {
      auto& r = *pool_[i];
      r.frame.reset();
      free_.push_back(i);
    }
    c_.note_in_flight(uint32_t(pool_.size() - free_.size()));
  }

  bool can_send_every() const {
    if (peers_.empty() || free_.empty()) return false;
    return std::all_of(peers_.begin(), peers_.end(), [](const Peer& p) { return p.has_credit(); });
  }

  void pump_every() {
    for (uint32_t si = 0; si < streams_.size(); ++si) {
      auto& s = streams_[si];
      while (can_send_every()) {
        auto f = s.sub.next(0ms);
        if (!f) break;
        auto& r = take_record(std::move(*f), si);
        for (auto& p : peers_) send_to(p, r);
        close_original(r);
      }
    }
    if (!peers_.empty() && !can_send_every()) ++c_.no_credit_waits;
  }

  void pump_latest() {
    for (uint32_t si = 0; si < streams_.size(); ++si) {
      auto& s = streams_[si];
      while (auto f = s.sub.next(0ms)) {
        if (free_.empty()) {  // every record is on the wire: this frame is conflated away
          ++c_.conflated;
          continue;
        }
        auto& r = take_record(std::move(*f), si);
        drop_pending(s);
        s.pending = int32_t(r.index);
      }
      if (s.pending < 0) continue;
      auto& r = *pool_[s.pending];
      for (auto& p : peers_) {
        if (!p.has_credit() || p.last_sent[si] == r.seq + 1) continue;
        if (send_to(p, r)) p.last_sent[si] = r.seq + 1;
      }
    }
  }

  Record& take_record(Frame&& f, uint32_t si) {
    auto& r = *pool_[free_.back()];
    free_.pop_back();
    c_.note_in_flight(uint32_t(pool_.size() - free_.size()));
    r.seq = f.seq();
    r.stream = si;
    r.sent_to = 0;
    r.frame.emplace(std::move(f));
    return r;
  }

  // Header and pixels message, made when the frame is first sent (latest: most frames are
  // replaced before they are, and are never compressed).
  void materialize(Record& r) {
    if (r.open) return;
    const auto px = r.frame->pixels();
    r.raw_bytes = px.size();
    void* data = const_cast<std::byte*>(px.data());
    size_t n = px.size();
    bool compressed = false;
    if (o_.lz4 && n > 0) {
      if (r.zbuf.size() < n + BLOSC_MAX_OVERHEAD) r.zbuf.resize(n + BLOSC_MAX_OVERHEAD);
      const size_t bpp = std::max<size_t>(1, bytes_per_pixel(r.frame->pixel_type()));
      const int z = blosc_compress_ctx(o_.clevel, BLOSC_SHUFFLE, bpp, n, px.data(), r.zbuf.data(),
                                       r.zbuf.size(), "lz4", 0, 1);
      if (z > 0) {
        data = r.zbuf.data();
        n = size_t(z);
        compressed = true;
      }
    }
    build_frame_header(r.header, *r.frame, compressed);
    if (compressed) r.frame.reset();  // the slot goes back now: the pixels are in zbuf
    r.wire_bytes = n;
    zmq_msg_init_data(&r.pixels, data, n, on_zmq_done, &r);
    r.open = true;
  }

  // The original message goes; the record returns once ZeroMQ dropped every copy.
  void close_original(Record& r) {
    r.open = false;
    zmq_msg_close(&r.pixels);  // may run on_zmq_done right here
  }

  void drop_pending(Stream& s) {
    if (s.pending < 0) return;
    auto& r = *pool_[s.pending];
    s.pending = -1;
    if (r.sent_to == 0) ++c_.conflated;
    if (r.open) {
      close_original(r);
    } else {  // never materialized: nothing of it is in ZeroMQ
      r.frame.reset();
      free_.push_back(r.index);
      c_.note_in_flight(uint32_t(pool_.size() - free_.size()));
    }
  }

  bool send_to(Peer& p, Record& r) {
    materialize(r);
    if (zmq_send(router_.get(), p.rid.data(), p.rid.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
      if (zmq_errno() == EHOSTUNREACH) p.heard = Clock::time_point{};  // gone: expire it
      return false;
    }
    zmq_msg_t h, px;
    // The header stays in the record until its pixels are freed, which ZeroMQ does only after
    // the header part went out before them: no copy of it either.
    zmq_msg_init_data(&h, r.header.GetBufferPointer(), r.header.GetSize(), nullptr, nullptr);
    zmq_msg_send(&h, router_.get(), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_init(&px);
    zmq_msg_copy(&px, &r.pixels);
    if (zmq_msg_send(&px, router_.get(), ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&px);
      return false;
    }
    ++p.sent;
    ++r.sent_to;
    ++c_.frames;
    c_.bytes += r.wire_bytes;
    c_.raw_bytes += r.raw_bytes;
    return true;
  }

  void handle_control() {
    ZmqMsg rid, body;
    while (rid.recv(router_.get())) {
      if (!rid.more()) continue;
      if (!body.recv(router_.get())) continue;
      if (body.more()) {
        drain_parts(router_.get());
        bad("a control message of more than one part");
        continue;
      }
      const auto parsed = parser_.parse(body.bytes());
      if (!parsed.message) {
        bad(parsed.error);
        continue;
      }
      if (const auto* h = parsed.message->body_as_Hello()) {
        hello(*h, rid.bytes());
      } else if (const auto* cr = parsed.message->body_as_Credit()) {
        for (auto& p : peers_) {
          if (p.session != cr->session()) continue;
          p.acked = std::min(cr->received_total(), p.sent);
          p.window = std::clamp<uint32_t>(cr->window(), 1, window_cap_);
          p.heard = Clock::now();
        }
      } else {
        bad("a frame header sent to the exporter");
      }
    }
  }

  void hello(const bridge::Hello& h, std::span<const std::byte> rid) {
    if (h.version() != kBridgeProtocolVersion) {
      bad("a Hello of protocol version " + std::to_string(h.version()) + " (this is " +
          std::to_string(kBridgeProtocolVersion) + ")");
      return;
    }
    auto it = std::find_if(peers_.begin(), peers_.end(),
                           [&](const Peer& p) { return p.importer_id == h.importer_id(); });
    const bool known = it != peers_.end();
    if (!known) it = peers_.insert(peers_.end(), Peer{});
    it->rid.assign(reinterpret_cast<const char*>(rid.data()), rid.size());
    it->importer_id = h.importer_id();
    it->session = h.session();
    it->sent = it->acked = 0;  // what the old connection had in flight is lost with it
    it->window = std::clamp<uint32_t>(h.window(), 1, window_cap_);
    it->heard = Clock::now();
    it->name = h.name() ? h.name()->str() : "?";
    it->last_sent.assign(streams_.size() + 64, 0);
    ++c_.sessions;
    c_.peers = uint32_t(peers_.size());
    c_.link = LinkState::Up;
    spdlog::info("fbbridge export: importer '{}' {} (session {:016x}, window {})", it->name,
                 known ? "reconnected" : "connected", it->session, it->window);
    grow_pool();
  }

  void expire_peers() {
    const auto now = Clock::now();
    std::erase_if(peers_, [&](const Peer& p) {
      if (now - p.heard < o_.peer_timeout) return false;
      spdlog::warn(
          "fbbridge export: importer '{}' (session {:016x}) silent or gone: dropped, {} "
          "frames were in flight",
          p.name, p.session, p.sent - p.acked);
      ++c_.disconnects;
      return true;
    });
    for (auto& p : peers_)
      if (p.last_sent.size() < streams_.size()) p.last_sent.resize(streams_.size() + 64, 0);
    c_.peers = uint32_t(peers_.size());
    if (peers_.empty() && c_.link == LinkState::Up) c_.link = LinkState::Waiting;
  }

  void handle_monitor() {
    Monitor::Event e;
    while (monitor_->next(e)) {
      if (e.id == ZMQ_EVENT_ACCEPTED)
        spdlog::info("fbbridge export: connection from {}", e.address);
      else
        spdlog::warn("fbbridge export: {} ({}, {})", event_name(e.id), e.address, e.value);
    }
  }

  void bad(const std::string& what) {
    const auto n = ++c_.bad_messages;
    if (n <= 10 || n % 1000 == 0)
      spdlog::error("fbbridge export: refused {} (refused so far: {})", what, n);
  }

  const ExportOptions& o_;
  BridgeCounters& c_;
  std::atomic<bool>& stop_;
  int wake_fd_;
  ZmqContext ctx_;
  ZmqSocket router_;
  std::optional<Monitor> monitor_;
  std::optional<ZapHandler> zap_;
  DoneQueue done_;
  Client client_;
  std::vector<Stream> streams_;
  std::set<std::string> missing_;
  std::vector<Peer> peers_;
  AlignedParser parser_;
  std::vector<std::unique_ptr<Record>> pool_;
  std::vector<uint32_t> free_, done_batch_;
  uint32_t window_cap_;
  StatsLine stats_;
};

}  // namespace

int run_exporter(const ExportOptions& o, BridgeCounters& c, std::atomic<bool>& stop, int wake_fd) {
  Exporter e(o, c, stop, wake_fd);
  return e.run();
}

}  // namespace framebroker::fbbridge
