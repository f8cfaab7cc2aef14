#include "framebroker/frame.hpp"

#include "core.hpp"

namespace framebroker {

const char* to_string(PixelType t) {
  return meta::EnumNamePixelType(t);
}

size_t bytes_per_pixel(PixelType t) {
  switch (t) {
    case PixelType::Mono8:
      return 1;
    case PixelType::Mono10:
    case PixelType::Mono12:
    case PixelType::Mono14:
    case PixelType::Mono16:
      return 2;
    case PixelType::Mono32F:
    case PixelType::BGRA8:
      return 4;
    case PixelType::RGB8:
      return 3;
    case PixelType::RGB16:
      return 6;
  }
  return 0;
}

Frame::Frame(std::unique_ptr<detail::FrameHandle> h) : h_(std::move(h)) {}
Frame::Frame(Frame&&) noexcept = default;
Frame& Frame::operator=(Frame&& other) noexcept {
  if (this != &other) {
    release();
    h_ = std::move(other.h_);
  }
  return *this;
}
Frame::~Frame() {
  release();
}

void Frame::release() {
  if (!h_) return;
  // The core stays alive through the call even when this frame held its last reference.
  const auto core = h_->core;
  core->release(std::move(h_));
}

uint64_t Frame::seq() const {
  return h_->seq;
}
uint64_t Frame::camera_frame_id() const {
  return h_->meta->camera_frame_id();
}
uint32_t Frame::width() const {
  return h_->meta->width();
}
uint32_t Frame::height() const {
  return h_->meta->height();
}
uint32_t Frame::stride() const {
  return h_->meta->stride();
}
PixelType Frame::pixel_type() const {
  return h_->meta->pixel_type();
}
uint32_t Frame::gen() const {
  return h_->gen;
}
uint32_t Frame::slot() const {
  return h_->slot;
}
const std::string& Frame::stream() const {
  return h_->stream;
}
std::span<const std::byte> Frame::pixels() const {
  return h_->pixels;
}
const meta::FrameMeta& Frame::meta() const {
  return *h_->meta;
}
std::shared_ptr<const Sequence> Frame::sequence() const {
  return h_->sequence;
}
std::optional<uint32_t> Frame::index(char axis) const {
  const auto* axes = h_->meta->sequence_axes();
  const auto* index = h_->meta->sequence_index();
  if (!axes || !index) return std::nullopt;
  const size_t at = axes->string_view().find(axis);
  if (at == std::string_view::npos || at >= index->size()) return std::nullopt;
  return index->Get(flatbuffers::uoffset_t(at));
}
bool Frame::after_restart() const {
  return h_->after_restart;
}
int64_t Frame::sequence_position() const {
  return h_->meta->sequence_position();
}

}  // namespace framebroker
