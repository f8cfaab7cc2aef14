// Pixel types as numpy sees them.
#include "bindings.hpp"

namespace framebroker::python {

PixelLayout layout_of(PixelType t) {
  switch (t) {
    case PixelType::Mono8:
      return {py::dtype::of<uint8_t>(), 1};
    case PixelType::Mono10:
    case PixelType::Mono12:
    case PixelType::Mono14:
    case PixelType::Mono16:
      return {py::dtype::of<uint16_t>(), 1};
    case PixelType::Mono32F:
      return {py::dtype::of<float>(), 1};
    case PixelType::RGB8:
      return {py::dtype::of<uint8_t>(), 3};
    case PixelType::BGRA8:
      return {py::dtype::of<uint8_t>(), 4};
    case PixelType::RGB16:
      return {py::dtype::of<uint16_t>(), 3};
  }
  throw py::value_error("unknown pixel type");
}

void make_read_only(py::array& a) {
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
}

py::array pixel_array(PixelType t, uint32_t width, uint32_t height, uint32_t stride,
                      const std::byte* data, bool writable, py::object owner) {
  const PixelLayout l = layout_of(t);
  const auto item = py::ssize_t(l.dtype.itemsize());
  const auto samples = py::ssize_t(l.samples);
  std::vector<py::ssize_t> shape = {height, width}, strides = {stride, item * samples};
  if (samples > 1) {
    shape.push_back(samples);
    strides.push_back(item);
  }
  py::array a(l.dtype, shape, strides, data, owner);
  if (!writable) make_read_only(a);
  return a;
}

}  // namespace framebroker::python
