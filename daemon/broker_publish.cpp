// Streams that clients publish (docs/publishing.md).
//
// A producer advertises a name and a format; the broker makes the stream's segment exactly as
// for a camera, keeps the file to itself (mode 0640) and passes the producer a writable fd.
// The producer never asks for a slot: the broker lends it free slots ahead (Loaned, credits)
// and the producer commits filled ones in batches. Each commit goes through Stream::commit and
// the fanout like a camera frame. Everything a producer sends is checked against what it was
// lent; a bad commit gets an error and changes nothing.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "broker.hpp"
#include "published_source.hpp"

#include "framebroker/internal/sequence_wire.hpp"

namespace framebroker::daemon {

namespace {

using wire::ErrorCode;

constexpr uint32_t kDefaultSlots = 16;
constexpr uint32_t kMaxSlots = 4096;
constexpr uint32_t kMaxCredits = 8;
constexpr uint64_t kMaxDroppedPerCommit = 1'000'000;

uint64_t key(uint32_t gen, uint32_t slot) {
  return uint64_t(gen) << 32 | slot;
}

std::string str(const flatbuffers::String* s) {
  return s ? s->str() : std::string();
}

bool valid_stream_name(std::string_view n) {
  if (n.empty() || n.size() > 48) return false;
  return std::all_of(n.begin(), n.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
  });
}

uint64_t quarter_of_ram() {
  return uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE)) / 4;
}

}  // namespace

void Broker::set_publish_limits(int gid, std::string group, uint64_t max_ring_bytes,
                                int segment_group) {
  publish_gid_ = gid;
  stream_group_ = segment_group;
  publish_group_ = std::move(group);
  max_publish_bytes_ = max_ring_bytes;
}

Broker::Publication* Broker::publication_of(std::string_view stream) {
  auto it = publications_.find(stream);
  return it == publications_.end() ? nullptr : &it->second;
}

