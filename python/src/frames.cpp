// Frame and Subscription. A Frame's array *is* the shared-memory slot: its base is a capsule
// that shares the hold, so the slot goes back to the broker when the Frame is released (or
// collected) and every view of its array is gone, never earlier.
#include <memory>

#include "bindings.hpp"

namespace framebroker::python {
namespace {

// The Python Frame. The identity fields are copied so they stay readable after release().
struct PyFrame {
  std::shared_ptr<Frame> frame;
  uint64_t seq, camera_frame_id;
  uint32_t width, height, gen, slot;
  PixelType pixel_type;
  std::string stream;
  py::object array_cache, meta_cache;

  explicit PyFrame(Frame&& f)
      : frame(std::make_shared<Frame>(std::move(f))),
        seq(frame->seq()),
        camera_frame_id(frame->camera_frame_id()),
        width(frame->width()),
        height(frame->height()),
        gen(frame->gen()),
        slot(frame->slot()),
        pixel_type(frame->pixel_type()),
        stream(frame->stream()) {}

  const Frame& held() const {
    if (!frame) throw py::value_error("frame " + std::to_string(seq) + " was released");
    return *frame;
  }

  py::object array() {
    if (array_cache) return array_cache;
    const Frame& f = held();
    auto* keep = new std::shared_ptr<Frame>(frame);
    py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<Frame>*>(p); });
    array_cache = pixel_array(f.pixel_type(), f.width(), f.height(), f.stride(), f.pixels().data(),
                              false, owner);
    return array_cache;
  }

  py::object meta() {
    if (meta_cache) return meta_cache;
    const meta::FrameMeta& m = held().meta();
    auto str = [](const flatbuffers::String* s) { return s ? s->str() : std::string(); };
    py::dict tags;
    if (m.tags())
      for (const auto* t : *m.tags()) tags[py::str(str(t->key()))] = str(t->value());
    py::dict d;
    d["stream"] = stream;
    d["seq"] = seq;
    d["camera_frame_id"] = camera_frame_id;
    d["gen"] = gen;
    d["slot"] = slot;
    d["hw_timestamp_ns"] =
        m.has_hw_timestamp() ? py::object(py::int_(m.hw_timestamp_ns())) : py::object(py::none());
    d["mono_ns"] = m.mono_ns();
    d["realtime_ns"] = m.realtime_ns();
    d["width"] = m.width();
    d["height"] = m.height();
    d["stride"] = m.stride();
    d["bytes"] = m.bytes();
    d["pixel_type"] = to_string(m.pixel_type());
    d["bit_depth"] = m.bit_depth();
    d["roi"] = py::make_tuple(m.roi_x(), m.roi_y(), m.roi_w(), m.roi_h());
    d["binning"] = py::make_tuple(m.binning_x(), m.binning_y());
    d["exposure_us"] = m.exposure_us();
    d["tags"] = tags;
    d["source_stream"] =
        m.source_stream() ? py::object(py::str(str(m.source_stream()))) : py::object(py::none());
    d["source_seq"] = m.source_seq();
    meta_cache = d;
    return meta_cache;
  }

  // Drops this object's hold; views of the array keep theirs until they go.
  void release() {
    array_cache = py::object();
    frame.reset();
  }
};

// The Python Subscription; close() (or leaving `with`) unsubscribes.
struct PySubscription {
  std::shared_ptr<Subscription> sub;
  std::string stream;

  std::shared_ptr<Subscription> open() const {
    if (!sub) throw py::value_error("the subscription to '" + stream + "' is closed");
    return sub;
  }

  // A Frame, or None when `timeout_s` passed or the stream ended. None: wait for one.
  py::object next(std::optional<double> timeout_s) {
    auto s = open();  // a close() from another thread cannot free it under us
    auto got = wait_interruptibly(
        timeout_s, [&](std::chrono::milliseconds t) { return s->next(t); },
        [&] { return s->ended(); });
    if (!got) return py::none();
    return py::cast(PyFrame(std::move(*got)));
  }
};

}  // namespace

