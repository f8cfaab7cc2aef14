#include "fbsave/saver.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "fbsave/channels_writer.hpp"
#include "fbsave/file_io.hpp"
#include "fbsave/zarr_group.hpp"
#include "framebroker/client.hpp"

namespace framebroker::fbsave {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Frames travel reader -> writer thread in batches; the writer takes all
// that are waiting at once, so a busy saver pays one wake-up per batch.
class FrameQueue {
 public:
  void push(Frame f) {
    {
      std::lock_guard lock(mu_);
      frames_.push_back(std::move(f));
    }
    cv_.notify_one();
  }
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_one();
  }
  // Empty deque: closed and drained.
  std::deque<Frame> take() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !frames_.empty() || closed_; });
    return std::exchange(frames_, {});
  }
  size_t depth() {
    std::lock_guard lock(mu_);
    return frames_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Frame> frames_;
  bool closed_ = false;
};

// The writers' copy of a sequence. Refuses what fbsave cannot write yet.
SequenceInfo sequence_info(const Sequence& sq) {
  const SequenceSpec& spec = sq.spec;
  if (spec.size('p') > 1)
    throw std::runtime_error("sequence " + std::to_string(sq.id) + " (" + spec.axes_text() +
                             ") has " + std::to_string(spec.size('p')) +
                             " stage positions; fbsave cannot save a position axis p yet (save "
                             "one position per sequence)");
  SequenceInfo s;
  s.id = sq.id;
  s.first_seq = sq.first_seq;
  s.axes = spec.axes_text();
  s.order = spec.order();
  s.t = spec.size('t');
  s.c = spec.size('c');
  s.z = spec.size('z');
  s.channels = spec.channels;
  s.z_step_um = spec.z_step_um;
  s.interval_ms = spec.interval_ms;
  s.metadata = spec.metadata;
  return s;
}

// The sequence a frame belongs to, or null.
std::shared_ptr<const Sequence> sequence_of(const Frame& f, const Subscription& sub) {
  if (auto sq = f.sequence()) return sq;
  const uint64_t id = f.meta().sequence_id();
  if (auto sq = sub.sequence(); id != 0 && sq && sq->id == id) return sq;
  return nullptr;
}

DatasetInfo dataset_info(const SaveOptions& o, const std::string& stream, const Frame& f,
                         std::map<std::string, std::string> props, const Sequence* sequence) {
  DatasetInfo info;
  info.stream = stream;
  info.camera = stream;
  info.width = f.width();
  info.height = f.height();
  info.stride = f.stride();
  info.pixel_type = framebroker::to_string(f.pixel_type());
  switch (f.pixel_type()) {
    case PixelType::Mono8:
      info.bytes_per_sample = 1;
      break;
    case PixelType::Mono32F:
      info.bytes_per_sample = 4, info.floating = true;
      break;
    case PixelType::RGB8:
      info.bytes_per_sample = 1, info.samples = 3;
      break;
    case PixelType::RGB16:
      info.samples = 3;
      break;
    case PixelType::BGRA8:
      throw std::runtime_error("fbsave cannot save BGRA8 frames yet");
    default:
      break;  // Mono10..16 in u16
  }
  info.camera_properties = std::move(props);
  info.frames_expected = o.frames;
  info.compression = o.compression;
  info.clevel = o.clevel;
  info.chunk_frames = o.chunk_frames;
  info.threads = o.threads;
  // zarr3 (the v2 layout ignores them): shards of ~kShardBytes unless told; a sequence's
  // shard is one plane, sharded (into tiles) only when asked.
  info.tile = o.tile;
  if (o.shard_frames) {
    info.shard_frames = *o.shard_frames;
  } else if (!sequence) {
    const uint64_t chunk = uint64_t(std::max<uint32_t>(1, o.chunk_frames)) * info.frame_bytes();
    info.shard_frames = uint32_t(std::clamp<uint64_t>(kShardBytes / chunk, 1, 4096) *
                                 std::max<uint32_t>(1, o.chunk_frames));
  } else if (o.tile) {
    info.shard_frames = 1;
  }
  if (sequence) {
    if (info.samples != 1)
      throw std::runtime_error("fbsave cannot save a sequence of " + info.pixel_type +
                               " frames yet (one sample per pixel only)");
    info.sequence = sequence_info(*sequence);
  }
  return info;
}