void Broker::on_advertise(Connection& c, uint32_t rid, const wire::Advertise& m) {
  const std::string name = str(m.stream());
  const auto& peer = c.peer();
  if (publish_gid_ >= 0 && peer.uid != 0 && peer.uid != own_uid_ &&
      !peer.in_group(gid_t(publish_gid_)))
    return c.send_error(rid, ErrorCode::PermissionDenied,
                        "publishing on this broker is limited to group " + publish_group_ +
                            "; ask an administrator to add your user to it");
  if (!valid_stream_name(name))
    return c.send_error(
        rid, ErrorCode::InvalidValue,
        "stream name '" + name + "' is not valid: use 1-48 letters, digits, '_', '-' or '.'");
  Stream* existing = find_stream(name);
  Publication* old = publication_of(name);
  if (existing && !old)
    return c.send_error(rid, ErrorCode::NameTaken,
                        "stream '" + name + "' is camera " + existing->camera().name() +
                            " of this broker; publish under another name");
  if (old && !old->ended())
    return c.send_error(rid, ErrorCode::NameTaken,
                        "stream '" + name + "' is already published by " + old->client + " (pid " +
                            std::to_string(old->pid) + ")");

  cameras::FrameFormat fmt;
  const auto pixel = cameras::parse_pixel_type(str(m.pixel_type()));
  if (!pixel)
    return c.send_error(rid, ErrorCode::InvalidValue,
                        "unknown pixel type '" + str(m.pixel_type()) +
                            "' (Mono8, Mono10, Mono12, Mono14, Mono16, Mono32F, RGB8, BGRA8, "
                            "RGB16)");
  fmt.pixel_type = *pixel;
  fmt.width = m.width();
  fmt.height = m.height();
  const uint64_t row = uint64_t(fmt.width) * cameras::bytes_per_pixel(fmt.pixel_type);
  const uint64_t stride = m.stride() ? m.stride() : row;
  if (fmt.width == 0 || fmt.height == 0 || stride < row || stride > UINT32_MAX)
    return c.send_error(rid, ErrorCode::InvalidValue,
                        "format " + std::to_string(fmt.width) + "x" + std::to_string(fmt.height) +
                            " with stride " + std::to_string(stride) +
                            " is not valid: width and height > 0, stride >= width x pixel size");
  fmt.stride = uint32_t(stride);
  fmt.bit_depth = m.bit_depth() ? m.bit_depth() : uint8_t(cameras::bytes_per_pixel(*pixel) * 8);
  fmt.roi_w = fmt.width;
  fmt.roi_h = fmt.height;
  const uint64_t slot_bytes = shm::round_up_to_page(stride * fmt.height);
  const uint64_t limit = max_publish_bytes_ ? max_publish_bytes_ : quarter_of_ram();
  uint64_t slots = m.slots();
  if (!slots)
    slots = m.ring_mb() ? uint64_t(m.ring_mb()) * 1024 * 1024 / slot_bytes : kDefaultSlots;
  if (slots < 2 || slots > kMaxSlots || slots * slot_bytes > limit)
    return c.send_error(rid, ErrorCode::InvalidValue,
                        "a ring of " + std::to_string(slots) + " slots of " +
                            std::to_string(slot_bytes) + " bytes is not allowed: 2 to " +
                            std::to_string(kMaxSlots) + " slots and at most " +
                            std::to_string(limit >> 20) + " MiB (max_publish_mb in the config)");
  const Overflow overflow =
      m.overflow() == wire::PublishOverflow::Drop ? Overflow::Drop : Overflow::Block;

  Stream* s = existing;
  try {
    if (s) {  // an ended stream advertised again: same fanout, a new generation
      static_cast<PublishedSource&>(s->camera()).rearm(fmt);
      s->set_ring(uint32_t(slots), overflow);
      s->set_ended(false);
      s->new_generation();
    } else {
      StreamConfig config;
      config.name = name;
      config.slots = uint32_t(slots);
      config.overflow = overflow;
      config.group = stream_group_;
      s = &add_stream(std::move(config), std::make_unique<PublishedSource>(name, fmt));
      s->set_committed_on_socket_thread();
    }
    s->start(std::nullopt);
  } catch (const std::exception& e) {
    spdlog::error("advertise {} by client {}: {}", name, c.id(), e.what());
    return c.send_error(rid, ErrorCode::Internal,
                        std::string("cannot create the stream: ") + e.what());
  }

  Publication& p = publications_[name];
  p = Publication{};
  p.connection = c.id();
  p.client = c.client_name();
  p.pid = peer.pid;
  p.blocking = overflow == Overflow::Block;
  p.credits = std::clamp<uint32_t>(uint32_t(slots) / 2, 1, kMaxCredits);
  if (m.tags())
    for (const auto* t : *m.tags()) p.tags.emplace_back(str(t->key()), str(t->value()));

  const Generation& g = *s->current();
  flatbuffers::FlatBufferBuilder fbb;
  auto body =
      wire::CreateAdvertised(fbb, fbb.CreateString(name), fbb.CreateString(g.segment->name()),
                             g.gen, g.ring->size(), g.segment->slot_bytes(), fmt.stride);
  wire::finish(fbb, rid, wire::Message::Advertised, body);
  const int fd = ::shm_open(g.segment->name().c_str(), O_RDWR | O_CLOEXEC, 0);
  const bool sent = fd >= 0 && c.send_with_fd(fbb, fd);
  if (fd >= 0) ::close(fd);
  if (!sent) {
    spdlog::error("advertise {}: could not pass the segment to client {}", name, c.id());
    c.send_error(rid, ErrorCode::Internal,
                 "the broker could not pass the segment; advertise on a connection of its own");
    return end_publication(name);
  }
  spdlog::info("client {} ({} pid {}) publishes {}: {}x{} {}, {} slots, overflow {}", c.id(),
               c.client_name(), peer.pid, name, fmt.width, fmt.height,
               cameras::to_string(fmt.pixel_type), slots, to_string(overflow));
  grant_loans(*s, p);
}

void Broker::grant_loans(Stream& s, Publication& p) {
  if (p.ended()) return;
  auto conn = connections_.find(p.connection);
  if (conn == connections_.end()) return;
  const uint32_t outstanding = uint32_t(p.loans.size());
  uint32_t want = p.credits > outstanding ? p.credits - outstanding : 0;
  if (p.blocking) {
    // Every lent slot becomes a frame every `every` subscriber must take: lend no more than the
    // slowest can take, so a blocking producer waits instead of making a subscriber miss.
    const uint64_t committed = s.pending_commits();
    const uint64_t room = s.fanout().every_room();
    want = uint32_t(std::min<uint64_t>(
        want, room > outstanding + committed ? room - outstanding - committed : 0));
  }
  if (want == 0) return;
  Generation& g = *s.current();
  loan_batch_.clear();
  while (loan_batch_.size() < want) {
    const auto loan = s.loan_ahead(g.segment->slot_bytes());
    if (!loan) break;
    p.loans.push_back(key(loan->gen, loan->slot));
    loan_batch_.push_back(loan->slot);
  }
  if (loan_batch_.empty()) return;
  flatbuffers::FlatBufferBuilder& fbb = deliver_fbb_;
  fbb.Clear();
  auto body =
      wire::CreateLoaned(fbb, fbb.CreateString(s.name()), g.gen, fbb.CreateVector(loan_batch_));
  wire::finish(fbb, 0, wire::Message::Loaned, body);
  conn->second->send(fbb);
}

