// The human-readable views of a broker Status.
#pragma once

#include <ostream>

#include "framebroker/status.hpp"

namespace framebroker::fbctl {

void print_status(std::ostream& out, const Status& s);
void print_streams(std::ostream& out, const Status& s);
void print_subscribers(std::ostream& out, const Status& s);
void print_cameras(std::ostream& out, const Status& s);
// One character per slot: '.' free, 'w' writing, 'c' ready and held only by
// the latest cache, 'q' queued for a client, 'H' held by a client.
std::string ring_bar(const SlotMapStatus& m);
void print_slots(std::ostream& out, const SlotMapStatus& m);

}  // namespace framebroker::fbctl
