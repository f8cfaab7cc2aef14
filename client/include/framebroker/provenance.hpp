// framebroker::derive_from: the provenance of a frame made from another one.
//
//   CommitInfo info;                       // made once: the loop allocates nothing
//   ...
//   derive_from(*in, info);                // per output frame, from its (first) input frame
//   loan->commit(info);
//
// Provenance names the origin, not the last hop: when `in` itself came from a processor, its
// source_stream/source_seq pass on; otherwise `in`'s stream and seq. So a frame lost anywhere up
// a chain of processors shows as a gap in source_seq at its end. The camera frame id, hardware
// timestamp and exposure pass on too.
#pragma once

#include "framebroker/frame.hpp"
#include "framebroker/publisher.hpp"

namespace framebroker {

void derive_from(const Frame& in, CommitInfo& info);

}  // namespace framebroker
