#include "stream.hpp"

#include <spdlog/spdlog.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "cameras/thread_priority.hpp"
#include "framebroker/frame_meta_generated.h"
#include "framebroker/internal/sequence_wire.hpp"
#include "framebroker/internal/wire.hpp"

namespace framebroker::daemon {

namespace {

uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// Cameras know nothing of the schema, so the two enums are kept in step here, value by value.
constexpr meta::PixelType to_meta(cameras::PixelType t) {
  return meta::PixelType(uint8_t(t));
}
using cameras::PixelType;
static_assert(to_meta(PixelType::Mono8) == meta::PixelType::Mono8);
static_assert(to_meta(PixelType::Mono10) == meta::PixelType::Mono10);
static_assert(to_meta(PixelType::Mono12) == meta::PixelType::Mono12);
static_assert(to_meta(PixelType::Mono14) == meta::PixelType::Mono14);
static_assert(to_meta(PixelType::Mono16) == meta::PixelType::Mono16);
static_assert(to_meta(PixelType::Mono32F) == meta::PixelType::Mono32F);
static_assert(to_meta(PixelType::RGB8) == meta::PixelType::RGB8);
static_assert(to_meta(PixelType::BGRA8) == meta::PixelType::BGRA8);
static_assert(to_meta(PixelType::RGB16) == meta::PixelType::RGB16);
static_assert(meta::PixelType::MAX == meta::PixelType::RGB16,
              "a new pixel type needs a line above");

// On a camera thread's first loan: SCHED_FIFO realtime_priority, or the fallback (logged once
// per broker).
void raise_camera_thread_priority(const StreamConfig& config) {
  thread_local bool done = false;  // a camera thread lives for one start
  if (done) return;
  done = true;
  const auto r = cameras::raise_thread_priority(config.realtime_priority);
  static std::atomic<bool> logged{false};
  if (r.kind == cameras::ThreadPriorityResult::Kind::Fifo)
    spdlog::debug("stream {}: camera thread at {}", config.name, r.describe());
  else if (!logged.exchange(true))
    spdlog::warn("realtime_priority: camera threads: {}", r.describe());
}

}  // namespace

const char* to_string(Overflow o) {
  return o == Overflow::Block ? "block" : "drop";
}

Stream::Stream(boost::asio::io_context& io, std::string instance, StreamConfig config,
               std::unique_ptr<cameras::Camera> camera, std::function<void(Stream&)> on_frames)
    : instance_(std::move(instance)),
      config_(std::move(config)),
      camera_(std::move(camera)),
      on_frames_(std::move(on_frames)),
      fanout_(*this, config_.slots),
      bell_(io) {
  bell_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (bell_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + strerror(errno));
  bell_.assign(bell_fd_);
  ensure_generation();
  wait_for_bell();
}

void Stream::wait_for_bell() {
  bell_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [this](boost::system::error_code ec) {
                     if (ec) return;  // cancelled: the stream is going away
                     uint64_t rings;
                     [[maybe_unused]] auto n = ::read(bell_fd_, &rings, sizeof rings);
                     if (state_) {
                       std::lock_guard lock(*state_);
                       drain();
                     } else {
                       drain();
                     }
                     wait_for_bell();
                   });
}

Stream::~Stream() {
  collect_releases_ = nullptr;  // the broker may be tearing down what it would look at
  camera_->stop();
  drain();
  fanout_.clear_latest();
  boost::system::error_code ignored;
  bell_.cancel(ignored);
}

uint32_t ring_slot_cap(uint64_t slot_bytes) {
  constexpr uint64_t kMaxSlots = 16384;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const uint64_t ram = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
  const uint64_t stride = std::max<uint64_t>(shm::round_up_to_page(slot_bytes), 1);
  const uint64_t by_memory = ram ? ram / 8 / stride : kMaxSlots;
  return uint32_t(std::clamp<uint64_t>(by_memory, StreamConfig::kMinSlots, kMaxSlots));
}

uint32_t ring_slots_for_time(uint32_t ring_ms, double fps, uint64_t slot_bytes) {
  if (!(fps > 0)) return StreamConfig::kMinSlots;  // free-running or unknown
  const double want = std::ceil(fps * ring_ms / 1000.0);
  const uint32_t cap = ring_slot_cap(slot_bytes);
  return want >= cap ? cap : std::max(StreamConfig::kMinSlots, uint32_t(want));
}

