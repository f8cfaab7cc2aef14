#include "fbproc/reduce.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "framebroker/provenance.hpp"

namespace framebroker::fbproc {

std::optional<AxisOp> parse_axis_op(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos) return std::nullopt;
  const std::string name = spec.substr(0, eq);
  const std::string_view arg = std::string_view(spec).substr(eq + 1);
  if ((name != "max-project" && name != "mean") || arg.empty() ||
      SequenceSpec::kAxisLetters.find(arg[0]) == std::string_view::npos)
    return std::nullopt;  // max-project=K, mean=K or another op
  AxisOp op{spec, name == "mean", arg[0], 0};
  if (arg.size() == 1) return op;
  const std::string form = name + "=" + std::string(1, op.axis) + ":K";
  if (arg[1] != ':' || arg.size() == 2)
    throw std::invalid_argument("--op " + spec + ": write it as " + name + "=" +
                                std::string(1, op.axis) + " (the whole axis) or " + form);
  const auto [end, ec] = std::from_chars(arg.data() + 2, arg.data() + arg.size(), op.k);
  if (ec != std::errc{} || end != arg.data() + arg.size() || op.k < 1)
    throw std::invalid_argument("--op " + spec + ": K in " + form +
                                " must be a whole number of at least 1");
  return op;
}

SequenceSpec reduced_spec(const AxisOp& op, const SequenceSpec& in) {
  SequenceSpec out = in;
  auto it = std::find_if(out.axes.begin(), out.axes.end(),
                         [&](const SequenceAxis& a) { return a.name == op.axis; });
  if (it == out.axes.end())
    throw std::invalid_argument("--op " + op.text + " reduces the " + std::string(1, op.axis) +
                                " axis, but the sequence (" + in.axes_text() + ") has none");
  const uint32_t k = op.k == 0 ? it->size : std::min(op.k, it->size);
  const bool gone = op.k == 0 && out.axes.size() > 1;
  if (gone)
    out.axes.erase(it);
  else
    it->size = (it->size + k - 1) / k;
  const double scale = gone ? 0.0 : double(k);
  if (op.axis == 't') out.interval_ms *= scale;
  if (op.axis == 'z') out.z_step_um *= scale;
  if (op.axis == 'c' && k > 1) out.channels.clear();
  out.check();
  return out;
}

AxisReducer::AxisReducer(const AxisOp& op, const SequenceSpec& in, const Format& format, Emit emit)
    : in_(in), out_(reduced_spec(op, in)), emit_(std::move(emit)) {
  for (size_t i = 0; i < in_.axes.size(); ++i)
    if (in_.axes[i].name == op.axis) axis_ = i;
  k_ = op.k == 0 ? in_.axes[axis_].size : std::min(op.k, in_.axes[axis_].size);
  dropped_ = out_.axes.size() < in_.axes.size();
  // Outputs open at once in acquisition order: one per index of the axes inside the reduced one.
  uint64_t inner = 1;
  for (size_t i = axis_ + 1; i < in_.axes.size(); ++i) inner *= in_.axes[i].size;
  const double bytes = double(inner) * double(Reduction::bytes(format, op.mean));
  if (bytes > 4.0 * (1ull << 30))
    throw std::invalid_argument(
        "--op " + op.text + " on " + in_.axes_text() + " keeps " + std::to_string(inner) +
        " outputs open at once (one per index of the axes inside " + std::string(1, op.axis) +
        "), " + std::to_string(uint64_t(bytes / (1 << 20))) +
        " MiB of accumulators; fbproc allows 4096 MiB: reduce an inner axis, or order the "
        "sequence with " +
        std::string(1, op.axis) + " innermost");
  open_.reserve(inner);
  for (uint64_t i = 0; i < inner; ++i) open_.push_back({false, 0, 0, 0, {format, op.mean}, {}});
  scratch_.resize(in_.axes.size());
  out_index_.resize(out_.axes.size());
}

void AxisReducer::emit(Open& o) {
  out_.index_of(o.out_pos, out_index_);
  emit_(out_index_, o.reduction, o.info);
  o.reduction.reset();
  o.used = false;
}

void AxisReducer::add(const Frame& frame, std::span<const uint32_t> index) {
  const auto in_pos = in_.position_of(index);
  if (!in_pos) return;  // the broker checks indices; nothing to reduce
  const int64_t before = max_pos_;
  max_pos_ = std::max(max_pos_, int64_t(*in_pos));
  // Outputs whose last input lies before this frame get nothing more: their missing inputs
  // were lost.
  for (Open& o : open_)
    if (o.used && o.last_in_pos < *in_pos) emit(o);

  const uint32_t size = in_.axes[axis_].size;
  const uint32_t block = index[axis_] / k_;
  const uint32_t block_end = std::min(size, (block + 1) * k_);  // past the block's last index
  std::copy(index.begin(), index.end(), scratch_.begin());
  size_t n = 0;
  for (size_t i = 0; i < scratch_.size(); ++i) {
    if (i != axis_)
      out_index_[n++] = scratch_[i];
    else if (!dropped_)
      out_index_[n++] = block;
  }
  const uint64_t out_pos = *out_.position_of(out_index_);

  auto it = std::find_if(open_.begin(), open_.end(),
                         [&](const Open& o) { return o.used && o.out_pos == out_pos; });
  if (it == open_.end()) {
    scratch_[axis_] = block_end - 1;
    const uint64_t last_in_pos = *in_.position_of(scratch_);
    if (int64_t(last_in_pos) < before) {  // a frame past its whole group came before it
      ++late_;
      return;
    }
    it = std::find_if(open_.begin(), open_.end(), [](const Open& o) { return !o.used; });
    if (it == open_.end()) {  // out-of-order indices: the oldest open output goes first
      it = std::min_element(open_.begin(), open_.end(), [](const Open& a, const Open& b) {
        return a.last_in_pos < b.last_in_pos;
      });
      emit(*it);
    }
    it->used = true;
    it->out_pos = out_pos;
    it->last_in_pos = last_in_pos;
    it->expected = block_end - block * k_;
    derive_from(frame, it->info);
  }
  it->reduction.add(frame.pixels(), frame.stride());
  if (it->reduction.count() >= it->expected) emit(*it);
}

void AxisReducer::finish() {
  while (true) {
    Open* first = nullptr;
    for (Open& o : open_)
      if (o.used && (!first || o.out_pos < first->out_pos)) first = &o;
    if (!first) return;
    emit(*first);
  }
}

}  // namespace framebroker::fbproc