std::unique_ptr<Writer> make_writer(Format f, const std::string& path) {
  switch (f) {
    case Format::Zarr:
      return make_zarr_writer(path);
    case Format::Zarr3:
      return make_zarr3_writer(path);
    case Format::Tiff:
      return make_tiff_writer(path);
    case Format::Raw:
      return make_raw_writer(path);
  }
  return nullptr;
}

void prepare_output(const std::string& path, bool overwrite) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::exists(p, ec)) {
    if (!overwrite)
      throw std::runtime_error(path + " already exists; pass --overwrite to replace it");
    fs::remove_all(p, ec);
    if (ec) throw std::runtime_error("cannot remove " + path + ": " + ec.message());
  }
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec))
    throw std::runtime_error("cannot write " + path + ": " + parent.string() +
                             " is not a directory");
  if (::access(parent.c_str(), W_OK) != 0)
    throw std::runtime_error("cannot write " + path + ": " + parent.string() + " is not writable");
}

// Writes what the reader hands over; remembers the first error.
class WriterThread {
 public:
  WriterThread(std::unique_ptr<Writer> w, SaveSummary& summary, std::atomic<bool>& failed)
      : writer_(std::move(w)), summary_(summary), failed_(failed), thread_([this] { run(); }) {}
  ~WriterThread() { join(); }

  FrameQueue& queue() { return queue_; }
  void push(Frame f) {
    ++held_;
    queue_.push(std::move(f));
  }
  // When the frames pushed were all released (written), or nullopt while some are held: while
  // the writer holds frames, the broker may keep the next ones back (max_hold).
  std::optional<Clock::time_point> all_released_at() const {
    if (held_.load() != 0) return std::nullopt;
    return Clock::time_point(Clock::duration(released_at_.load()));
  }
  void join() {
    queue_.close();
    if (thread_.joinable()) thread_.join();
  }
  Writer& writer() { return *writer_; }
  // The next frame marked after_restart() follows this outage (call before pushing it).
  void restarted(const Discontinuity& d) {
    std::lock_guard lock(restarts_mu_);
    restarts_.push_back(d);
  }

 private:
  void run() {
    auto last_checkpoint = Clock::now();
    for (;;) {
      auto batch = queue_.take();
      if (batch.empty()) return;
      if (!failed_) {
        try {
          write_batch(batch);
        } catch (const std::exception& e) {
          summary_.error = e.what();
          failed_ = true;
        }
      }
      const size_t n = batch.size();
      batch.clear();  // releases the slots (also what is left after an error)
      released_at_ = Clock::now().time_since_epoch().count();
      held_ -= n;
      if (!failed_ && Clock::now() - last_checkpoint > std::chrono::seconds(2)) {
        try {
          writer_->checkpoint();
        } catch (const std::exception& e) {
          summary_.error = e.what();
          failed_ = true;
        }
        last_checkpoint = Clock::now();
      }
    }
  }

  // Runs of consecutive seqs go to the writer together; each gap is reported first.
  void write_batch(const std::deque<Frame>& batch) {
    records_.clear();
    for (const Frame& f : batch) {
      if (f.after_restart()) {  // a new broker: its seqs start again
        flush_records();
        std::optional<Discontinuity> d;
        {
          std::lock_guard lock(restarts_mu_);
          if (!restarts_.empty()) {
            d = std::move(restarts_.front());
            restarts_.pop_front();
          }
        }
        if (d) {
          d->frame = frames_given_;
          writer_->discontinuity(*d);
        }
        last_seq_.reset();
      }
      ++frames_given_;
      if (last_seq_ && f.seq() > *last_seq_ + 1) {
        flush_records();
        writer_->missed(*last_seq_ + 1, f.seq() - *last_seq_ - 1);
      }
      last_seq_ = f.seq();
      const auto& m = f.meta();
      FrameRecord& r = records_.emplace_back(FrameRecord{
          f.seq(), f.camera_frame_id(), m.mono_ns(), m.realtime_ns(), std::nullopt, f.pixels()});
      if (m.has_hw_timestamp()) r.hw_timestamp_ns = m.hw_timestamp_ns();
      if (m.source_stream() && m.source_stream()->size() > 0) {
        r.source_stream = m.source_stream()->string_view();
        r.source_seq = m.source_seq();
      }
      if (const int64_t pos = f.sequence_position(); pos >= 0) {
        r.position = pos;
        r.t = f.index('t').value_or(0);
        r.c = f.index('c').value_or(0);
        r.z = f.index('z').value_or(0);
      }
    }
    flush_records();
  }