uint32_t Stream::slot_count_for(uint64_t slot_bytes) const {
  if (config_.ring_mb != 0) {
    const uint64_t stride = shm::round_up_to_page(slot_bytes);
    return uint32_t(std::max<uint64_t>(2, uint64_t(config_.ring_mb) * 1024 * 1024 / stride));
  }
  if (config_.ring_ms == 0) return config_.slots;
  double fps = 0;
  try {
    fps = std::stod(camera_->get("FrameRate"));
  } catch (const std::exception&) {
    // a camera without a readable FrameRate: the rate is unknown
  }
  return ring_slots_for_time(config_.ring_ms, fps, slot_bytes);
}

void Stream::ensure_generation() {
  const uint64_t need = std::max<uint64_t>(camera_->format().frame_bytes(), 1);
  const uint32_t slots = slot_count_for(need);
  if (current_ && current_->segment->slot_bytes() >= need && current_->ring->size() == slots)
    return;
  new_generation();
}

void Stream::new_generation() {
  const uint64_t need = std::max<uint64_t>(camera_->format().frame_bytes(), 1);
  const uint32_t slots = slot_count_for(need);
  drain();
  const uint32_t gen = current_ ? current_->gen + 1 : 1;
  const uint64_t slot_bytes = shm::round_up_to_page(need);
  auto seg =
      shm::Segment::create(shm::segment_name(instance_, config_.name, gen), instance_, config_.name,
                           gen, slots, slot_bytes, config_.lock_memory, config_.group);
  spdlog::info("stream {}: generation {} with {} slots of {} bytes in {}", config_.name, gen, slots,
               slot_bytes, seg->name());
  fanout_.clear_latest();
  if (current_) {
    const uint32_t old = current_->gen;
    retired_[old] = std::move(current_);
    retire_if_unreferenced(old);
  }
  current_ = std::make_unique<Generation>(gen, std::move(seg));
  fanout_.set_slots(slots);
}

void Stream::start(std::optional<uint64_t> frames) {
  if (camera_->running())
    throw cameras::CameraError("camera " + camera_->name() + " is already running");
  try {
    ensure_generation();
    current_->ring->resume_waits();
    recycle_.clear();
    camera_->start(*this, frames);
    error_.clear();
  } catch (const std::exception& e) {
    error_ = e.what();
    throw;
  }
}

void Stream::stop() {
  current_->ring->interrupt_waits();
  camera_->stop();
  end_sequence();
}

void Stream::snap() {
  if (camera_->running()) throw cameras::CameraError("camera " + camera_->name() + " is running");
  ensure_generation();
  // snap() runs on the socket thread, which is the one that frees slots:
  // waiting for one here could only time out.
  snapping_ = true;
  try {
    camera_->snap(*this);
  } catch (...) {
    snapping_ = false;
    throw;
  }
  snapping_ = false;
}

Generation* Stream::generation(uint32_t gen) {
  if (current_ && current_->gen == gen) return current_.get();
  auto it = retired_.find(gen);
  return it == retired_.end() ? nullptr : it->second.get();
}

const std::vector<uint8_t>& Stream::meta_of(const FrameRef& f) {
  return generation(f.gen)->meta[f.slot];
}

int64_t Stream::latest_seq() const {
  auto l = fanout_.latest();
  return l ? int64_t(l->seq) : -1;
}

void Stream::tick(double seconds) {
  const uint64_t p = published_.load();
  fps_ = seconds > 0 ? double(p - published_at_tick_) / seconds : 0;
  published_at_tick_ = p;
  // A camera that stopped on its own (an error) ends its sequence early; one whose last
  // positions were lost (nothing drained after them) ends it here.
  if (running_ && !committed_on_socket_thread_ && !camera_->running()) end_sequence();
  if (finish_sequence_if_done() && on_frames_) on_frames_(*this);
}

// ---- sequences ----

namespace {

Fanout::Message finished_message(const flatbuffers::FlatBufferBuilder& fbb) {
  return std::make_shared<const std::vector<uint8_t>>(fbb.GetBufferPointer(),
                                                      fbb.GetBufferPointer() + fbb.GetSize());
}

}  // namespace

