#include "fbctl/watch.hpp"

#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/counter_pattern.hpp"
#include "fbctl/exit_codes.hpp"
#include "fbctl/status_view.hpp"

namespace framebroker::fbctl {

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

struct Tally {
  uint64_t frames = 0;
  uint64_t gaps = 0;        // places where seq jumped
  uint64_t missing = 0;     // seqs skipped in all
  uint64_t bad_frames = 0;  // counter frames with at least one wrong pixel
  uint64_t bad_pixels = 0;
  uint64_t out_of_order = 0;
  std::optional<uint64_t> first_seq, last_seq;

  void count(uint64_t seq) {
    if (last_seq) {
      if (seq <= *last_seq) {
        ++out_of_order;
      } else if (seq != *last_seq + 1) {
        ++gaps;
        missing += seq - *last_seq - 1;
      }
    }
    if (!first_seq) first_seq = seq;
    last_seq = seq;
    ++frames;
  }
};

void check_counter(const Frame& f, Tally& t) {
  const size_t pixels = size_t(f.width()) * f.height();
  const size_t bpp = f.width() ? f.stride() / f.width() : 0;
  const uint64_t bad = tools::counter_errors(f.pixels(), f.camera_frame_id(), pixels, bpp);
  if (bad) {
    ++t.bad_frames;
    t.bad_pixels += bad;
  }
}

nlohmann::json summary(const WatchOptions& o, const Tally& t, double elapsed) {
  return {{"stream", o.stream},
          {"mode", o.mode == Mode::Latest ? "latest" : "every"},
          {"frames", t.frames},
          {"fps", elapsed > 0 ? double(t.frames) / elapsed : 0.0},
          {"elapsed_s", elapsed},
          {"gaps", t.gaps},
          {"missing", t.missing},
          {"out_of_order", t.out_of_order},
          {"first_seq", t.first_seq ? nlohmann::json(*t.first_seq) : nlohmann::json(nullptr)},
          {"last_seq", t.last_seq ? nlohmann::json(*t.last_seq) : nlohmann::json(nullptr)},
          {"verified", o.verify_counter},
          {"bad_frames", t.bad_frames},
          {"bad_pixels", t.bad_pixels}};
}

// The stream's running (or last) sequence as the broker tells it, in status' words.
std::optional<SequenceStatus> sequence_status(Client& client, const std::string& stream) {
  Status s = client.status();
  for (auto& st : s.streams)
    if (st.name == stream) return std::move(st.sequence);
  return std::nullopt;
}

// The "sequence" object of `fbctl status --json` for the stream, or null.
nlohmann::json sequence_json(Client& client, const std::string& stream) {
  const auto j = nlohmann::json::parse(to_json(client.status()));
  for (const auto& st : j["streams"])
    if (st["name"] == stream && st.contains("sequence")) return st["sequence"];
  return nullptr;
}

}  // namespace

int run_watch(Client& client, const WatchOptions& o) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  SubscribeOptions so;
  so.mode = o.mode;
  so.max_hold = o.max_hold;
  so.window = o.window;
  so.from_latest = o.from_latest;
  auto sub = client.subscribe(o.stream, so);
  if (!o.json)
    std::fprintf(stderr, "watching %s (%s, %u slots, max_hold %u, window %u); Ctrl-C stops\n",
                 o.stream.c_str(), o.mode == Mode::Latest ? "latest" : "every", sub.info().slots,
                 sub.info().max_hold, sub.info().window);

  Tally t;
  uint64_t said_end = 0;   // the last sequence whose end was printed
  std::deque<Frame> held;  // --hold: the first N frames, never released
  const auto start = Clock::now();
  auto last_print = start;
  uint64_t frames_at_print = 0;
  const auto end = o.duration_s ? start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(*o.duration_s))
                                : Clock::time_point::max();
  while (!g_stop && Clock::now() < end && (!o.frames || t.frames < *o.frames)) {
    auto f = sub.next(std::chrono::milliseconds(100));
    if (f) {
      t.count(f->seq());
      if (o.verify_counter) check_counter(*f, t);
      if (held.size() < o.hold) held.push_back(std::move(*f));
    }
    if (const auto end = sub.sequence_end(); !o.json && end && end->id != said_end) {
      said_end = end->id;
      std::printf("%s: sequence %llu finished: %s, %llu frames, %llu missed\n", o.stream.c_str(),
                  (unsigned long long)end->id, end->complete ? "complete" : "stopped early",
                  (unsigned long long)end->frames, (unsigned long long)end->missed);
      std::fflush(stdout);
    }
    const auto now = Clock::now();
    if (!o.json && now - last_print >= std::chrono::seconds(1)) {
      const double dt = std::chrono::duration<double>(now - last_print).count();
      const auto seq = sequence_status(client, o.stream);
      std::printf("%s: %7.1f fps  delivered %llu  dropped %llu (in %llu gaps)%s%s%s\n",
                  o.stream.c_str(), double(t.frames - frames_at_print) / dt,
                  (unsigned long long)t.frames, (unsigned long long)t.missing,
                  (unsigned long long)t.gaps,
                  o.verify_counter ? (t.bad_frames ? "  PIXEL ERRORS" : "  pixels ok") : "",
                  seq ? "  " : "", seq ? sequence_text(*seq).c_str() : "");
      std::fflush(stdout);
      last_print = now;
      frames_at_print = t.frames;
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  auto s = summary(o, t, elapsed);
  if (o.json) {
    s["sequence"] = sequence_json(client, o.stream);
    std::cout << s.dump() << "\n";
  } else {
    std::printf("total: delivered %llu frames in %.1f s (%.1f fps), dropped %llu (in %llu gaps)",
                (unsigned long long)t.frames, elapsed, s["fps"].get<double>(),
                (unsigned long long)t.missing, (unsigned long long)t.gaps);
    if (o.verify_counter)
      std::printf(", bad frames %llu (bad pixels %llu)", (unsigned long long)t.bad_frames,
                  (unsigned long long)t.bad_pixels);
    std::printf("\n");
    if (const auto seq = sequence_status(client, o.stream))
      std::printf("%s: %s\n", o.stream.c_str(), sequence_text(*seq).c_str());
  }
  return t.bad_frames || t.out_of_order ? kRefused : kOk;
}

}  // namespace framebroker::fbctl
