#include "fbbridge/bridge_wire.hpp"

#include <blosc.h>

#include <cstring>

namespace framebroker::fbbridge {

namespace b = framebroker::bridge;

void build_hello(flatbuffers::FlatBufferBuilder& fbb, uint64_t importer_id, uint64_t session,
                 uint32_t window, std::string_view name) {
  fbb.Clear();
  const auto n = fbb.CreateString(name.data(), name.size());
  const auto hello = b::CreateHello(fbb, kBridgeProtocolVersion, importer_id, session, window, n);
  fbb.Finish(b::CreateMessage(fbb, b::Body::Hello, hello.Union()), b::MessageIdentifier());
}

void build_credit(flatbuffers::FlatBufferBuilder& fbb, uint64_t session, uint64_t received_total,
                  uint32_t window) {
  fbb.Clear();
  const auto credit = b::CreateCredit(fbb, session, received_total, window);
  fbb.Finish(b::CreateMessage(fbb, b::Body::Credit, credit.Union()), b::MessageIdentifier());
}

void build_frame_header(flatbuffers::FlatBufferBuilder& fbb, const Frame& frame, bool compressed) {
  fbb.Clear();
  const auto& m = frame.meta();
  const auto& name = frame.stream();
  const auto stream = fbb.CreateString(name.data(), name.size());
  flatbuffers::Offset<flatbuffers::String> source;
  if (m.source_stream()) source = fbb.CreateString(m.source_stream()->string_view());
  flatbuffers::Offset<flatbuffers::Vector<uint32_t>> index;
  if (m.sequence_index())
    index = fbb.CreateVector(m.sequence_index()->data(), m.sequence_index()->size());
  b::FrameHeaderBuilder h(fbb);
  h.add_stream(stream);
  h.add_width(frame.width());
  h.add_height(frame.height());
  h.add_stride(frame.stride());
  h.add_pixel_type(frame.pixel_type());
  h.add_bit_depth(m.bit_depth());
  h.add_raw_bytes(frame.pixels().size());
  h.add_compressed(compressed);
  h.add_seq(frame.seq());
  h.add_camera_frame_id(m.camera_frame_id());
  h.add_hw_timestamp_ns(m.hw_timestamp_ns());
  h.add_has_hw_timestamp(m.has_hw_timestamp());
  h.add_mono_ns(m.mono_ns());
  h.add_realtime_ns(m.realtime_ns());
  h.add_exposure_us(m.exposure_us());
  if (!source.IsNull()) h.add_source_stream(source);
  h.add_source_seq(m.source_seq());
  h.add_sequence_id(m.sequence_id());
  if (!index.IsNull()) h.add_sequence_index(index);
  const auto header = h.Finish();
  fbb.Finish(b::CreateMessage(fbb, b::Body::FrameHeader, header.Union()), b::MessageIdentifier());
}

Parsed parse_message(std::span<const std::byte> bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < 8 || !flatbuffers::BufferHasIdentifier(p, b::MessageIdentifier()))
    return {nullptr, "not a bridge message (" + std::to_string(bytes.size()) +
                         " bytes without the FBBR identifier)"};
  flatbuffers::Verifier v(p, bytes.size(), {.max_depth = 16, .max_tables = 64});
  if (!b::VerifyMessageBuffer(v)) return {nullptr, "a bridge message that fails verification"};
  const auto* m = b::GetMessage(p);
  switch (m->body_type()) {
    case b::Body::Hello:
    case b::Body::Credit:
      return {m, {}};
    case b::Body::FrameHeader:
      break;
    default:
      return {nullptr, "a bridge message of unknown type " + std::to_string(int(m->body_type()))};
  }
  const auto* h = m->body_as_FrameHeader();
  if (!h->stream() || h->stream()->size() == 0 || h->stream()->size() > kMaxStreamName)
    return {nullptr, "a frame header without a valid stream name"};
  const size_t bpp = bytes_per_pixel(h->pixel_type());
  const auto what = [&] {
    return "a frame header of '" + h->stream()->str() + "' (seq " + std::to_string(h->seq()) + ") ";
  };
  if (bpp == 0)
    return {nullptr, what() + "with pixel type " + std::to_string(int(h->pixel_type())) +
                         ", not one of framebroker's"};
  if (h->width() == 0 || h->height() == 0 || h->width() > 65536 || h->height() > 65536 ||
      uint64_t(h->width()) * bpp > h->stride())
    return {nullptr, what() + "with an impossible format " + std::to_string(h->width()) + "x" +
                         std::to_string(h->height()) + " stride " + std::to_string(h->stride())};
  if (h->raw_bytes() > uint64_t(h->stride()) * h->height())
    return {nullptr,
            what() + "of " + std::to_string(h->raw_bytes()) + " bytes, more than stride x height"};
  return {m, {}};
}

Parsed AlignedParser::parse(std::span<const std::byte> bytes) {
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0)
    return parse_message(bytes);
  if (bytes.size() > kMaxCopied)
    return {nullptr, "a misaligned bridge message of " + std::to_string(bytes.size()) +
                         " bytes, more than any header has"};
  std::memcpy(buffer_.data(), bytes.data(), bytes.size());
  return parse_message({reinterpret_cast<const std::byte*>(buffer_.data()), bytes.size()});
}

std::string check_pixels(const bridge::FrameHeader& h, size_t n) {
  if (!h.compressed()) {
    if (n == h.raw_bytes()) return {};
    return "'" + h.stream()->str() + "' seq " + std::to_string(h.seq()) + ": " + std::to_string(n) +
           " pixel bytes, the header says " + std::to_string(h.raw_bytes());
  }
  if (n >= BLOSC_MIN_HEADER_LENGTH && n <= h.raw_bytes() + BLOSC_MAX_OVERHEAD) return {};
  return "'" + h.stream()->str() + "' seq " + std::to_string(h.seq()) + ": a compressed part of " +
         std::to_string(n) + " bytes for " + std::to_string(h.raw_bytes()) + " raw bytes";
}

}  // namespace framebroker::fbbridge