std::shared_ptr<const Sequence> Stream::begin_sequence(uint64_t id, SequenceSpec spec) {
  end_sequence();
  auto sq = std::make_shared<Sequence>();
  sq->id = id;
  sq->stream = config_.name;
  sq->spec = std::move(spec);
  sq->first_seq = next_seq_.load();
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateSequenceStarted(fbb, fbb.CreateString(config_.name), id,
                                          wire::to_wire(fbb, sq->spec), sq->first_seq);
  wire::finish(fbb, 0, wire::Message::SequenceStarted, body);
  started_msg_ = finished_message(fbb);
  sequence_end_ = sq->first_seq + sq->spec.frames();
  sequence_frames_ = 0;
  last_position_ = -1;
  running_ = true;
  complete_ = false;
  sequence_ = std::move(sq);
  fanout_.queue_message(started_msg_, sequence_->first_seq);
  return sequence_;
}

void Stream::end_sequence() {
  if (!running_) return;
  sequence_end_ = std::min(sequence_end_, next_seq_.load());
  if (finish_sequence_if_done() && on_frames_) on_frames_(*this);
}

bool Stream::finish_sequence_if_done() {
  if (!running_ || next_seq_.load() < sequence_end_ || pending_commits()) return false;
  running_ = false;
  const uint64_t positions = sequence_end_ - sequence_->first_seq;
  complete_ = positions == sequence_->spec.frames();
  flatbuffers::FlatBufferBuilder fbb;
  auto body =
      wire::CreateSequenceFinished(fbb, fbb.CreateString(config_.name), sequence_->id,
                                   sequence_frames_, positions - sequence_frames_, complete_);
  wire::finish(fbb, 0, wire::Message::SequenceFinished, body);
  fanout_.queue_message(finished_message(fbb), sequence_end_);
  spdlog::info("stream {}: sequence {} finished: {} frames, {} missed{}", config_.name,
               sequence_->id, sequence_frames_, positions - sequence_frames_,
               complete_ ? "" : ", stopped early");
  return true;
}

Stream::SequenceProgress Stream::sequence_progress() const {
  SequenceProgress p;
  if (!sequence_) return p;
  p.sequence = sequence_;
  p.positions = std::min(next_seq_.load(), sequence_end_) - sequence_->first_seq;
  p.frames = sequence_frames_;
  p.last_position = last_position_.load();
  p.running = running_;
  p.complete = complete_;
  return p;
}

uint64_t Stream::position_of(std::span<const uint32_t> index) const {
  if (!running_)
    throw std::invalid_argument("a frame has a sequence index, but no sequence runs on " +
                                config_.name + " (begin_sequence first)");
  const auto& spec = sequence_->spec;
  const auto pos = spec.position_of(index);
  if (!pos) {
    std::string given;
    for (const uint32_t i : index) given += (given.empty() ? "" : ",") + std::to_string(i);
    throw std::invalid_argument("sequence index (" + given + ") lies outside the axes " +
                                spec.axes_text() + " (indices count from 0, in the order " +
                                spec.order() + ")");
  }
  return *pos;
}

// ---- producer thread ----

std::optional<cameras::Loan> Stream::loan(size_t bytes) {
  if (config_.realtime_priority > 0 && !snapping_ && !committed_on_socket_thread_)
    raise_camera_thread_priority(config_);
  Generation& g = *current_;
  std::optional<uint32_t> slot;
  if (bytes <= g.segment->slot_bytes()) {
    slot = g.ring->loan();
    if (!slot && collect_if_unlocked()) slot = g.ring->loan();
    // Subscribers of a blocking stream tell the broker of each release (their lanes' wake flag
    // is set), so the socket thread frees the slot this waits for.
    if (!slot && config_.overflow == Overflow::Block && !snapping_)
      slot = g.ring->loan_wait(config_.block_timeout);
  }
  if (!slot) {
    // The frame is lost, but it still costs a seq so that every loss is a gap.
    next_seq_.fetch_add(1);
    dropped_full_.fetch_add(1);
    return std::nullopt;
  }
  return cameras::Loan{g.segment->writable_slot(*slot).first(bytes), *slot, g.gen};
}

bool Stream::collect_if_unlocked() {
  if (!state_ || !collect_releases_ || snapping_ || committed_on_socket_thread_) return false;
  std::unique_lock lock(*state_, std::try_to_lock);
  if (!lock.owns_lock() || collect_releases_(*this) == 0) return false;
  if (on_frames_) on_frames_(*this);  // a `latest` subscriber may be owed a newer frame
  return true;
}

