#include "fbproc/processor.hpp"

#include <optional>
#include <stdexcept>

#include "fbproc/ops.hpp"
#include "fbproc/reduce.hpp"
#include "framebroker/client.hpp"
#include "framebroker/provenance.hpp"

namespace framebroker::fbproc {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(200);  // how often a wait looks at `stop`

Format format_of(const Frame& f) {
  return {f.width(), f.height(), f.stride(), f.pixel_type(), f.meta().bit_depth()};
}

// The format the source stream announces now, so the output can be advertised before the
// first frame (a saver downstream may subscribe while the camera is still stopped).
Format announced_format(Client& client, const std::string& stream) {
  for (const StreamStatus& s : client.status().streams) {
    if (s.name != stream) continue;
    for (int t = 0; t <= int(PixelType::MAX); ++t)
      if (s.pixel_type == to_string(PixelType(t))) return {s.width, s.height, 0, PixelType(t), 0};
    throw std::runtime_error("stream '" + stream + "' has pixel type '" + s.pixel_type +
                             "', which fbproc does not know");
  }
  throw Error(Errc::UnknownStream, "no stream named '" + stream + "'");
}

bool same_shape(const Format& a, const Format& b) {
  return a.width == b.width && a.height == b.height && a.pixel_type == b.pixel_type;
}

std::string describe(const Format& f) {
  return std::to_string(f.width) + "x" + std::to_string(f.height) + " " + to_string(f.pixel_type);
}

// Where a sequence goes through fbproc: the output sequence, and for an axis op the reducer.
// Ops of one frame per frame (copy, bin, roi, none) pass a sequence on as it is, with each
// frame's index; max-project=K and mean=K group frames by count and pass none on.
class SequenceRelay {
 public:
  SequenceRelay(const ProcOptions& o, std::optional<AxisOp> axis_op, bool one_to_one,
                Publisher& pub, ProcSummary& summary, const std::atomic<bool>& stop)
      : o_(o),
        axis_op_(std::move(axis_op)),
        one_to_one_(one_to_one),
        pub_(pub),
        summary_(summary),
        stop_(stop) {}

  bool axis_op() const { return axis_op_.has_value(); }

  // Follows the subscription's sequence after each next(): a new one starts the output's, a
  // finished one (or frames outside any) ends it.
  void follow(const Subscription& sub, const Frame* frame, const Format& format) {
    const auto seq = frame ? frame->sequence() : sub.sequence();
    const auto finished = sub.sequence_end();
    const bool in_one = frame ? seq && frame->sequence_position() >= 0
                              : seq && !(finished && finished->id == seq->id);
    if (in_one && seq->id != in_id_) {
      end();
      begin(*seq, format);
    } else if (open_ && !in_one) {
      end();
    }
    if (frame && !in_one && axis_op_)
      throw std::runtime_error(
          "--op " + o_.op + " reduces an axis of a sequence, but frame " +
          std::to_string(frame->seq()) + " of '" + o_.from +
          "' belongs to none: start the source as a sequence (fbctl start CAM --frames N --axes "
          "t=T,z=Z), or use max-project=K / mean=K for K frames at a time");
  }

  // An axis op's input frame (in a sequence: follow() saw to that).
  void reduce(const Frame& frame) {
    const SequenceSpec& spec = frame.sequence()->spec;
    index_.resize(spec.axes.size());
    for (size_t i = 0; i < spec.axes.size(); ++i) {
      const auto v = frame.index(spec.axes[i].name);
      if (!v) {
        spec.index_of(uint64_t(frame.sequence_position()), index_);
        break;
      }
      index_[i] = *v;
    }
    reducer_->add(frame, index_);
  }

  // The output index of a one-to-one op's frame (empty outside a sequence).
  void index_of(const Frame& frame, std::vector<uint32_t>& out) const {
    out.clear();
    if (!open_) return;
    for (const auto& a : frame.sequence()->spec.axes)
      out.push_back(frame.index(a.name).value_or(0));
  }

  void end() {
    if (reducer_) {
      reducer_->finish();
      summary_.late += reducer_->late();
      reducer_.reset();
    }
    if (open_) pub_.end_sequence();
    open_ = false;
  }

