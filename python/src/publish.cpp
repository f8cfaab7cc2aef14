// Publisher and Loan: a loan's array is a writable view of its slot; commit() publishes it.

#include "bindings.hpp"
#include "framebroker/provenance.hpp"

namespace framebroker::python {
namespace {

// The pixel type of numpy frames of `dtype` with `samples` per pixel.
std::string pixel_type_of(const py::dtype& dtype, size_t samples) {
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  if (kind == 'u' && size == 1 && samples == 1) return "Mono8";
  if (kind == 'u' && size == 2 && samples == 1) return "Mono16";
  if (kind == 'f' && size == 4 && samples == 1) return "Mono32F";
  if (kind == 'u' && size == 1 && samples == 3) return "RGB8";
  if (kind == 'u' && size == 1 && samples == 4) return "BGRA8";
  if (kind == 'u' && size == 2 && samples == 3) return "RGB16";
  throw py::value_error("no pixel type holds " + py::str(py::handle(dtype)).cast<std::string>() +
                        " with " + std::to_string(samples) +
                        " sample(s) per pixel: use uint8, uint16 or float32 with shape (h, w), "
                        "uint8 with (h, w, 3) or (h, w, 4), or uint16 with (h, w, 3)");
}

struct PyPublisher;

// One lent slot. The array (and its views) share the C++ Loan through a capsule, so the slot's
// mapping outlives them; commit() or abort() ends the loan (a loan dropped with neither is
// aborted).
struct PyLoan {
  std::shared_ptr<Loan> loan;
  bool done = false;
  py::object array_cache;
  std::shared_ptr<const std::string> sequence_order;  // the publisher's sequence ("" if none)

  Loan& open() {
    if (done || !loan) throw py::value_error("this loan was already committed or aborted");
    return *loan;
  }

  void commit(py::object source, std::optional<uint64_t> camera_frame_id,
              std::optional<uint64_t> hw_timestamp_ns, std::optional<double> exposure_us,
              std::optional<std::string> source_stream, std::optional<int64_t> source_seq,
              std::map<std::string, std::string> tags, py::object index) {
    Loan& l = open();
    CommitInfo info;
    if (!source.is_none()) {
      derive_from(frame_of(source), info);  // the origin of the input frame
    }
    if (camera_frame_id) info.camera_frame_id = *camera_frame_id;
    if (hw_timestamp_ns) info.hw_timestamp_ns = *hw_timestamp_ns;
    if (exposure_us) info.exposure_us = *exposure_us;
    if (source_stream) info.source_stream = *source_stream;
    if (source_seq) info.source_seq = *source_seq;
    for (auto& [k, v] : tags) info.tags.emplace_back(k, v);
    if (!index.is_none()) set_index(index, info.index);
    finish();
    py::gil_scoped_release unlocked;
    l.commit(info);
  }

  // index: a tuple in the sequence's axis order, or a dict {'c': 1, 'z': 5} naming each axis.
  void set_index(py::handle index, std::vector<uint32_t>& out) const {
    const std::string order = sequence_order ? *sequence_order : std::string();
    if (order.empty())
      throw py::value_error("index= needs a sequence: call begin_sequence() first");
    if (py::isinstance<py::dict>(index)) {
      auto d = index.cast<py::dict>();
      for (const char axis : order) {
        const py::str key(std::string(1, axis));
        if (!d.contains(key))
          throw py::value_error("index has no '" + std::string(1, axis) +
                                "': the sequence's axes are '" + order + "'");
        out.push_back(d[key].cast<uint32_t>());
      }
      if (d.size() != order.size())
        throw py::value_error("index names an axis the sequence ('" + order + "') does not have");
      return;
    }
    out = index.cast<std::vector<uint32_t>>();
    if (out.size() != order.size())
      throw py::value_error("index has " + std::to_string(out.size()) +
                            " values; the sequence's axes are '" + order + "'");
  }

  void abort() {
    if (done || !loan) return;
    Loan& l = *loan;
    finish();
    l.abort();
  }