void Stream::commit(const cameras::Loan& loan, const cameras::FrameInfo& info) {
  Generation& g = *current_;
  const uint64_t seq = next_seq_.fetch_add(1);
  const uint64_t mono_ns = clock_ns(CLOCK_MONOTONIC);
  g.commit_ns[loan.slot] = mono_ns;
  build_meta(loan, info, seq, mono_ns);
  g.segment->records()[loan.slot] = {seq, loan.data.size()};
  g.ring->commit(loan.slot);
  g.commits.push(FrameRef{g.gen, loan.slot, seq});
  g.segment->count_published(seq + 1);
  published_.fetch_add(1);
  // Delivering here saves a wake-up per frame, but makes the camera thread do all the work; at
  // high rates the socket thread drains instead, in batches, in parallel with the camera (and
  // a snap commits on the socket thread, which holds the state lock already).
  const bool frames_are_close = mono_ns - last_inline_ns_ < kInlineGapNs;
  if (committed_on_socket_thread_) return;
  if (state_ && !snapping_ && !frames_are_close && !drain_pending_.load()) {
    std::unique_lock lock(*state_, std::try_to_lock);
    if (lock.owns_lock()) {
      last_inline_ns_ = mono_ns;
      return drain();
    }
  }
  if (!drain_pending_.exchange(true)) {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(bell_fd_, &one, sizeof one);
  }
}

void Stream::abort(const cameras::Loan& loan) {
  current_->ring->abort(loan.slot);
}

std::optional<cameras::Loan> Stream::loan_ahead(size_t bytes) {
  if (config_.realtime_priority > 0 && !snapping_ && !committed_on_socket_thread_)
    raise_camera_thread_priority(config_);
  Generation& g = *current_;
  if (bytes > g.segment->slot_bytes()) return std::nullopt;
  const std::optional<uint32_t> slot = g.ring->loan();
  if (!slot) return std::nullopt;
  return cameras::Loan{g.segment->writable_slot(*slot).first(bytes), *slot, g.gen};
}

void Stream::count_dropped(uint64_t frames) {
  next_seq_.fetch_add(frames);
  dropped_full_.fetch_add(frames);
}

void Stream::drop_ring_full() {
  next_seq_.fetch_add(1);
  dropped_full_.fetch_add(1);
}

void Stream::drop(std::string_view reason) {
  next_seq_.fetch_add(1);
  dropped_camera_.fetch_add(1);
  spdlog::debug("stream {}: camera dropped a frame: {}", config_.name, reason);
}