  void flush_records() {
    if (!records_.empty()) writer_->write_batch(records_);
    records_.clear();
  }

  std::unique_ptr<Writer> writer_;
  SaveSummary& summary_;
  std::atomic<bool>& failed_;
  std::optional<uint64_t> last_seq_;
  uint64_t frames_given_ = 0;  // to the writer
  std::mutex restarts_mu_;
  std::deque<Discontinuity> restarts_;
  std::vector<FrameRecord> records_;  // reused
  std::atomic<uint64_t> held_{0};     // pushed, not yet released
  std::atomic<Clock::rep> released_at_{0};
  FrameQueue queue_;
  std::thread thread_;
};

std::map<std::string, std::string> camera_properties(Client& client, const std::string& camera) {
  std::map<std::string, std::string> out;
  for (const auto& p : client.camera(camera).properties()) out[p.name] = p.value;
  return out;
}

uint64_t next_seq_of(Client& client, const std::string& stream) {
  for (const auto& s : client.status().streams)
    if (s.name == stream) return s.published + s.dropped;  // every frame made took a seq
  return 0;
}

}  // namespace

const char* to_string(Format f) {
  switch (f) {
    case Format::Zarr:
      return "zarr";
    case Format::Zarr3:
      return "zarr3";
    case Format::Tiff:
      return "tiff";
    case Format::Raw:
      return "raw";
  }
  return "?";
}

std::string member_path(Format format, const std::string& root, const std::string& name) {
  if (format != Format::Tiff) return root + "/" + name;
  for (const char* ext : {".ome.tiff", ".ome.tif", ".tiff", ".tif"})
    if (ends_with(root, ext))
      return root.substr(0, root.size() - std::strlen(ext)) + "." + name + ext;
  return root + "." + name + ".ome.tif";
}

std::string sequence_path(Format format, const std::string& root, uint64_t id) {
  return member_path(format, root, "seq-" + std::to_string(id));
}

Format format_for_path(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (ends_with(p, ".zarr")) return Format::Zarr;
  if (ends_with(p, ".tif") || ends_with(p, ".tiff")) return Format::Tiff;
  return Format::Raw;
}

namespace {

bool is_zarr(Format f) {
  return f == Format::Zarr || f == Format::Zarr3;
}

// A group of datasets (--sequences all: one per sequence; several streams: one per stream) at
// `path`: Zarr, a group with `attributes`; raw, a directory; TIFF files sit beside each other.
void prepare_group(Format format, const std::string& path, const nlohmann::json& attributes) {
  if (format == Format::Tiff) return;
  if (format == Format::Raw) {
    std::error_code ec;
    fs::create_directories(path, ec);
    if (ec) throw std::runtime_error("cannot create " + path + ": " + ec.message());
    return;
  }
  zarr::write_group(path, format == Format::Zarr3 ? 3 : 2, attributes);
}

// --sequences all: the Zarr group's attributes list the sequences saved.
void list_group(Format format, const std::string& path, const std::string& stream,
                const nlohmann::json& sequences) {
  if (!is_zarr(format)) return;
  zarr::write_group(
      path, format == Format::Zarr3 ? 3 : 2,
      {{"framebroker", {{"version", 1}, {"stream", stream}, {"sequences", sequences}}}});
}

// One stream's save, as save_stream() runs it.
struct StreamJob {
  std::string stream, path;  // path: its dataset (or group of sequences)
  Format format = Format::Zarr;
  // A dataset's writer, for the dataset at `path`.
  std::function<std::unique_ptr<Writer>(const std::string& path)> make;
  bool progress = false;  // a progress line on stderr
};

}  // namespace

