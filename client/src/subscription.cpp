#include "framebroker/subscription.hpp"

#include "core.hpp"

namespace framebroker {

Subscription::Subscription(std::shared_ptr<detail::Core> core, StreamInfo info)
    : core_(std::move(core)), info_(std::move(info)) {}

Subscription::~Subscription() {
  if (core_) core_->remove_subscription(info_.stream);
}

std::optional<Frame> Subscription::next(std::chrono::milliseconds timeout) {
  auto h = core_->next_frame(info_.stream, detail::Core::Clock::now() + timeout);
  if (!h) {
    // Past the end nothing more comes to carry batched releases: send them now, so that the
    // ended stream's segment can go.
    if (core_->ended(info_.stream)) core_->flush_releases();
    return std::nullopt;
  }
  if ((*h)->after_restart) info_ = core_->stream_info(info_.stream);  // the new broker's
  return Frame(std::move(*h));
}

std::optional<BrokerRestart> Subscription::restart() const {
  return core_->restart(info_.stream);
}

MappedRing Subscription::ring() const {
  auto segment = core_->mapped_segment(info_.stream, info_.gen);
  return {segment->bytes(), segment};
}

int Subscription::fileno() const {
  return core_->fd();
}

std::shared_ptr<const Sequence> Subscription::sequence() const {
  return core_->sequence(info_.stream);
}

std::optional<SequenceEnd> Subscription::sequence_end() const {
  return core_->sequence_end(info_.stream);
}

bool Subscription::ended() const {
  return core_->ended(info_.stream);
}

}  // namespace framebroker