void Stream::build_meta(const cameras::Loan& loan, const cameras::FrameInfo& info, uint64_t seq,
                        uint64_t mono_ns) {
  auto& fbb = meta_fbb_;
  fbb.Clear();
  const auto& f = info.format;
  auto& tags = tag_offsets_;
  tags.clear();
  for (const auto& [k, v] : info.tags)
    tags.push_back(meta::CreateTag(fbb, fbb.CreateString(k), fbb.CreateString(v)));
  // Sorted by key for lookups, stably (a frame's own tag follows an advertised one of the same
  // key) and in place: CreateVectorOfSortedTables' stable_sort takes a temporary buffer.
  const auto before = [&fbb](flatbuffers::Offset<meta::Tag> a, flatbuffers::Offset<meta::Tag> b) {
    return flatbuffers::GetTemporaryPointer(fbb, a)->KeyCompareLessThan(
        flatbuffers::GetTemporaryPointer(fbb, b));
  };
  for (size_t i = 1; i < tags.size(); ++i)
    for (size_t j = i; j > 0 && before(tags[j], tags[j - 1]); --j) std::swap(tags[j], tags[j - 1]);
  auto stream = fbb.CreateString(config_.name);
  auto tag_vec = tags.empty() ? 0 : fbb.CreateVector(tags);
  // Index and position in the sequence: from the frame's position (its seq counts every loss),
  // or as a publisher gave it.
  const Sequence* sq = sequence_.get();
  const bool in_sequence = sq && seq >= sq->first_seq && seq < sequence_end_;
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> index_vec;
  flatbuffers::Offset<flatbuffers::String> axes_str;
  int64_t position = -1;
  if (in_sequence) {
    std::array<uint32_t, SequenceSpec::kAxisLetters.size()> index{};
    const size_t n = sq->spec.axes.size();
    if (info.sequence_index.empty()) {
      position = int64_t(seq - sq->first_seq);
      sq->spec.index_of(uint64_t(position), index);
      index_vec = fbb.CreateVector(index.data(), n);
    } else {
      position = int64_t(sq->spec.position_of(info.sequence_index).value_or(0));
      index_vec = fbb.CreateVector(info.sequence_index.data(), info.sequence_index.size());
    }
    axes_str = fbb.CreateString(sq->spec.order());
    last_position_.store(position);
  }
  auto source = info.source_stream.empty()
                    ? 0
                    : fbb.CreateString(info.source_stream.data(), info.source_stream.size());
  meta::FrameMetaBuilder m(fbb);
  m.add_stream(stream);
  if (!info.source_stream.empty()) m.add_source_stream(source);
  m.add_source_seq(info.source_seq);
  m.add_camera_frame_id(info.camera_frame_id);
  m.add_seq(seq);
  m.add_gen(loan.gen);
  m.add_slot(loan.slot);
  m.add_hw_timestamp_ns(info.hw_timestamp_ns.value_or(0));
  m.add_has_hw_timestamp(info.hw_timestamp_ns.has_value());
  m.add_mono_ns(mono_ns);
  m.add_realtime_ns(clock_ns(CLOCK_REALTIME));
  m.add_width(f.width);
  m.add_height(f.height);
  m.add_stride(f.stride);
  m.add_bytes(loan.data.size());
  m.add_pixel_type(to_meta(f.pixel_type));
  m.add_bit_depth(f.bit_depth);
  m.add_roi_x(f.roi_x);
  m.add_roi_y(f.roi_y);
  m.add_roi_w(f.roi_w);
  m.add_roi_h(f.roi_h);
  m.add_binning_x(f.binning_x);
  m.add_binning_y(f.binning_y);
  m.add_exposure_us(info.exposure_us);
  if (!tags.empty()) m.add_tags(tag_vec);
  if (in_sequence) {
    m.add_sequence_id(sq->id);
    m.add_sequence_axes(axes_str);
    m.add_sequence_index(index_vec);
    m.add_sequence_position(position);
  }
  fbb.Finish(m.Finish());
  auto& out = current_->meta[loan.slot];
  out.assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

// ---- socket thread ----

void Stream::drain() {
  drain_up_to(SIZE_MAX);
}

void Stream::drain_up_to(size_t max) {
  drain_pending_.store(false);
  if (collect_releases_) collect_releases_(*this);
  size_t published = 0;
  FrameRef f;
  while (published < max && current_ && current_->commits.pop(f)) {
    fanout_.publish(f);
    ++published;
    if (running_ && f.seq >= sequence_->first_seq && f.seq < sequence_end_) ++sequence_frames_;
  }
  const bool finished = finish_sequence_if_done();
  if ((published || finished) && on_frames_) on_frames_(*this);
}

void Stream::add_ref(const FrameRef& f) {
  generation(f.gen)->ring->add_ref(f.slot);
}

void Stream::drop_ref(const FrameRef& f) {
  Generation* g = generation(f.gen);
  // The latest-frame cache keeps one reference until the next frame: the round trip ends when
  // the last client let go, recorded once per commit. Decided before the slot can go back to
  // the camera, which then writes commit_ns again.
  uint64_t& committed = g->commit_ns[f.slot];
  const uint32_t refs_after = g->ring->refs(f.slot) - 1;
  if (committed != 0 && (refs_after == 0 || (refs_after == 1 && fanout_.latest() == f))) {
    recycle_.record(clock_ns(CLOCK_MONOTONIC) - committed);
    committed = 0;
  }
  g->ring->drop_ref(f.slot);
  if (g != current_.get()) retire_if_unreferenced(f.gen);
}

void Stream::retire_if_unreferenced(uint32_t gen) {
  auto it = retired_.find(gen);
  if (it == retired_.end() || !it->second->ring->unreferenced()) return;
  spdlog::info("stream {}: generation {} released by every holder; unlinking {}", config_.name, gen,
               it->second->segment->name());
  retired_.erase(it);
}

}  // namespace framebroker::daemon
