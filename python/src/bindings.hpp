// The pieces of the _framebroker extension module, one per file, and what they share.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "framebroker/client.hpp"

namespace framebroker::python {

namespace py = pybind11;

void bind_errors(py::module_& m);
void bind_frames(py::module_& m);
void bind_client(py::module_& m);
void bind_publish(py::module_& m);

// numpy's view of a pixel type: element dtype and samples per pixel.
struct PixelLayout {
  py::dtype dtype;
  size_t samples;
};
PixelLayout layout_of(PixelType t);

// A numpy array over `bytes` (rows `stride` bytes apart) that keeps `owner` alive while it or
// any view of it lives. Shape (h, w) for one sample per pixel, else (h, w, samples).
py::array pixel_array(PixelType t, uint32_t width, uint32_t height, uint32_t stride,
                      const std::byte* data, bool writable, py::object owner);

// Makes `a` read-only (numpy's WRITEABLE flag; writing then raises ValueError).
void make_read_only(py::array& a);

// Across files: the Python object of a new subscription, and the held frame of a Python Frame
// (for a loan's provenance).
py::object wrap_subscription(Subscription&& sub);
const Frame& frame_of(py::handle frame);
py::object advertise_stream(Client& c, const std::string& stream, std::vector<size_t> shape,
                            py::object dtype, std::optional<std::string> pixel_type, uint32_t slots,
                            const std::string& overflow, std::map<std::string, std::string> tags);

// A SequenceSpec from the keywords of Camera.start() and Publisher.begin_sequence(): axes
// "t=3,c=2,z=20" or a dict {'t': 3, ...} (acquisition order, outermost first), order "tcz"
// (None: as given), channel names, z step, interval, metadata (a dict, or JSON text). Raises
// ValueError (std::invalid_argument) with the reason for a bad one.
SequenceSpec sequence_spec(py::handle axes, const std::optional<std::string>& order,
                           const std::vector<std::string>& channels, double z_step_um,
                           double interval_ms, py::handle metadata);

// Waits for `attempt` in slices, with the GIL released, so that other Python threads run and
// Ctrl-C (a pending signal) interrupts the wait with KeyboardInterrupt. `timeout_s` None: wait
// until attempt() gives something or `done()` is true.
template <typename Attempt, typename Done>
auto wait_interruptibly(std::optional<double> timeout_s, Attempt attempt, Done done)
    -> decltype(attempt(std::chrono::milliseconds{})) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kSlice = std::chrono::milliseconds(100);
  const auto deadline =
      timeout_s ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(std::max(0.0, *timeout_s)))
                : Clock::time_point::max();
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    decltype(attempt(kSlice)) got;
    {
      py::gil_scoped_release unlocked;
      got = attempt(std::clamp(left, std::chrono::milliseconds(0), kSlice));
    }
    if (got || done()) return got;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (Clock::now() >= deadline) return got;
  }
}

}  // namespace framebroker::python
