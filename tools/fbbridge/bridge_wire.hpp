// fbbridge's messages (schema/bridge.fbs): building them, and checking what comes off the wire
// before anything of it is used. Nothing here allocates once the builders have grown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "framebroker/bridge_generated.h"
#include "framebroker/frame.hpp"

namespace framebroker::fbbridge {

inline constexpr uint32_t kBridgeProtocolVersion = 1;
// Control messages (Hello, Credit) are far below this: the exporter's ZMQ_MAXMSGSIZE.
inline constexpr int64_t kMaxControlMessage = 4096;
// The longest stream name accepted off the wire (the broker's own limit is lower).
inline constexpr size_t kMaxStreamName = 255;

void build_hello(flatbuffers::FlatBufferBuilder& fbb, uint64_t importer_id, uint64_t session,
                 uint32_t window, std::string_view name);
void build_credit(flatbuffers::FlatBufferBuilder& fbb, uint64_t session, uint64_t received_total,
                  uint32_t window);
// A frame's header from the frame the exporter holds; compressed: the pixels part is Blosc.
void build_frame_header(flatbuffers::FlatBufferBuilder& fbb, const Frame& frame, bool compressed);

// A verified message, or `error` saying what is wrong with it.
struct Parsed {
  const bridge::Message* message = nullptr;
  std::string error;
};
// The FlatBuffers Verifier, the identifier, a known body; for a FrameHeader also its format
// (a pixel type in the enum, width x bytes per pixel <= stride, raw_bytes <= stride x height,
// a stream name of 1..kMaxStreamName bytes). `error` is set (and message null) otherwise.
Parsed parse_message(std::span<const std::byte> bytes);
// parse_message() for bytes at any address: FlatBuffers reads scalars where they lie, and
// ZeroMQ keeps a short message inside its zmq_msg_t at any alignment, so a message that is not
// 8-byte aligned is first copied into this parser's buffer (allocated once). The Parsed points
// into `bytes` or into that buffer, and is valid until the next parse().
class AlignedParser {
 public:
  static constexpr size_t kMaxCopied = 64 * 1024;  // far above any header or control message
  AlignedParser() : buffer_(kMaxCopied / sizeof(uint64_t)) {}
  Parsed parse(std::span<const std::byte> bytes);

 private:
  std::vector<uint64_t> buffer_;
};
// The pixels part of a verified FrameHeader: its size must be raw_bytes (raw) or at least
// Blosc's header and at most raw_bytes + Blosc's overhead (compressed). Empty when fine.
std::string check_pixels(const bridge::FrameHeader& h, size_t pixel_part_bytes);

}  // namespace framebroker::fbbridge