// Saves one stream into job.path (its output prepared by the caller): its own connection,
// subscription, writer thread and accounting. Runs on its own thread when there are several.
static SaveSummary save_stream(const SaveOptions& o, const StreamJob& job) {
  const Format format = job.format;
  SaveSummary summary{job.path, to_string(format), job.stream};
  if (o.all_sequences) prepare_group(format, job.path, nlohmann::json::object());

  ConnectOptions co;
  co.socket_path = o.socket;
  co.instance = o.instance;
  co.client_name = "fbsave";
  co.role = "saver";
  co.reconnect = o.reconnect;
  co.reconnect_give_up = std::chrono::milliseconds(int64_t(o.reconnect_timeout_s * 1000));
  auto client = Client::connect(co);
  auto sub = client.subscribe(job.stream, {.mode = Mode::Every});
  auto props = camera_properties(client, job.stream);
  std::optional<uint64_t> expected_first;
  if (o.start) {
    expected_first = next_seq_of(client, job.stream);
    client.camera(job.stream).start(o.frames);
  }

  const bool progress = job.progress;
  std::atomic<bool> failed{false};
  std::unique_ptr<WriterThread> wt;
  std::shared_ptr<const Sequence> seq;        // the open dataset's sequence (null: none)
  std::optional<uint64_t> ds_first, ds_last;  // the open dataset's first and last seq
  bool any_dataset = false;
  nlohmann::json group = nlohmann::json::array();  // --sequences all: the datasets written
  const auto t0 = Clock::now();
  auto last_progress = t0, last_frame = t0;
  const auto end = o.duration_s ? t0 + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(*o.duration_s))
                                : Clock::time_point::max();
  // After a broker restart: the seqs accounted for before it, and the new broker's first seq.
  uint64_t covered_before = 0;
  std::optional<uint64_t> session_first;
  auto covered = [&] {  // seqs accounted for: written or missed
    if (!summary.last_seq) return uint64_t(0);
    return covered_before + *summary.last_seq -
           session_first.value_or(expected_first.value_or(*summary.first_seq)) + 1;
  };

  // A dataset for the frame `f` (of the sequence `sq`, or of none).
  auto open_dataset = [&](const Frame& f, std::shared_ptr<const Sequence> sq) {
    std::string path = job.path;
    if (o.all_sequences) {
      path = sequence_path(format, job.path, sq->id);
      std::error_code ec;
      if (fs::exists(path, ec)) {
        if (!o.overwrite)
          throw std::runtime_error(path + " already exists; pass --overwrite to replace it");
        fs::remove_all(path, ec);
      }
    }
    auto writer = job.make(path);
    writer->begin(dataset_info(o, job.stream, f, props, sq.get()));
    if (sq && f.seq() > sq->first_seq)  // the sequence's first positions never came
      writer->missed(sq->first_seq, f.seq() - sq->first_seq);
    else if (!sq && expected_first && f.seq() > *expected_first)
      writer->missed(*expected_first, f.seq() - *expected_first);
    wt = std::make_unique<WriterThread>(std::move(writer), summary, failed);
    seq = std::move(sq);
    ds_first = f.seq();
    ds_last.reset();
    any_dataset = true;
    if (seq) summary.sequences.push_back(seq->id);
    if (o.all_sequences) {
      group.push_back({{"id", seq->id},
                       {"axes", seq->spec.axes_text()},
                       {"path", fs::path(path).filename().string()}});
      list_group(format, job.path, job.stream, group);
    }
  };
  // Finishes the open dataset; `sq_end`: how its sequence ended, if it did.
  auto close_dataset = [&](std::optional<SequenceEnd> sq_end) {
    wt->join();
    auto& w = wt->writer();
    // Frames announced for this acquisition that never came are missed too.
    if (ds_last && summary.error.empty() && !g_stop && summary.restarts == 0) {
      uint64_t end_seq = 0;
      if (seq && sq_end && sq_end->id == seq->id)
        end_seq = seq->first_seq + sq_end->frames + sq_end->missed;
      else if (!seq && o.frames)
        end_seq = expected_first.value_or(*ds_first) + *o.frames;
      if (end_seq > *ds_last + 1) w.missed(*ds_last + 1, end_seq - *ds_last - 1);
    }
    try {
      w.finish();
    } catch (const std::exception& e) {
      if (summary.error.empty()) summary.error = e.what();
    }
    const auto t = w.totals();
    summary.written += t.written;
    summary.missed += t.missed;
    summary.bytes += t.bytes;
    wt.reset();
  };

  try {
    while (!g_stop && !failed && Clock::now() < end && (!o.frames || covered() < *o.frames)) {
      auto f = sub.next(std::chrono::milliseconds(100));
      const auto now = Clock::now();
      if (f) {
        auto sq = sequence_of(*f, sub);
        if (wt && seq && (!sq || sq->id != seq->id)) {
          close_dataset(sub.sequence_end());  // its sequence is over
          if (!o.all_sequences) break;
        }
        if (!wt) {
          if (o.all_sequences && !sq) {
            ++summary.outside_sequences;  // --sequences all saves sequences only
            continue;
          }
          try {
            open_dataset(*f, std::move(sq));
          } catch (const std::exception& e) {
            if (!any_dataset) throw;
            summary.error = e.what();
            break;
          }
        }
        if (f->after_restart()) {
          const auto r = sub.restart();
          covered_before = covered();
          session_first = f->seq();
          ++summary.restarts;
          Discontinuity d;
          if (r) {
            d.had_frame = r->had_frame;
            d.last_seq_before = r->last_seq_before;
            d.outage_ms = uint64_t(r->outage.count());
            d.reason = "broker restarted: " + r->reason;
          } else {
            d.reason = "broker restarted";
          }
          d.first_seq_after = f->seq();
          if (!o.json)
            std::fprintf(stderr, "\nfbsave: the broker restarted (%s); %llu ms away, going on\n",
                         d.reason.c_str(), (unsigned long long)d.outage_ms);
          wt->restarted(d);
        }
        if (!summary.first_seq) summary.first_seq = f->seq();
        summary.last_seq = f->seq();
        ds_last = f->seq();
        last_frame = now;
        wt->push(std::move(*f));
      } else if (auto sq_end = sub.sequence_end(); wt && seq && sq_end && sq_end->id == seq->id) {
        close_dataset(sq_end);  // the sequence finished: every frame of it is here
        if (!o.all_sequences) break;
      } else if (sub.ended()) {
        break;  // a published stream's producer finished: every frame it made is here
      } else if (const auto released = wt ? wt->all_released_at() : std::optional(last_frame);
                 o.start && released &&
                 now - std::max(last_frame, *released) > std::chrono::milliseconds(250)) {
        // A finite acquisition that ended with frames lost at its end (not merely held back
        // while the writer held max_hold frames: 250 ms since it released them all).
        bool running = false;
        try {
          for (const auto& c : client.status().cameras)
            if (c.name == job.stream) running = c.running;
        } catch (const Error& e) {
          if (!o.reconnect || e.code() != Errc::BrokerLost) throw;
          running = true;  // away: next() reconnects
        }
        if (!running) break;
      }
      if (progress && wt && now - last_progress > std::chrono::milliseconds(500)) {
        const auto t = wt->writer().totals();
        const double dt = std::chrono::duration<double>(now - t0).count();
        std::fprintf(stderr, "\r%s: %llu frames  %.1f MB/s  missed %llu  queue %zu   ",
                     job.path.c_str(), (unsigned long long)(summary.written + t.written),
                     double(summary.bytes + t.bytes) / dt / 1e6,
                     (unsigned long long)(summary.missed + t.missed), wt->queue().depth());
        last_progress = now;
      }
    }
  } catch (const Error& e) {
    if (!any_dataset) throw;
    summary.error = e.what();  // e.g. the broker went away: keep what was written
  }
  if (wt) close_dataset(sub.sequence_end());
  if (o.start) {
    try {
      client.camera(job.stream).stop();
    } catch (const Error&) {
      // the broker is gone; nothing to stop
    }
  }
  if (!any_dataset && summary.error.empty() && !g_stop)
    summary.error = "no frame arrived from " + job.stream + "; nothing was written";
  if (progress) std::fprintf(stderr, "\n");
  summary.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return summary;
}

