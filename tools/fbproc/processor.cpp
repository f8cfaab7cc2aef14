#include "fbproc/processor.hpp"

#include <optional>
#include <stdexcept>

#include "fbproc/ops.hpp"
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

}  // namespace

ProcSummary run_processor(const ProcOptions& o, const std::atomic<bool>& stop) {
  auto client = Client::connect(o.connect);
  Format in_format = announced_format(client, o.from);
  in_format.stride = 0;
  // Check the op against the announced format before anything is advertised.
  auto probe = in_format;
  probe.stride = probe.width * 16;  // any stride wide enough; the real one comes with a frame
  const Format out = make_op(o.op, probe)->output();

  auto sub = client.subscribe(o.from, {.mode = Mode::Every});
  auto pub = client.advertise(o.to, {.width = out.width,
                                     .height = out.height,
                                     .pixel_type = to_string(out.pixel_type),
                                     .bit_depth = out.bit_depth,
                                     .slots = o.slots,
                                     .overflow = Overflow::Block,
                                     .tags = {{"fbproc.from", o.from}, {"fbproc.op", o.op}}});

  ProcSummary summary;
  std::unique_ptr<Op> op;
  std::optional<Loan> loan;
  CommitInfo info;
  uint32_t index = 0;
  while (!stop) {
    auto frame = sub.next(kPoll);
    if (!frame) {
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
    if (!op || f.stride != in_format.stride) {
      in_format = f;
      op = make_op(o.op, in_format);
    }
    if (index == 0) {
      while (!loan && !stop) loan = pub.loan(kPoll);
      if (!loan) break;
      derive_from(*frame, info);
    }
    op->apply(frame->pixels(), index, loan->pixels());
    if (++index < op->frames_per_output()) continue;
    loan->commit(info);
    loan.reset();
    index = 0;
    ++summary.frames_out;
  }
  summary.left_over = index;
  return summary;  // ~Publisher ends the output stream after its last frame
}

}  // namespace framebroker::fbproc