  // The array stops being writable: the slot is the subscribers' now.
  void finish() {
    done = true;
    if (array_cache) {
      py::array a = array_cache;
      make_read_only(a);
    }
  }
};

struct PyPublisher {
  std::shared_ptr<Publisher> pub;
  std::string stream;
  PixelType pixel_type;
  std::shared_ptr<const std::string> sequence_order = std::make_shared<const std::string>();

  Publisher& open() {
    if (!pub) throw py::value_error("the publisher of '" + stream + "' is closed");
    return *pub;
  }

  py::object loan(std::optional<double> timeout_s) {
    Publisher& p = open();
    auto keep = pub;
    auto got = wait_interruptibly(
        timeout_s, [&](std::chrono::milliseconds t) { return keep->loan(t); },
        [] { return false; });
    if (!got)
      throw Error(Errc::Timeout, "no free slot of '" + stream +
                                     "' within the timeout (its subscribers are behind)");
    PyLoan l;
    l.sequence_order = sequence_order;
    l.loan = std::make_shared<Loan>(std::move(*got));
    auto* hold = new std::shared_ptr<Loan>(l.loan);
    py::capsule owner(hold, [](void* q) { delete static_cast<std::shared_ptr<Loan>*>(q); });
    l.array_cache = pixel_array(pixel_type, p.width(), p.height(), p.stride(),
                                l.loan->pixels().data(), true, owner);
    return py::cast(std::move(l));
  }
};

}  // namespace

py::object advertise_stream(Client& c, const std::string& stream, std::vector<size_t> shape,
                            py::object dtype, std::optional<std::string> pixel_type, uint32_t slots,
                            const std::string& overflow, std::map<std::string, std::string> tags) {
  if (shape.size() != 2 && shape.size() != 3)
    throw py::value_error("shape must be (height, width) or (height, width, channels)");
  const py::dtype dt = py::dtype::from_args(dtype);
  PublishOptions o;
  o.height = uint32_t(shape[0]);
  o.width = uint32_t(shape[1]);
  o.pixel_type = pixel_type.value_or(pixel_type_of(dt, shape.size() == 3 ? shape[2] : 1));
  o.slots = slots;
  if (overflow != "block" && overflow != "drop")
    throw py::value_error("overflow must be 'block' or 'drop', not '" + overflow + "'");
  o.overflow = overflow == "drop" ? Overflow::Drop : Overflow::Block;
  for (auto& [k, v] : tags) o.tags.emplace_back(k, v);

  PyPublisher p;
  p.stream = stream;
  int found = -1;
  for (int t = 0; t <= int(PixelType::MAX); ++t)
    if (o.pixel_type == to_string(PixelType(t))) found = t;
  if (found < 0) throw py::value_error("unknown pixel_type '" + o.pixel_type + "'");
  p.pixel_type = PixelType(found);
  // An explicit pixel type must still be stored as this dtype (e.g. Mono12 in uint16).
  const PixelLayout l = layout_of(p.pixel_type);
  const size_t samples = shape.size() == 3 ? shape[2] : 1;
  if (l.dtype.kind() != dt.kind() || l.dtype.itemsize() != dt.itemsize() || l.samples != samples)
    throw py::value_error("pixel_type " + o.pixel_type + " does not hold " +
                          py::str(py::handle(dt)).cast<std::string>() + " frames of shape " +
                          py::str(py::cast(shape)).cast<std::string>());
  std::optional<Publisher> made;
  {
    py::gil_scoped_release unlocked;
    made.emplace(c.advertise(stream, o));
  }
  p.pub = std::make_shared<Publisher>(std::move(*made));
  return py::cast(std::move(p));
}

void bind_publish(py::module_& m) {
  py::class_<PyLoan>(m, "Loan", R"(A slot lent to a publisher. Use it as

    with pub.loan(timeout=1.0) as buf:   # buf: a writable numpy view of the slot
        buf[:] = result
        buf.commit(source=frame)         # publish, with the input frame's provenance

Leaving `with` without commit() aborts the loan (the slot goes back unpublished).)")
      .def_property_readonly(
          "array",
          [](PyLoan& l) {
            l.open();
            return l.array_cache;
          },
          "the slot's pixels, writable until commit() or abort()")
      .def("commit", &PyLoan::commit, py::arg("source") = py::none(), py::kw_only(),
           py::arg("camera_frame_id") = py::none(), py::arg("hw_timestamp_ns") = py::none(),
           py::arg("exposure_us") = py::none(), py::arg("source_stream") = py::none(),
           py::arg("source_seq") = py::none(),
           py::arg("tags") = std::map<std::string, std::string>{}, py::arg("index") = py::none(),
           "Publish the slot. source: the Frame this one was made from (its provenance, camera "
           "frame id, timestamp and exposure pass on); keywords override. index: its place in "
           "the publisher's sequence, a tuple in axis order or a dict {'c': 1, 'z': 5} (None: "
           "the next position).")
      .def("abort", &PyLoan::abort, "Give the slot back unpublished.")
      .def_property_readonly("done", [](const PyLoan& l) { return l.done; });

  py::class_<PyPublisher>(m, "Publisher", R"(A stream of your own: client.advertise(...).

Every tool sees it like a camera's stream. loan() waits for a free slot (overflow="block": until
every `every` subscriber has room) and raises Timeout when none came. Leaving `with` (or
close()) ends the stream after its last frame; subscribers see the end.)")
      .def("loan", &PyPublisher::loan, py::arg("timeout") = 1.0,
           "A Loan of a free slot, waiting up to `timeout` seconds (None: wait).")
      .def("flush", [](PyPublisher& p) { p.open().flush(); })
      .def(
          "begin_sequence",
          [](PyPublisher& p, py::object axes, std::optional<std::string> order,
             std::vector<std::string> channels, double z_step_um, double interval_ms,
             py::object metadata) {
            const SequenceSpec spec =
                sequence_spec(axes, order, channels, z_step_um, interval_ms, metadata);
            Publisher& q = p.open();
            uint64_t id = 0;
            {
              py::gil_scoped_release unlocked;
              id = q.begin_sequence(spec);
            }
            p.sequence_order = std::make_shared<const std::string>(spec.order());
            return id;
          },
          py::arg("axes"), py::kw_only(), py::arg("order") = py::none(),
          py::arg("channels") = std::vector<std::string>{}, py::arg("z_step_um") = 0.0,
          py::arg("interval_ms") = 0.0, py::arg("metadata") = py::none(),
          "Start a sequence on this stream (ending one still running); the keywords of "
          "Camera.start. Returns its id. Frames committed next take its positions in order, or "
          "the index= given to commit(). A bad spec raises ValueError.")
      .def(
          "end_sequence",
          [](PyPublisher& p) {
            Publisher& q = p.open();
            {
              py::gil_scoped_release unlocked;
              q.end_sequence();
            }
            p.sequence_order = std::make_shared<const std::string>();
          },
          "End the sequence after the frames committed so far (subscribers get its end).")
      .def_readonly("stream", &PyPublisher::stream)
      .def_property_readonly("shape",
                             [](PyPublisher& p) {
                               const size_t s = layout_of(p.pixel_type).samples;
                               auto& q = p.open();
                               return s > 1 ? py::make_tuple(q.height(), q.width(), s)
                                            : py::make_tuple(q.height(), q.width());
                             })
      .def_property_readonly("committed", [](PyPublisher& p) { return p.open().committed(); })
      .def_property_readonly("dropped", [](PyPublisher& p) { return p.open().dropped(); })
      .def_property_readonly("slots", [](PyPublisher& p) { return p.open().slots(); })
      .def("take_async_errors", [](PyPublisher& p) { return p.open().take_async_errors(); })
      .def("close",
           [](PyPublisher& p) {
             auto keep = std::move(p.pub);
             py::gil_scoped_release unlocked;
             keep.reset();
           })
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyPublisher& p, py::args) {
        auto keep = std::move(p.pub);
        py::gil_scoped_release unlocked;
        keep.reset();
      });
}

}  // namespace framebroker::python
