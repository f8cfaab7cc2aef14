#include "framebroker/publisher.hpp"

#include "framebroker/provenance.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "core.hpp"
#include "framebroker/client.hpp"
#include "framebroker/internal/sequence_wire.hpp"

namespace framebroker {

namespace detail {

// What a Publisher and its Loans share: the connection, the writable mapping and the commit
// batch. Loans may be committed from any thread.
struct PublisherState {
  std::shared_ptr<Core> core;
  std::string stream;
  uint32_t width = 0, height = 0, stride = 0, gen = 0, slots = 0;
  Overflow overflow = Overflow::Block;
  std::byte* base = nullptr;
  size_t mapped = 0;
  shm::SegmentHeader header{};
  std::mutex mu;  // guards what follows
  uint64_t committed = 0, dropped = 0, dropped_unsent = 0;
  std::vector<std::pair<uint32_t, uint32_t>> spare;  // loans given back by abort(): {gen, slot}
  flatbuffers::FlatBufferBuilder fbb{512};           // reused: a commit allocates nothing here

  ~PublisherState() {
    if (base) ::munmap(base, mapped);
  }

  std::span<std::byte> slot(uint32_t s) const {
    return {base + header.data_offset + uint64_t(s) * header.slot_stride, header.slot_bytes};
  }

  void send_commit(uint32_t g, uint32_t s, const CommitInfo& info) {
    std::lock_guard lock(mu);
    fbb.Clear();
    auto tags = [&](const std::vector<std::pair<std::string, std::string>>& kv) {
      std::vector<flatbuffers::Offset<meta::Tag>> out;
      for (const auto& [k, v] : kv)
        out.push_back(meta::CreateTag(fbb, fbb.CreateString(k), fbb.CreateString(v)));
      return out.empty() ? 0 : fbb.CreateVectorOfSortedTables(&out);
    };
    auto frame_tags = tags(info.tags);
    auto source = info.source_stream.empty() ? 0 : fbb.CreateString(info.source_stream);
    auto index = info.index.empty() ? 0 : fbb.CreateVector(info.index);
    auto frame =
        wire::CreateFrameCommit(fbb, g, s, info.bytes, width, height, info.camera_frame_id,
                                info.hw_timestamp_ns.value_or(0), info.hw_timestamp_ns.has_value(),
                                info.exposure_us, source, info.source_seq, frame_tags, index);
    const uint64_t dropped_now = std::exchange(dropped_unsent, 0);
    ++committed;
    auto commit =
        wire::CreateCommit(fbb, fbb.CreateString(stream), dropped_now, fbb.CreateVector(&frame, 1));
    wire::finish(fbb, 0, wire::Message::Commit, commit);
    core->send(fbb);
  }
};

}  // namespace detail

// ---- Loan ----

Loan::Loan(Loan&& o) noexcept
    : state_(std::move(o.state_)), gen_(o.gen_), slot_(o.slot_), pixels_(o.pixels_) {}

Loan& Loan::operator=(Loan&& o) noexcept {
  if (this != &o) {
    abort();
    state_ = std::move(o.state_);
    gen_ = o.gen_;
    slot_ = o.slot_;
    pixels_ = o.pixels_;
  }
  return *this;
}

Loan::~Loan() {
  abort();
}

void Loan::commit(const CommitInfo& info) {
  if (!state_) throw Error(Errc::InvalidArgument, "this loan was committed or aborted already");
  if (info.bytes > pixels_.size())
    throw Error(Errc::InvalidArgument, "commit of " + std::to_string(info.bytes) +
                                           " bytes into a slot of " +
                                           std::to_string(pixels_.size()));
  auto state = std::move(state_);
  state->send_commit(gen_, slot_, info);
}

void Loan::abort() {
  if (!state_) return;
  // The slot stays lent to this publisher: the next loan() takes it again.
  std::lock_guard lock(state_->mu);
  state_->spare.emplace_back(gen_, slot_);
  state_.reset();
}

// ---- Publisher ----

Publisher::Publisher(std::shared_ptr<detail::PublisherState> state) : state_(std::move(state)) {}

Publisher::~Publisher() {
  if (!state_) return;
  try {
    flush();
  } catch (const Error&) {
    // The broker is gone: nothing to end.
  }
}

std::optional<Loan> Publisher::loan(std::chrono::milliseconds timeout) {
  auto& st = *state_;
  {
    std::lock_guard lock(st.mu);
    while (!st.spare.empty()) {
      const auto [g, s] = st.spare.back();
      st.spare.pop_back();
      if (g == st.gen) return Loan(state_, g, s, st.slot(s));
    }
  }
  const auto deadline = st.overflow == Overflow::Drop ? detail::Core::Clock::now()
                                                      : detail::Core::Clock::now() + timeout;
  for (;;) {
    const auto l = st.core->next_loan(st.stream, deadline);
    if (!l) break;
    if (l->first != st.gen || l->second >= st.header.slots) continue;  // not this mapping's
    return Loan(state_, l->first, l->second, st.slot(l->second));
  }
  if (st.overflow == Overflow::Drop) {
    std::lock_guard lock(st.mu);
    ++st.dropped;
    ++st.dropped_unsent;
  }
  return std::nullopt;
}

uint64_t Publisher::begin_sequence(const SequenceSpec& spec) {
  try {
    spec.check();
  } catch (const std::invalid_argument& e) {
    throw Error(Errc::InvalidArgument, e.what());
  }
  flush();  // frames dropped so far count before it
  auto& st = *state_;
  flatbuffers::FlatBufferBuilder fbb;
  const uint32_t id = st.core->next_request_id();
  wire::finish(
      fbb, id, wire::Message::BeginSequence,
      wire::CreateBeginSequence(fbb, fbb.CreateString(st.stream), wire::to_wire(fbb, spec)));
  auto reply = st.core->request(fbb, id, wire::Message::SequenceBegun, std::chrono::seconds(10));
  return reply.envelope()->message_as_SequenceBegun()->id();
}

void Publisher::end_sequence() {
  flush();
  auto& st = *state_;
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 0, wire::Message::EndSequence,
               wire::CreateEndSequence(fbb, fbb.CreateString(st.stream)));
  st.core->send(fbb);
}

