#include "fbview/frame_pump.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace framebroker::fbview {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::mutex g_pumps_mu;
std::set<FramePump*> g_pumps;

json histogram_json(const Histogram& h) {
  json bins = json::array();
  for (uint32_t b : h.bins) bins.push_back(b);
  return bins;
}

}  // namespace

FramePump::FramePump(ConnectOptions connect, std::string stream, Send send)
    : connect_(std::move(connect)), stream_(std::move(stream)), send_(std::move(send)) {
  {
    std::lock_guard lock(g_pumps_mu);
    g_pumps.insert(this);
  }
  thread_ = std::thread([this] {
    run();
    finished_ = true;
  });
}

FramePump::~FramePump() {
  stop();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(g_pumps_mu);
  g_pumps.erase(this);
}

void FramePump::stop_all(std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool running = false;
    {
      std::lock_guard lock(g_pumps_mu);
      for (FramePump* p : g_pumps) {
        p->stop();
        running = running || !p->finished();
      }
    }
    if (!running || std::chrono::steady_clock::now() > until) return;
    std::this_thread::sleep_for(10ms);
  }
}

void FramePump::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

void FramePump::request(const ViewRequest& r) {
  {
    std::lock_guard lock(mu_);
    pending_ = r;
  }
  cv_.notify_all();
}

void FramePump::restyle(const Style& s) {
  {
    std::lock_guard lock(mu_);
    restyle_ = s;
  }
  cv_.notify_all();
}

bool FramePump::interrupted() {
  std::lock_guard lock(mu_);
  return stopped_ || restyle_.has_value();
}

std::optional<double> FramePump::probe(uint32_t x, uint32_t y) {
  std::lock_guard lock(scaled_mu_);
  const Region& r = scaled_.region;
  if (scaled_.values.empty() || x < r.x || y < r.y) return std::nullopt;
  const uint32_t ox = (x - r.x) / scaled_.scale, oy = (y - r.y) / scaled_.scale;
  if (ox >= scaled_.width || oy >= scaled_.height) return std::nullopt;
  return scaled_.values[size_t(oy) * scaled_.width + ox];
}

bool FramePump::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stopped_; });
}

void FramePump::say_status(bool connected, const std::string& message) {
  if (connected_ == connected) return;
  connected_ = connected;
  send_(json{{"type", "status"}, {"broker", connected ? "connected" : "lost"}, {"message", message}}
            .dump(),
        false);
}

void FramePump::run() {
  while (sleep_for(0ms)) {
    if (!connect()) {
      if (!sleep_for(1s)) return;
      continue;
    }
    try {
      serve();
    } catch (const std::exception& e) {
      say_status(false, std::string("lost the broker: ") + e.what() + "; reconnecting");
    }
    sub_.reset();
    client_.reset();
  }
}

bool FramePump::connect() {
  try {
    client_.emplace(Client::connect(connect_));
    sub_.emplace(client_->subscribe(stream_, {.mode = Mode::Latest}));
    last_seq_.reset();
    status_at_ = {};
    say_status(true, "watching " + stream_ + " on " + client_->socket_path());
    return true;
  } catch (const std::exception& e) {
    sub_.reset();
    client_.reset();
    say_status(false, std::string(e.what()) + "; retrying every second");
    return false;
  }
}

void FramePump::serve() {
  for (;;) {
    ViewRequest req;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 250ms,
                   [&] { return stopped_ || pending_.has_value() || restyle_.has_value(); });
      if (stopped_) return;
      if (restyle_) {
        const Style style = *restyle_;
        restyle_.reset();
        if (pending_) pending_->style = style;
        lock.unlock();
        if (shown_.valid) send_(compose(style, true), true);
        continue;
      }
      if (!pending_) {
        lock.unlock();
        refresh_stream_status();  // also notices a broker that went away while idle
        continue;
      }
      req = *pending_;
      pending_.reset();
    }
    std::optional<Frame> f = take_newest(req.channel);
    if (!f) {  // stopped, a restyle, or no frame yet: the tab's request stays
      std::lock_guard lock(mu_);
      if (!pending_) pending_ = req;
      continue;
    }
    std::string message = render(*f, req);
    f->release();
    client_->flush();  // the broker may deliver the next newest while the tab draws this one
    send_(std::move(message), true);
  }
}

