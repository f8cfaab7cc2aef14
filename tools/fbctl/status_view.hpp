// The human-readable `fbctl status` tables.
#pragma once

#include <ostream>

#include "framebroker/status.hpp"

namespace framebroker::fbctl {

void print_status(std::ostream& out, const Status& s);

}  // namespace framebroker::fbctl