 private:
  void begin(const Sequence& seq, const Format& format) {
    in_id_ = seq.id;
    if (axis_op_) {
      reducer_.emplace(*axis_op_, seq.spec, format,
                       [this](std::span<const uint32_t> index, Reduction& r, CommitInfo& info) {
                         emit(index, r, info);
                       });
      pub_.begin_sequence(reducer_->output());
      open_ = true;
    } else if (one_to_one_) {
      pub_.begin_sequence(seq.spec);
      open_ = true;
    }
  }

  void emit(std::span<const uint32_t> index, Reduction& r, CommitInfo& info) {
    std::optional<Loan> loan;
    while (!loan && !stop_) loan = pub_.loan(kPoll);
    if (!loan) return;
    r.finish(loan->pixels());
    info.index.assign(index.begin(), index.end());
    loan->commit(info);
    ++summary_.frames_out;
  }

  const ProcOptions& o_;
  std::optional<AxisOp> axis_op_;
  bool one_to_one_;
  Publisher& pub_;
  ProcSummary& summary_;
  const std::atomic<bool>& stop_;
  uint64_t in_id_ = 0;  // the input sequence followed (0: none yet)
  bool open_ = false;   // the output sequence is running
  std::optional<AxisReducer> reducer_;
  std::vector<uint32_t> index_;
};

}  // namespace

ProcSummary run_processor(const ProcOptions& o, const std::atomic<bool>& stop) {
  auto client = Client::connect(o.connect);
  Format in_format = announced_format(client, o.from);
  in_format.stride = 0;
  // Check the op against the announced format before anything is advertised.
  auto probe = in_format;
  probe.stride = probe.width * 16;  // any stride wide enough; the real one comes with a frame
  auto axis_op = parse_axis_op(o.op);
  const auto probe_op = axis_op ? nullptr : make_op(o.op, probe);
  Format out = probe_op ? probe_op->output() : probe;
  if (!probe_op) out.stride = 0;

  auto sub = client.subscribe(o.from, {.mode = Mode::Every});
  auto pub = client.advertise(o.to, {.width = out.width,
                                     .height = out.height,
                                     .pixel_type = to_string(out.pixel_type),
                                     .bit_depth = out.bit_depth,
                                     .slots = o.slots,
                                     .overflow = Overflow::Block,
                                     .tags = {{"fbproc.from", o.from}, {"fbproc.op", o.op}}});

  ProcSummary summary;
  SequenceRelay relay(o, std::move(axis_op), probe_op && probe_op->frames_per_output() == 1, pub,
                      summary, stop);
  std::unique_ptr<Op> op;
  std::optional<Loan> loan;
  CommitInfo info;
  uint32_t index = 0;
  while (!stop) {
    auto frame = sub.next(kPoll);
    if (!frame) {
      relay.follow(sub, nullptr, in_format);
      if (sub.ended()) {
        summary.source_ended = true;
        break;
      }
      continue;
    }
    ++summary.frames_in;
    const Format f = format_of(*frame);
    if (!same_shape(f, in_format))
      throw std::runtime_error("'" + o.from + "' changed from " + describe(in_format) + " to " +
                               describe(f) + "; start fbproc again for the new format");
    relay.follow(sub, &*frame, f);
    if (relay.axis_op()) {
      relay.reduce(*frame);
      continue;
    }
    if (!op || f.stride != in_format.stride) {
      in_format = f;
      op = make_op(o.op, in_format);
    }
    if (index == 0) {
      while (!loan && !stop) loan = pub.loan(kPoll);
      if (!loan) break;
      derive_from(*frame, info);
      relay.index_of(*frame, info.index);
    }
    op->apply(frame->pixels(), index, loan->pixels());
    if (++index < op->frames_per_output()) continue;
    loan->commit(info);
    loan.reset();
    index = 0;
    ++summary.frames_out;
  }
  relay.end();
  summary.left_over = index;
  return summary;  // ~Publisher ends the output stream after its last frame
}

}  // namespace framebroker::fbproc