std::optional<Frame> FramePump::take_newest(const std::string& channel) {
  std::optional<Frame> f;
  const auto give_up = std::chrono::steady_clock::now() + 1s;
  const auto skip = [&] {  // a frame of another channel: the tab keeps the one it shows
    if (!last_seq_ || f->seq() > *last_seq_) ++skipped_;
    f->release();
    client_->flush();
    f.reset();
  };
  while (!f) {
    if (interrupted()) return std::nullopt;
    refresh_stream_status();
    f = sub_->next(100ms);  // short: a restyle waits at most this long
    if (f && !shows(*f, channel)) skip();
    if (!f && std::chrono::steady_clock::now() > give_up) return std::nullopt;
  }
  // The frame waiting for us may have come long before the tab was ready. If the broker has
  // a newer one, let this one go: in latest mode the newest is delivered at once.
  if (int64_t(f->seq()) < latest_seq()) {
    std::optional<Frame> older = std::move(f);
    older->release();
    client_->flush();
    f = sub_->next(1s);
    if (f && !shows(*f, channel)) skip();
  }
  return f;
}

bool FramePump::shows(const Frame& f, const std::string& channel) {
  if (channel.empty()) return true;
  const std::optional<uint32_t> c = f.index('c');
  if (!c) return true;
  const auto sq = f.sequence();
  if (!sq) return true;
  if (choice_.sequence_id != sq->id || choice_.filter != channel) {
    choice_ = {sq->id, channel, std::nullopt};
    const auto& names = sq->spec.channels;
    if (const auto it = std::find(names.begin(), names.end(), channel); it != names.end()) {
      choice_.index = uint32_t(it - names.begin());
    } else {
      uint32_t i = 0;
      const auto [end, ec] = std::from_chars(channel.data(), channel.data() + channel.size(), i);
      if (ec == std::errc() && end == channel.data() + channel.size() && i < sq->spec.size('c'))
        choice_.index = i;
    }
    if (!choice_.index) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      send_(json{{"type", "error"},
                 {"message",
                  "sequence " + std::to_string(sq->id) + " has no channel '" + channel +
                      "' (channels: " +
                      (known.empty() ? "0-" + std::to_string(sq->spec.size('c') - 1) : known) +
                      "); showing every channel"}}
                .dump(),
            false);
    }
  }
  return !choice_.index || *c == *choice_.index;
}

int64_t FramePump::latest_seq() {
  status_at_ = {};
  refresh_stream_status();
  return latest_seq_;
}

void FramePump::refresh_stream_status() {
  const auto now = std::chrono::steady_clock::now();
  if (now - status_at_ < 1s) return;
  status_at_ = now;
  const Status s = client_->status();
  for (const auto& st : s.streams) {
    if (st.name != stream_) continue;
    camera_fps_ = st.fps;
    dropped_ = st.dropped;
    latest_seq_ = st.latest_seq;
  }
}

