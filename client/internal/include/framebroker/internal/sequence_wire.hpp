// SequenceSpec to and from its wire table, for the client library and the broker alike.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include "framebroker/framebroker_generated.h"
#include "framebroker/sequence.hpp"

namespace framebroker::wire {

flatbuffers::Offset<SequenceSpec> to_wire(flatbuffers::FlatBufferBuilder& fbb,
                                          const framebroker::SequenceSpec& spec);
// Throws std::invalid_argument when the table is not a valid spec (SequenceSpec::check).
framebroker::SequenceSpec from_wire(const SequenceSpec* spec);

}  // namespace framebroker::wire
