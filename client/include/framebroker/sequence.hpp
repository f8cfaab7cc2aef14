// framebroker::Sequence: a multi-dimensional acquisition (time, position, channel, z) that the
// broker announces to every subscriber before its first frame, and whose frames each carry their
// index on every axis. See docs/sequences.md.
//
//   auto spec = framebroker::SequenceSpec::parse("t=3,c=2,z=20", "tcz");
//   spec.channels = {"488", "561"};
//   client.camera("sim0").start(spec);        // 120 frames: z fastest, then c, then t
//
// A frame's position in the sequence comes from its seq, so a frame lost in the camera or to a
// full ring still uses up its index: a gap is a known (t, c, z).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace framebroker {

struct SequenceAxis {
  char name = 't';  // one of t (time), p (stage position), c (channel), z
  uint32_t size = 1;
  bool operator==(const SequenceAxis&) const = default;
};

// What a caller asks for. The broker checks it again (SequenceSpec::check) and refuses a bad one
// with Error(InvalidValue) and the reason.
struct SequenceSpec {
  // Acquisition order, outermost (slowest) first: {t=3, c=2, z=20} takes 20 z planes for each
  // channel, both channels for each time point.
  std::vector<SequenceAxis> axes;
  std::vector<std::string> channels;  // names of the c axis' channels (empty, or one per channel)
  double z_step_um = 0;               // 0: not known
  double interval_ms = 0;             // time between time points; 0: as fast as possible
  std::string metadata;  // a JSON object, stored and forwarded verbatim (e.g. a useq MDASequence)

  static constexpr size_t kMaxMetadataBytes = 64 * 1024;
  static constexpr std::string_view kAxisLetters = "tpcz";

  // "t=10,c=2,z=100" with an optional order ("tcz", every axis once; default: as written).
  // Throws std::invalid_argument with a message meant for the user.
  static SequenceSpec parse(std::string_view axes, std::string_view order = {});
  // Throws std::invalid_argument if the spec is not one the broker accepts.
  void check() const;
  uint64_t frames() const;        // the product of the sizes
  std::string order() const;      // the axis letters, outermost first: "tcz"
  std::string axes_text() const;  // "t=10,c=2,z=100", in acquisition order
  // The size of an axis, 1 when the sequence does not have it.
  uint32_t size(char axis) const;
  // The index on each axis (in `axes` order) of the frame at `position`, into `out`.
  void index_of(uint64_t position, std::span<uint32_t> out) const;
  // The position of an index given in `axes` order; nullopt if it lies outside the axes.
  std::optional<uint64_t> position_of(std::span<const uint32_t> index) const;

  bool operator==(const SequenceSpec&) const = default;
};

// A sequence as the broker runs it.
struct Sequence {
  uint64_t id = 0;  // unique for the broker's lifetime, from 1
  std::string stream;
  SequenceSpec spec;
  uint64_t first_seq = 0;  // the seq of position 0
};

// How a sequence ended, as SequenceFinished reports it.
struct SequenceEnd {
  uint64_t id = 0;
  uint64_t frames = 0;    // positions that became frames
  uint64_t missed = 0;    // positions lost (camera, ring full, or a publisher's drop)
  bool complete = false;  // every position was used; false when stopped early
};

}  // namespace framebroker
