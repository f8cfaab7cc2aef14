// framebroker::Error becomes the Python exception of its code, with the broker's sentence.
#include "bindings.hpp"

namespace framebroker::python {

void bind_errors(py::module_& m) {
  // Created once, kept for the translator: the module lives as long as the interpreter.
  static PyObject* error = PyErr_NewExceptionWithDoc(
      "framebroker.Error", "Every error of framebroker.", PyExc_RuntimeError, nullptr);
  auto make = [](const char* name, const char* doc, PyObject* also) {
    py::tuple bases = also ? py::make_tuple(py::handle(error), py::handle(also))
                           : py::make_tuple(py::handle(error));
    return PyErr_NewExceptionWithDoc(name, doc, bases.ptr(), nullptr);
  };
  static PyObject* not_running =
      make("framebroker.BrokerNotRunning",
           "Nothing listens on the broker's socket (the message names it).", PyExc_ConnectionError);
  static PyObject* lost =
      make("framebroker.BrokerLost", "The connection to the broker ended.", PyExc_ConnectionError);
  static PyObject* unknown = make("framebroker.UnknownStream", "No stream of that name.", nullptr);
  static PyObject* refused = make(
      "framebroker.Refused", "The broker refused the request (the message says why).", nullptr);
  static PyObject* timeout =
      make("framebroker.Timeout", "Nothing came in time.", PyExc_TimeoutError);
  m.add_object("Error", py::handle(error));
  m.add_object("BrokerNotRunning", py::handle(not_running));
  m.add_object("BrokerLost", py::handle(lost));
  m.add_object("UnknownStream", py::handle(unknown));
  m.add_object("Refused", py::handle(refused));
  m.add_object("Timeout", py::handle(timeout));

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const framebroker::Error& e) {
      PyObject* type = error;
      switch (e.code()) {
        case Errc::BrokerNotRunning:
          type = not_running;
          break;
        case Errc::BrokerLost:
          type = lost;
          break;
        case Errc::UnknownStream:
          type = unknown;
          break;
        case Errc::Refused:
          type = refused;
          break;
        case Errc::Timeout:
          type = timeout;
          break;
        case Errc::InvalidArgument:
          type = PyExc_ValueError;
          break;
        default:
          break;
      }
      PyErr_SetString(type, e.what());
    }
  });
}

}  // namespace framebroker::python