void bind_frames(py::module_& m) {
  py::class_<PyFrame>(m, "Frame", R"(One frame, held in shared memory until released.

array: the pixels as a read-only numpy array that *is* the slot (no copy), shape (h, w) or
(h, w, c). release() or leaving `with frame:` drops the frame's hold at once; an array (or any
view of it) still alive keeps the slot until it goes too, so a view never dangles.)")
      .def_property_readonly("array", &PyFrame::array, "the pixels (read-only numpy view)")
      .def_property_readonly("meta", &PyFrame::meta,
                             "dict: timestamps, geometry, ROI, binning, exposure, tags, "
                             "provenance (source_stream, source_seq)")
      .def_readonly("seq", &PyFrame::seq, "the broker's sequence number (gaps are lost frames)")
      .def_readonly("camera_frame_id", &PyFrame::camera_frame_id)
      .def_readonly("stream", &PyFrame::stream)
      .def_readonly("width", &PyFrame::width)
      .def_readonly("height", &PyFrame::height)
      .def_readonly("gen", &PyFrame::gen)
      .def_readonly("slot", &PyFrame::slot)
      .def_property_readonly("pixel_type",
                             [](const PyFrame& f) { return std::string(to_string(f.pixel_type)); })
      .def_property_readonly("released", [](const PyFrame& f) { return !f.frame; })
      .def("release", &PyFrame::release,
           "Give the slot back now (views of the array keep it until they go).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyFrame& f, py::args) { f.release(); })
      .def("__repr__", [](const PyFrame& f) {
        return "<framebroker.Frame " + f.stream + " seq " + std::to_string(f.seq) + " " +
               std::to_string(f.width) + "x" + std::to_string(f.height) + " " +
               to_string(f.pixel_type) + (f.frame ? "" : " released") + ">";
      });

  py::class_<PySubscription>(m, "Subscription", R"(The frames of one stream.

for frame in sub: ...        every frame until the stream ends (Ctrl-C interrupts the wait)
sub.next(timeout=1.0)        a Frame, or None after `timeout` seconds or at the end
async for frame in sub: ...  the same in asyncio (sub.fileno() is the socket to wait on)
with client.subscribe(...) as sub: ...   unsubscribes at the end)")
      .def("next", &PySubscription::next, py::arg("timeout") = py::none(),
           "A Frame, or None when `timeout` seconds passed (None: wait) or the stream ended.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PySubscription& s) {
             py::object f = s.next(std::nullopt);
             if (f.is_none()) throw py::stop_iteration();
             return f;
           })
      .def_property_readonly(
          "ended", [](PySubscription& s) { return s.open()->ended(); },
          "True once a published stream ended and every frame was taken")
      .def_readonly("stream", &PySubscription::stream)
      .def_property_readonly("info",
                             [](PySubscription& s) {
                               const StreamInfo& i = s.open()->info();
                               py::dict d;
                               d["stream"] = i.stream;
                               d["segment"] = i.segment;
                               d["gen"] = i.gen;
                               d["slots"] = i.slots;
                               d["slot_bytes"] = i.slot_bytes;
                               d["mode"] = i.mode == Mode::Every ? "every" : "latest";
                               d["max_hold"] = i.max_hold;
                               d["window"] = i.window;
                               return d;
                             })
      .def(
          "ring",
          [](PySubscription& s) {
            MappedRing r = s.open()->ring();
            auto* keep = new std::shared_ptr<const void>(r.owner);
            py::capsule owner(keep,
                              [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
            py::array a(py::dtype::of<uint8_t>(), {r.bytes.size()}, {1},
                        reinterpret_cast<const uint8_t*>(r.bytes.data()), owner);
            make_read_only(a);
            return a;
          },
          "The whole shared-memory segment as this process maps it (read-only uint8): every "
          "frame's array lies inside it.")
      .def(
          "fileno", [](PySubscription& s) { return s.open()->fileno(); },
          "The connection's socket: readable when the broker sent something. Take frames with "
          "next(0) until None before waiting on it again.")
      .def(
          "close", [](PySubscription& s) { s.sub.reset(); },
          "Unsubscribe; frames already taken stay valid.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySubscription& s, py::args) { s.sub.reset(); })
      .def("__repr__", [](const PySubscription& s) {
        return "<framebroker.Subscription " + s.stream + (s.sub ? "" : " closed") + ">";
      });
}

// Used by bind_client: the Python object of a new subscription.
py::object wrap_subscription(Subscription&& sub) {
  PySubscription s;
  s.stream = sub.info().stream;
  s.sub = std::make_shared<Subscription>(std::move(sub));
  return py::cast(std::move(s));
}

// Used by bind_publish: the held C++ frame of a Python Frame (for provenance).
const Frame& frame_of(py::handle f) {
  return f.cast<PyFrame&>().held();
}

}  // namespace framebroker::python
