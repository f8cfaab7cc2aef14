// The human-readable views of a broker Status.
#pragma once

#include <ostream>

#include "framebroker/status.hpp"

namespace framebroker::fbctl {

void print_status(std::ostream& out, const Status& s);
void print_streams(std::ostream& out, const Status& s);
void print_subscribers(std::ostream& out, const Status& s);
void print_cameras(std::ostream& out, const Status& s);
// The clients whose role is bridge-*: their last reported link counters.
void print_bridges(std::ostream& out, const Status& s);
// "sequence 3: t 2/3  c 1/2  z 15/20  (95/120, 1 missed)  running": the sequence's progress on
// each axis (the last frame's index + 1 of the size), positions used of all, and how it ended
// (running, complete, stopped early).
std::string sequence_text(const SequenceStatus& q);
// One character per slot: '.' free, 'w' writing, 'c' ready and held only by
// the latest cache, 'q' queued for a client, 'H' held by a client.
std::string ring_bar(const SlotMapStatus& m);
void print_slots(std::ostream& out, const SlotMapStatus& m);

}  // namespace framebroker::fbctl