namespace {

// Several streams: refuses what cannot work before anything is subscribed or written (a stream
// named twice or not on the broker; --as-channels without --frames, outside Zarr or with streams
// of different formats, as far as the broker's status tells them).
void check_streams(const SaveOptions& o, Format format) {
  for (size_t i = 0; i < o.streams.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (o.streams[i] == o.streams[j])
        throw std::runtime_error("stream " + o.streams[i] + " is given twice");
  if (o.as_channels) {
    if (!is_zarr(format))
      throw std::runtime_error(
          "--as-channels writes one OME-Zarr image: give a .zarr path or --format zarr or zarr3 "
          "(for " +
          std::string(to_string(format)) +
          ", save the streams without --as-channels: one dataset per stream)");
    if (!o.frames)
      throw std::runtime_error(
          "--as-channels needs --frames N: the image's t extent is fixed when it is created");
    if (o.all_sequences)
      throw std::runtime_error(
          "--as-channels cannot save --sequences all (one image holds one "
          "acquisition); save the streams without --as-channels");
  }
  ConnectOptions co;
  co.socket_path = o.socket;
  co.instance = o.instance;
  co.client_name = "fbsave";
  co.role = "saver";
  const auto status = Client::connect(co).status();
  const StreamStatus* first = nullptr;
  for (const auto& name : o.streams) {
    const StreamStatus* found = nullptr;
    for (const auto& s : status.streams)
      if (s.name == name) found = &s;
    if (!found) {
      std::string names;
      for (const auto& s : status.streams) names += (names.empty() ? "" : ", ") + s.name;
      throw std::runtime_error("no stream " + name +
                               " on the broker (it has: " + (names.empty() ? "none" : names) + ")");
    }
    if (!o.as_channels || found->width == 0) continue;
    if (!first) {
      first = found;
    } else if (found->width != first->width || found->height != first->height ||
               found->pixel_type != first->pixel_type) {
      const auto text = [](const StreamStatus& s) {
        return s.name + " is " + std::to_string(s.width) + "x" + std::to_string(s.height) + " " +
               s.pixel_type;
      };
      throw std::runtime_error("--as-channels needs streams of one format: " + text(*first) + ", " +
                               text(*found) +
                               " (without --as-channels each stream is an image of its own)");
    }
  }
}

// The first error of the streams', named by its stream.
std::string first_error(const std::vector<SaveSummary>& streams) {
  for (const auto& s : streams)
    if (!s.error.empty()) return s.stream + ": " + s.error;
  return {};
}

}  // namespace

SaveSummary run_save(const SaveOptions& o) {
  if (o.streams.empty()) throw std::runtime_error("no stream to save");
  const Format format = o.format.value_or(format_for_path(o.path));
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const auto writer_of = [format](const std::string& path) { return make_writer(format, path); };
  if (o.streams.size() == 1) {
    prepare_output(o.path, o.overwrite);
    return save_stream(o,
                       {o.streams[0], o.path, format, writer_of, !o.json && isatty(STDERR_FILENO)});
  }

  // Several streams, each saved by save_stream() on a thread of its own: into a dataset of its
  // own in the group o.path, or (--as-channels) into one channel of the image o.path.
  check_streams(o, format);
  std::vector<StreamJob> jobs;
  std::unique_ptr<ChannelSet> channels;
  if (o.as_channels) {
    prepare_output(o.path, o.overwrite);
    channels = std::make_unique<ChannelSet>(make_writer(format, o.path), o.path,
                                            format == Format::Zarr3 ? 3 : 2, o.streams, *o.frames);
    for (uint32_t c = 0; c < o.streams.size(); ++c)
      jobs.push_back({o.streams[c], o.path, format,
                      [&channels, c](const std::string&) { return channels->channel(c); }});
  } else {
    if (format == Format::Tiff) {  // run.<stream>.ome.tif beside each other; no group
      for (const auto& s : o.streams) prepare_output(member_path(format, o.path, s), o.overwrite);
    } else {
      prepare_output(o.path, o.overwrite);
      prepare_group(format, o.path, {{"framebroker", {{"version", 1}, {"streams", o.streams}}}});
    }
    for (const auto& s : o.streams)
      jobs.push_back({s, member_path(format, o.path, s), format, writer_of});
  }

  SaveSummary summary{o.path, to_string(format), ""};
  summary.streams.resize(jobs.size());
  std::vector<std::exception_ptr> thrown(jobs.size());
  const auto t0 = Clock::now();
  {
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < jobs.size(); ++i)
      threads.emplace_back([&, i] {
        try {
          summary.streams[i] = save_stream(o, jobs[i]);
        } catch (...) {  // e.g. the broker refused the subscription: the others stop too
          thrown[i] = std::current_exception();
          summary.streams[i] = SaveSummary{jobs[i].path, to_string(format), jobs[i].stream};
          g_stop = true;
        }
      });
  }
  for (const auto& s : summary.streams) {
    summary.stream += (summary.stream.empty() ? "" : ",") + s.stream;
    summary.written += s.written;
    summary.missed += s.missed;
    summary.bytes += s.bytes;
    summary.restarts += s.restarts;
  }
  summary.as_channels = o.as_channels;
  summary.error = first_error(summary.streams);
  if (channels)
    if (auto e = channels->finish(); !e.empty() && summary.error.empty()) summary.error = e;
  summary.elapsed_s = std::chrono::duration<double>(Clock::now() - t0).count();
  for (const auto& e : thrown)
    if (e) std::rethrow_exception(e);
  return summary;
}

}  // namespace framebroker::fbsave