void Broker::on_commit(Connection& c, const wire::Commit& m) {
  const std::string_view name = m.stream() ? m.stream()->string_view() : std::string_view();
  Publication* p = publication_of(name);
  Stream* s = find_stream(name);
  if (!p || !s || p->connection != c.id())
    return c.send_error(
        0, ErrorCode::NotLoaned,
        "commit on '" + std::string(name) + "', which this client does not publish");
  if (m.dropped() > kMaxDroppedPerCommit)
    return c.send_error(
        0, ErrorCode::InvalidValue,
        "a Commit may report at most " + std::to_string(kMaxDroppedPerCommit) + " dropped frames");
  if (m.dropped()) s->count_dropped(m.dropped());
  auto& source = static_cast<PublishedSource&>(s->camera());
  const cameras::FrameFormat fmt = source.format();
  Generation& g = *s->current();
  ErrorCode first_error = ErrorCode::None;
  std::string bad;
  size_t bad_count = 0;
  auto refuse = [&](ErrorCode code, const std::string& why) {
    if (first_error == ErrorCode::None) first_error = code;
    if (++bad_count <= 4) bad += (bad.empty() ? "" : "; ") + why;
  };
  cameras::FrameInfo& info = p->scratch;
  info.format = fmt;
  if (m.frames()) {
    for (const auto* f : *m.frames()) {
      // Built only for a refusal: a good commit allocates nothing here.
      auto where = [f] {
        return "gen " + std::to_string(f->gen()) + " slot " + std::to_string(f->slot());
      };
      if (!p->lent(key(f->gen(), f->slot()))) {
        refuse(ErrorCode::NotLoaned, where() + " is not on loan to this client (committed twice?)");
        continue;
      }
      if (f->bytes() > g.segment->slot_bytes() || f->bytes() > fmt.frame_bytes()) {
        refuse(ErrorCode::InvalidValue, where() + ": " + std::to_string(f->bytes()) +
                                            " bytes is more than a frame of the advertised format");
        continue;
      }
      if ((f->width() && f->width() != fmt.width) || (f->height() && f->height() != fmt.height)) {
        refuse(ErrorCode::FormatMismatch,
               where() + ": " + std::to_string(f->width()) + "x" + std::to_string(f->height()) +
                   " is not the advertised " + std::to_string(fmt.width) + "x" +
                   std::to_string(fmt.height) + " (advertise again for another format)");
        continue;
      }
      const std::string_view origin =
          f->source_stream() ? f->source_stream()->string_view() : std::string_view{};
      // Savers write it into metadata as it is: it must be a stream name.
      if (!origin.empty() && !valid_stream_name(origin)) {
        refuse(ErrorCode::InvalidValue, where() + ": source_stream is not a stream name");
        continue;
      }
      std::span<const uint32_t> index;
      if (f->sequence_index() && f->sequence_index()->size()) {
        index = {f->sequence_index()->data(), f->sequence_index()->size()};
        try {
          s->position_of(index);
        } catch (const std::invalid_argument& e) {
          refuse(ErrorCode::InvalidValue, where() + ": " + e.what());
          continue;
        }
      }
      info.sequence_index = index;
      p->give_back(key(f->gen(), f->slot()));
      info.camera_frame_id = f->camera_frame_id();
      info.hw_timestamp_ns =
          f->has_hw_timestamp() ? std::optional<uint64_t>(f->hw_timestamp_ns()) : std::nullopt;
      info.exposure_us = f->exposure_us();
      info.source_stream = origin;
      info.source_seq = f->source_seq();
      // Assigned in place: with as many tags as last time, the strings keep their capacity.
      const auto* own = f->tags();
      info.tags.resize(p->tags.size() + (own ? own->size() : 0));
      std::copy(p->tags.begin(), p->tags.end(), info.tags.begin());
      for (size_t i = 0; own && i < own->size(); ++i) {
        const auto* t = own->Get(flatbuffers::uoffset_t(i));
        auto& [k, v] = info.tags[p->tags.size() + i];
        k = t->key() ? t->key()->string_view() : std::string_view();
        v = t->value() ? t->value()->string_view() : std::string_view();
      }
      const uint64_t bytes = f->bytes() ? f->bytes() : fmt.frame_bytes();
      s->commit(cameras::Loan{g.segment->writable_slot(f->slot()).first(bytes), f->slot(), g.gen},
                info);
      source.count_commit();
    }
  }
  publish_committed(*s, *p);
  grant_loans(*s, *p);
  if (bad_count) {
    spdlog::warn("client {} ({} pid {}): {} bad commit(s) on {}: {}", c.id(), c.client_name(),
                 c.peer().pid, bad_count, name, bad);
    c.send_error(0, first_error,
                 std::to_string(bad_count) + " frame(s) of " + std::string(name) +
                     " refused, nothing changed for them: " + bad);
  }
}

