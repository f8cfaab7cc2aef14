// _framebroker: the compiled half of the `framebroker` Python package (the other half,
// python/framebroker/, adds what is plain Python: asyncio, loan arrays, the command line).
#include "bindings.hpp"

PYBIND11_MODULE(_framebroker, m) {
  m.doc() = "libframebroker for Python; use the `framebroker` package, not this module.";
  framebroker::python::bind_errors(m);
  framebroker::python::bind_frames(m);
  framebroker::python::bind_publish(m);
  framebroker::python::bind_client(m);
}
