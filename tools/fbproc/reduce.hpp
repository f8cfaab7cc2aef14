// fbproc's reductions along an axis of a sequence:
//   max-project=z    every z plane of a volume into one frame; the output has no z axis
//   mean=t:K         each K consecutive time points into one frame; t keeps ceil(T/K) points
// (any of t, p, c, z; `max-project=z:K` and `mean=t` too). Frames are grouped by their index,
// never by arrival. An output is complete when its last input index arrived, or when a frame
// past it in the acquisition order arrived (its missing inputs were lost), or when the sequence
// finished; lost inputs simply do not contribute (a mean divides by the frames that came).
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fbproc/ops.hpp"
#include "framebroker/publisher.hpp"
#include "framebroker/sequence.hpp"

namespace framebroker::fbproc {

struct AxisOp {
  std::string text;  // as given: "max-project=z"
  bool mean = false;
  char axis = 'z';
  uint32_t k = 0;  // index values per output; 0: the whole axis, which the output drops
};

// The axis op `spec` names; nullopt for the others (copy, max-project=K, ...). Throws
// std::invalid_argument for a malformed one.
std::optional<AxisOp> parse_axis_op(const std::string& spec);

// The output sequence of `op` on `in`: the axis dropped (whole axis; an only axis stays, size 1)
// or shrunk to ceil(size / K), its step scaled (interval_ms or z_step_um times K, 0 once the
// axis is gone; channel names go with a reduced c); the rest and the metadata as they are.
// Throws std::invalid_argument when `in` has no such axis.
SequenceSpec reduced_spec(const AxisOp& op, const SequenceSpec& in);

// Reduces the frames of one sequence. Memory: one accumulator per output that can be open at
// once, the product of the sizes of the axes inside the reduced one (1 for max-project=z of a
// ...z sequence; c x z for mean=t:K of tcz), made when the reducer is.
class AxisReducer {
 public:
  // emit(index in output axis order, the reduction to finish into the output frame, the
  // provenance of its first input frame, for the emitter to complete and commit). Throws
  // std::invalid_argument as reduced_spec does, or when the accumulators would take more than 4
  // GiB.
  using Emit = std::function<void(std::span<const uint32_t>, Reduction&, CommitInfo&)>;
  AxisReducer(const AxisOp& op, const SequenceSpec& in, const Format& format, Emit emit);

  const SequenceSpec& output() const { return out_; }
  // An input frame with its index (in the input's axis order).
  void add(const Frame& frame, std::span<const uint32_t> index);
  // Emits every output still open, in output order (the sequence finished).
  void finish();
  // Frames left out because a frame past their whole group came before them (a publisher's
  // out-of-order indices): their output was made without them, or is not made at all.
  uint64_t late() const { return late_; }

 private:
  struct Open {
    bool used = false;
    uint64_t out_pos = 0, last_in_pos = 0;
    uint32_t expected = 0;
    Reduction reduction;
    CommitInfo info;
  };
  void emit(Open& o);

  SequenceSpec in_, out_;
  size_t axis_ = 0;  // of the reduced axis in in_.axes
  uint32_t k_ = 1;
  bool dropped_ = false;
  std::vector<Open> open_;
  int64_t max_pos_ = -1;  // the last input position seen in acquisition order
  std::vector<uint32_t> scratch_, out_index_;
  uint64_t late_ = 0;
  Emit emit_;
};

}  // namespace framebroker::fbproc
