// fbbench save's python3-zarr baseline: the text of zarr_baseline.py (its usage is at its top),
// embedded at build time, for `python3 -c`.
#pragma once

namespace framebroker::fbbench {

extern const char* const kZarrBaselinePy;

}  // namespace framebroker::fbbench
