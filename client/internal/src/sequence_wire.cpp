#include "framebroker/internal/sequence_wire.hpp"

#include <stdexcept>

namespace framebroker::wire {

flatbuffers::Offset<SequenceSpec> to_wire(flatbuffers::FlatBufferBuilder& fbb,
                                          const framebroker::SequenceSpec& spec) {
  std::vector<flatbuffers::Offset<SequenceAxis>> axes;
  for (const auto& a : spec.axes)
    axes.push_back(CreateSequenceAxis(fbb, fbb.CreateString(std::string(1, a.name)), a.size));
  std::vector<flatbuffers::Offset<flatbuffers::String>> channels;
  for (const auto& c : spec.channels) channels.push_back(fbb.CreateString(c));
  return CreateSequenceSpec(fbb, fbb.CreateVector(axes), fbb.CreateVector(channels), spec.z_step_um,
                            spec.interval_ms, fbb.CreateString(spec.metadata));
}

framebroker::SequenceSpec from_wire(const SequenceSpec* spec) {
  if (!spec) throw std::invalid_argument("the sequence has no description");
  framebroker::SequenceSpec out;
  if (spec->axes())
    for (const auto* a : *spec->axes()) {
      const auto* name = a->name();
      if (!name || name->size() != 1)
        throw std::invalid_argument("an axis name must be one letter (t, p, c or z)");
      out.axes.push_back({name->c_str()[0], a->size()});
    }
  if (spec->channels())
    for (const auto* c : *spec->channels()) out.channels.push_back(c->str());
  out.z_step_um = spec->z_step_um();
  out.interval_ms = spec->interval_ms();
  if (spec->metadata()) out.metadata = spec->metadata()->str();
  out.check();
  return out;
}

}  // namespace framebroker::wire