void Broker::on_begin_sequence(Connection& c, uint32_t rid, const wire::BeginSequence& m) {
  const std::string name = str(m.stream());
  Publication* p = publication_of(name);
  Stream* s = find_stream(name);
  if (!p || !s || p->connection != c.id())
    return c.send_error(rid, ErrorCode::NotLoaned,
                        "begin_sequence on '" + name + "', which this client does not publish");
  SequenceSpec spec;
  try {
    spec = wire::from_wire(m.spec());
  } catch (const std::invalid_argument& e) {
    return c.send_error(rid, ErrorCode::InvalidValue, e.what());
  }
  // Frames committed before it are published first, so that they stay before its start.
  publish_committed(*s, *p);
  const auto sq = s->begin_sequence(next_sequence_id_++, std::move(spec));
  spdlog::info("client {} ({}) began sequence {} on {} ({}, {} frames)", c.id(), c.client_name(),
               sq->id, name, sq->spec.axes_text(), sq->spec.frames());
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, rid, wire::Message::SequenceBegun,
               wire::CreateSequenceBegun(fbb, fbb.CreateString(name), sq->id));
  c.send(fbb);
  deliver(*s);
}

void Broker::on_end_sequence(Connection& c, const wire::EndSequence& m) {
  const std::string name = str(m.stream());
  Publication* p = publication_of(name);
  Stream* s = find_stream(name);
  if (!p || !s || p->connection != c.id())
    return c.send_error(0, ErrorCode::NotLoaned,
                        "end_sequence on '" + name + "', which this client does not publish");
  s->end_sequence();
  deliver(*s);
}

void Broker::publish_committed(Stream& s, Publication& p) {
  // Loans lent before a subscriber came (or grew its backlog) may outrun what it can take: a
  // blocking stream's frames then wait, committed, until every `every` subscriber has room.
  s.drain_up_to(p.blocking ? s.fanout().every_room() : SIZE_MAX);
}

void Broker::end_publication(const std::string& stream) {
  Publication* p = publication_of(stream);
  Stream* s = find_stream(stream);
  if (!p || !s) return;
  for (const uint64_t k : p->loans) s->abort(cameras::Loan{{}, uint32_t(k), uint32_t(k >> 32)});
  p->loans.clear();
  p->connection = 0;
  publish_committed(*s, *p);
  s->stop();
  s->set_ended(true);
  s->fanout().clear_latest();
  spdlog::info("stream {} ended: its producer {} (pid {}) went away", stream, p->client, p->pid);
  for (const auto sub : subscriptions_.of_stream(stream)) {
    const auto* entry = subscriptions_.find(sub);
    if (auto conn = connections_.find(entry->connection); conn != connections_.end())
      finish_if_ended(*conn->second, *s, sub);
  }
  reap_ended();
}

void Broker::finish_if_ended(Connection& c, Stream& s, Subscriptions::Id sub) {
  if (!s.ended() || !s.fanout().active(sub) || s.fanout().counters(sub).queued ||
      s.fanout().has_messages(sub) || s.pending_commits())
    return;
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateEndOfStream(fbb, fbb.CreateString(s.name()),
                                      fbb.CreateString("its producer went away"));
  wire::finish(fbb, 0, wire::Message::EndOfStream, body);
  c.send(fbb);
  end_subscription(sub, Ending::Unsubscribed);  // what it holds stays held until released
}

void Broker::reap_ended() {
  for (auto it = publications_.begin(); it != publications_.end();) {
    Stream* s = find_stream(it->first);
    const bool unwatched = s && it->second.ended() && s->fanout().empty() && !s->pending_commits();
    if (unwatched) s->fanout().clear_latest();  // nobody can subscribe to join it any more
    const bool done =
        !s || (unwatched && s->current()->ring->unreferenced() && !s->retired_generations());
    if (!done) {
      ++it;
      continue;
    }
    if (s) {
      spdlog::info("stream {}: nobody holds a frame of it any more; its segment goes", it->first);
      streams_.erase(it->first);
    }
    it = publications_.erase(it);
  }
}

}  // namespace framebroker::daemon
