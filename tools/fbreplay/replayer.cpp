#include "fbreplay/replayer.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "fbreplay/dataset.hpp"
#include "fbreplay/pacer.hpp"
#include "fbreplay/saved_metadata.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbreplay {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

size_t subscribers_of(Client& client, const std::string& stream) {
  size_t n = 0;
  for (const auto& s : client.status().subscribers) n += s.stream == stream;
  return n;
}

// Waits for `want` subscribers of `stream`; false when a signal came first.
bool wait_for_subscribers(Client& client, const std::string& stream, uint32_t want) {
  while (!g_stop && subscribers_of(client, stream) < want)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return !g_stop;
}

// A loan, waiting as long as it takes (Block: the slowest `every` subscriber's pace); nullopt
// only when a signal came.
std::optional<Loan> next_loan(Publisher& pub) {
  while (!g_stop)
    if (auto loan = pub.loan(std::chrono::milliseconds(200))) return loan;
  return std::nullopt;
}

const StreamStatus* find_stream(const Status& status, const std::string& name) {
  for (const auto& s : status.streams)
    if (s.name == name) return &s;
  return nullptr;
}

// The seq the stream's next frame gets (a name advertised again continues its stream).
uint64_t next_seq_of(Client& client, const std::string& stream) {
  const Status status = client.status();
  const StreamStatus* s = find_stream(status, stream);
  return s ? s->published + s->dropped : 0;
}

// Waits until the broker has handed frame `last_seq` to the subscribers, so that ending the
// stream loses nothing: a blocking stream's commits may still wait in the broker for a slow
// subscriber's room, and frames committed just before the producer goes have been seen lost
// (see docs/replay.md). Gives up when nothing moves for kDrainStall (a stalled subscriber).
void wait_until_delivered(Client& client, const std::string& stream, int64_t last_seq) {
  constexpr auto kDrainStall = std::chrono::seconds(10);
  int64_t seen = -2;
  auto moved = Clock::now();
  for (;;) {
    const Status status = client.status();
    const StreamStatus* s = find_stream(status, stream);
    if (!s || s->latest_seq >= last_seq) return;
    if (s->latest_seq != seen) {
      seen = s->latest_seq;
      moved = Clock::now();
    } else if (Clock::now() - moved > kDrainStall) {
      std::fprintf(
          stderr,
          "fbreplay: %s: frames up to seq %lld still wait for a subscriber that has "
          "taken nothing for %lld s; ending the stream without them\n",
          stream.c_str(), (long long)last_seq,
          (long long)std::chrono::duration_cast<std::chrono::seconds>(kDrainStall).count());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

ReplaySummary run_replay(const ReplayOptions& o) {
  // The dataset first: a bad path is reported whether or not a broker runs.
  auto reader = open_dataset(o.dataset);
  const DatasetInfo& info = reader->info();
  const auto& frames = reader->frames();
  if (frames.empty())
    throw std::runtime_error(info.path + " holds no frame; there is nothing to replay");

  ReplaySummary summary{info.path, info.format, o.as, frames.size()};
  ConnectOptions co;
  co.socket_path = o.socket;
  co.instance = o.instance;
  co.client_name = "fbreplay";
  co.role = "replay";
  auto client = Client::connect(co);
  PublishOptions po;
  po.width = info.width;
  po.height = info.height;
  po.pixel_type = info.pixel_type;
  po.slots = o.slots;
  po.overflow = Overflow::Block;
  auto pub = client.advertise(o.as, po);
  const uint64_t first_seq = next_seq_of(client, o.as);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (o.wait_subscribers && !wait_for_subscribers(client, o.as, o.wait_subscribers)) {
    summary.interrupted = true;
    return summary;
  }

  Pacer pacer = o.fps           ? Pacer::at_fps(*o.fps)
                : o.as_recorded ? Pacer::as_recorded(frames)
                                : Pacer::unpaced();
  // One CommitInfo for every frame: assigning its numbers allocates nothing.
  CommitInfo ci;
  ci.exposure_us = exposure_us(info);
  // Provenance names the origin: the recorded stream, or the stream it was made from.
  ci.source_stream = info.source_stream.empty() ? info.stream : info.source_stream;
  const size_t stride = pub.stride() ? pub.stride() : info.row_bytes();
  const auto t0 = Clock::now();
  do {
    for (size_t i = 0; i < frames.size(); ++i) {
      auto loan = next_loan(pub);
      if (!loan) break;
      reader->read(i, loan->pixels(), stride);
      if (!pacer.wait(i, g_stop)) break;  // the loan goes back unpublished
      const SavedFrame& f = frames[i];
      ci.camera_frame_id = f.camera_frame_id;
      ci.hw_timestamp_ns = f.hw_timestamp_ns;
      ci.source_seq = f.source_seq >= 0 ? f.source_seq : int64_t(f.seq);
      loan->commit(ci);
      ++summary.published;
    }
    if (g_stop) break;
    ++summary.passes;
  } while (o.loop);
  pub.flush();
  if (pub.committed() > 0)
    wait_until_delivered(client, o.as, int64_t(first_seq + pub.committed()) - 1);
  summary.interrupted = g_stop;
  summary.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;  // the publisher goes: the stream ends after its last frame
}

}  // namespace framebroker::fbreplay