void Publisher::flush() {
  auto& st = *state_;
  uint64_t dropped_now;
  {
    std::lock_guard lock(st.mu);
    dropped_now = std::exchange(st.dropped_unsent, 0);
  }
  if (!dropped_now) return;
  flatbuffers::FlatBufferBuilder fbb;
  wire::finish(fbb, 0, wire::Message::Commit,
               wire::CreateCommit(fbb, fbb.CreateString(st.stream), dropped_now));
  st.core->send(fbb);
}

const std::string& Publisher::stream() const {
  return state_->stream;
}
uint32_t Publisher::width() const {
  return state_->width;
}
uint32_t Publisher::height() const {
  return state_->height;
}
uint32_t Publisher::stride() const {
  return state_->stride;
}
uint32_t Publisher::gen() const {
  return state_->gen;
}
uint32_t Publisher::slots() const {
  return state_->slots;
}
uint64_t Publisher::committed() const {
  std::lock_guard lock(state_->mu);
  return state_->committed;
}
uint64_t Publisher::dropped() const {
  std::lock_guard lock(state_->mu);
  return state_->dropped;
}
std::vector<std::string> Publisher::take_async_errors() {
  return state_->core->take_async_errors();
}

// ---- Client::advertise ----

Publisher Client::advertise(const std::string& stream, const PublishOptions& options) {
  // A connection of its own: the broker passes the segment's fd with its reply, which it can
  // only do while nothing else waits to be sent to this connection.
  // It does not reconnect: its ring died with the broker (see publisher.hpp).
  auto publisher_options = connect_options_;
  publisher_options.reconnect = false;
  auto core = detail::Core::connect(publisher_options);
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<meta::Tag>> tags;
  for (const auto& [k, v] : options.tags)
    tags.push_back(meta::CreateTag(fbb, fbb.CreateString(k), fbb.CreateString(v)));
  auto tag_vec = tags.empty() ? 0 : fbb.CreateVectorOfSortedTables(&tags);
  auto body =
      wire::CreateAdvertise(fbb, fbb.CreateString(stream), options.width, options.height,
                            fbb.CreateString(options.pixel_type), options.stride, options.bit_depth,
                            options.slots, options.ring_mb,
                            options.overflow == Overflow::Drop ? wire::PublishOverflow::Drop
                                                               : wire::PublishOverflow::Block,
                            tag_vec);
  const uint32_t id = core->next_request_id();
  wire::finish(fbb, id, wire::Message::Advertise, body);
  auto reply = core->request(fbb, id, wire::Message::Advertised, std::chrono::seconds(10));
  const auto* a = reply.envelope()->message_as_Advertised();
  const int fd = core->take_passed_fd();
  if (fd < 0) throw Error(Errc::Protocol, "the broker did not pass " + stream + "'s segment");

  auto state = std::make_shared<detail::PublisherState>();
  state->core = std::move(core);
  state->stream = stream;
  state->width = options.width;
  state->height = options.height;
  state->stride = a->stride();
  state->gen = a->gen();
  state->slots = a->slots();
  state->overflow = options.overflow;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < off_t(sizeof(shm::SegmentHeader))) {
    ::close(fd);
    throw Error(Errc::Protocol, "the segment the broker passed for " + stream + " is unusable");
  }
  void* base = ::mmap(nullptr, size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED)
    throw Error(Errc::Protocol,
                std::string("cannot map ") + stream + "'s segment: " + std::strerror(errno));
  state->base = static_cast<std::byte*>(base);
  state->mapped = size_t(st.st_size);
  std::memcpy(&state->header, base, sizeof state->header);
  if (const auto why = shm::layout_problem(state->header, uint64_t(st.st_size), a->gen());
      !why.empty())
    throw Error(Errc::Protocol,
                "the segment the broker passed for " + stream + " is unusable: " + why);
  return Publisher(std::move(state));
}

void derive_from(const Frame& in, CommitInfo& info) {
  const meta::FrameMeta& m = in.meta();
  if (m.source_stream() != nullptr && m.source_stream()->size() > 0) {
    info.source_stream.assign(m.source_stream()->data(), m.source_stream()->size());
    info.source_seq = m.source_seq();
  } else {
    info.source_stream = in.stream();
    info.source_seq = int64_t(in.seq());
  }
  info.camera_frame_id = in.camera_frame_id();
  info.hw_timestamp_ns.reset();
  if (m.has_hw_timestamp()) info.hw_timestamp_ns = m.hw_timestamp_ns();
  info.exposure_us = m.exposure_us();
}

}  // namespace framebroker