std::string FramePump::render(const Frame& f, const ViewRequest& r) {
  const char* pixel_type = to_string(f.pixel_type());
  const SourceFormat fmt{f.width(), f.height(), f.stride(), sample_of(pixel_type),
                         bit_depth_of(pixel_type)};
  // Frames of other channels the filter let go are not conflated: the tab did not want them.
  if (last_seq_ && f.seq() > *last_seq_ + 1)
    conflated_ += f.seq() - *last_seq_ - 1 - std::min(skipped_, f.seq() - *last_seq_ - 1);
  skipped_ = 0;
  last_seq_ = f.seq();
  {
    std::lock_guard lock(scaled_mu_);
    shrink(f.pixels(), fmt, r.region, r.max_width, r.max_height, scaled_);
  }
  histogram_ = histogram_of(scaled_.values);
  shown_ = {.valid = true,
            .seq = f.seq(),
            .camera_frame_id = f.camera_frame_id(),
            .mono_ns = f.meta().mono_ns(),
            .source_width = f.width(),
            .source_height = f.height(),
            .bit_depth = fmt.bit_depth,
            .pixel_type = pixel_type,
            .sequence = f.sequence(),
            .position = f.sequence_position(),
            .channel_filter = r.channel};
  for (size_t i = 0; i < SequenceSpec::kAxisLetters.size(); ++i) {
    const auto at = f.index(SequenceSpec::kAxisLetters[i]);
    shown_.index[i] = shown_.sequence && at ? int64_t(*at) : -1;
  }
  return compose(r.style, false);
}

// The shown frame's place in its sequence: {id, axes, order, sizes, channels, position,
// index {t, c, z, p: the axes it has}, channel (its channel's name, or its index as text)}, or
// null outside a sequence.
json FramePump::sequence_json() const {
  const auto& sq = shown_.sequence;
  if (!sq) return nullptr;
  json index = json::object(), sizes = json::object();
  for (const auto& a : sq->spec.axes) sizes[std::string(1, a.name)] = a.size;
  for (size_t i = 0; i < SequenceSpec::kAxisLetters.size(); ++i)
    if (shown_.index[i] >= 0)
      index[std::string(1, SequenceSpec::kAxisLetters[i])] = shown_.index[i];
  json channel = nullptr;
  if (const auto c = index.find("c"); c != index.end()) {
    const auto ci = c->get<size_t>();
    channel = ci < sq->spec.channels.size() ? sq->spec.channels[ci] : std::to_string(ci);
  }
  return {{"id", sq->id},
          {"axes", sq->spec.axes_text()},
          {"order", sq->spec.order()},
          {"sizes", sizes},
          {"channels", sq->spec.channels},
          {"position", shown_.position},
          {"index", index},
          {"channel", channel}};
}

// Only this thread writes scaled_, so reading it here needs no lock.
std::string FramePump::compose(const Style& style, bool restyled) {
  const Histogram& h = histogram_;
  const Levels levels = choose_levels(style.mode, h, style.manual);
  map_to_8bit(scaled_.values, levels, style.gamma, mapped_);
  const Region& reg = scaled_.region;
  const json header = {{"type", "frame"},
                       {"stream", stream_},
                       {"seq", shown_.seq},
                       {"restyled", restyled},
                       {"camera_frame_id", shown_.camera_frame_id},
                       {"width", scaled_.width},
                       {"height", scaled_.height},
                       {"source_width", shown_.source_width},
                       {"source_height", shown_.source_height},
                       {"region", {reg.x, reg.y, reg.w, reg.h}},
                       {"scale", scaled_.scale},
                       {"pixel_type", shown_.pixel_type},
                       {"bit_depth", shown_.bit_depth},
                       {"black", levels.black},
                       {"white", levels.white},
                       {"gamma", style.gamma},
                       {"min", scaled_.raw_min},
                       {"max", scaled_.raw_max},
                       {"histogram", histogram_json(h)},
                       {"hist_min", h.min},
                       {"hist_max", h.max},
                       {"camera_fps", camera_fps_},
                       {"dropped", dropped_},
                       {"conflated", conflated_},
                       {"mono_ns", shown_.mono_ns},
                       {"channel_filter", shown_.channel_filter},
                       {"sequence", sequence_json()}};
  const std::string text = header.dump();
  std::string msg(4 + text.size() + mapped_.size(), '\0');
  const uint32_t n = uint32_t(text.size());
  const unsigned char len[4] = {uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
  std::memcpy(msg.data(), len, 4);
  std::memcpy(msg.data() + 4, text.data(), text.size());
  std::memcpy(msg.data() + 4 + text.size(), mapped_.data(), mapped_.size());
  return msg;
}

}  // namespace framebroker::fbview
