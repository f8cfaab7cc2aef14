// Frame and Subscription. A Frame's array *is* the shared-memory slot: its base is a capsule
// that shares the hold, so the slot goes back to the broker when the Frame is released (or
// collected) and every view of its array is gone, never earlier.
#include <array>
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
  // Its place in a sequence: axis letters ("tcz", empty outside one) and index on each.
  uint64_t sequence_id = 0;
  int64_t sequence_position = -1;
  std::string sequence_axes;
  std::array<uint32_t, 4> sequence_index{};
  bool after_restart = false;

  explicit PyFrame(Frame&& f)
      : frame(std::make_shared<Frame>(std::move(f))),
        seq(frame->seq()),
        camera_frame_id(frame->camera_frame_id()),
        width(frame->width()),
        height(frame->height()),
        gen(frame->gen()),
        slot(frame->slot()),
        pixel_type(frame->pixel_type()),
        stream(frame->stream()) {
    after_restart = frame->after_restart();
    sequence_position = frame->sequence_position();
    if (sequence_position < 0) return;
    const meta::FrameMeta& m = frame->meta();
    sequence_id = m.sequence_id();
    if (const auto* axes = m.sequence_axes(); axes && axes->size() <= sequence_index.size()) {
      sequence_axes = axes->str();
      for (size_t i = 0; i < sequence_axes.size(); ++i)
        sequence_index[i] = frame->index(sequence_axes[i]).value_or(0);
    }
  }

  py::dict index() const {
    py::dict d;
    for (size_t i = 0; i < sequence_axes.size(); ++i)
      d[py::str(std::string(1, sequence_axes[i]))] = sequence_index[i];
    return d;
  }

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

  // A Frame, or None when `timeout_s` passed or the stream ended (also when `until_end`, a
  // sequence id, finished). None: wait for one. A sequence's end does not end the wait.
  py::object next(std::optional<double> timeout_s, uint64_t until_end = 0) {
    auto s = open();  // a close() from another thread cannot free it under us
    auto got = wait_interruptibly(
        timeout_s, [&](std::chrono::milliseconds t) { return s->next(t); },
        [&] {
          if (s->ended()) return true;
          const auto end = s->sequence_end();
          return until_end != 0 && end && end->id == until_end;
        });
    if (!got) return py::none();
    return py::cast(PyFrame(std::move(*got)));
  }
};

// sub.sequence_frames(): the frames of the sequence running (or of the next to start) until
// it finishes; frames outside a sequence are skipped.
struct SequenceFrames {
  PySubscription* sub;
  py::object keep;  // the Python subscription
  std::optional<double> timeout_s;
  uint64_t id = 0;  // 0: no sequence yet
  bool over = false;

  py::object next() {
    while (!over) {
      py::object f = sub->next(timeout_s, id);
      if (f.is_none()) break;
      const PyFrame& frame = f.cast<const PyFrame&>();
      if (frame.sequence_position < 0) continue;
      if (id == 0) id = frame.sequence_id;
      if (frame.sequence_id == id) return f;
      break;  // a later sequence: this one is over (its end was not seen)
    }
    over = true;
    throw py::stop_iteration();
  }
};

py::object sequence_object(const std::shared_ptr<const Sequence>& s) {
  return s ? py::cast(Sequence(*s)) : py::object(py::none());
}

}  // namespace

void bind_frames(py::module_& m) {
  py::class_<Sequence>(m, "Sequence", R"(An acquisition sequence: sub.sequence.

axes: {'t': 3, 'c': 2, 'z': 20} in acquisition order (outermost first), order: 'tcz', shape:
(3, 2, 20), channels: the c axis' names, z_step_um and interval_ms (0: not known), metadata:
the JSON object as a dict (metadata_json: its text, verbatim), first_seq: the seq of its first
position.)")
      .def_readonly("id", &Sequence::id)
      .def_readonly("stream", &Sequence::stream)
      .def_readonly("first_seq", &Sequence::first_seq)
      .def_property_readonly("axes",
                             [](const Sequence& s) {
                               py::dict d;
                               for (const auto& a : s.spec.axes)
                                 d[py::str(std::string(1, a.name))] = a.size;
                               return d;
                             })
      .def_property_readonly("order", [](const Sequence& s) { return s.spec.order(); })
      .def_property_readonly("axes_text", [](const Sequence& s) { return s.spec.axes_text(); })
      .def_property_readonly("shape",
                             [](const Sequence& s) {
                               py::list l;
                               for (const auto& a : s.spec.axes) l.append(a.size);
                               return py::tuple(l);
                             })
      .def_property_readonly("frames", [](const Sequence& s) { return s.spec.frames(); })
      .def_property_readonly("channels", [](const Sequence& s) { return s.spec.channels; })
      .def_property_readonly("z_step_um", [](const Sequence& s) { return s.spec.z_step_um; })
      .def_property_readonly("interval_ms", [](const Sequence& s) { return s.spec.interval_ms; })
      .def_property_readonly("metadata",
                             [](const Sequence& s) -> py::object {
                               if (s.spec.metadata.empty()) return py::dict();
                               return py::module_::import("json").attr("loads")(s.spec.metadata);
                             })
      .def_property_readonly("metadata_json", [](const Sequence& s) { return s.spec.metadata; })
      .def("__repr__", [](const Sequence& s) {
        return "<framebroker.Sequence " + std::to_string(s.id) + " of " + s.stream + " " +
               s.spec.axes_text() + ">";
      });
  // How a sequence ended: a named tuple (id, frames, missed, complete).
  m.attr("SequenceEnd") = py::module_::import("collections")
                              .attr("namedtuple")("SequenceEnd", "id frames missed complete",
                                                  py::arg("module") = "framebroker");

  py::class_<SequenceFrames>(m, "SequenceFrames",
                             "The frames of one sequence: sub.sequence_frames().")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &SequenceFrames::next);

  py::class_<PyFrame>(m, "Frame", R"(One frame, held in shared memory until released.

array: the pixels as a read-only numpy array that *is* the slot (no copy), shape (h, w) or
(h, w, c). release() or leaving `with frame:` drops the frame's hold at once; an array (or any
view of it) still alive keeps the slot until it goes too, so a view never dangles.)")
      .def_property_readonly("array", &PyFrame::array, "the pixels (read-only numpy view)")
      .def_property_readonly("meta", &PyFrame::meta,
                             "dict: timestamps, geometry, ROI, binning, exposure, tags, "
                             "provenance (source_stream, source_seq)")
      .def_readonly("seq", &PyFrame::seq, "the broker's sequence number (gaps are lost frames)")
      .def_property_readonly("index", &PyFrame::index,
                             "dict: its index on each axis of its sequence, e.g. {'t': 0, 'c': 1, "
                             "'z': 5} ({} outside a sequence)")
      .def_property_readonly(
          "sequence_id",
          [](const PyFrame& f) {
            return f.sequence_position < 0 ? py::object(py::none())
                                           : py::object(py::int_(f.sequence_id));
          },
          "the id of its sequence (None outside one)")
      .def_readonly("sequence_position", &PyFrame::sequence_position,
                    "its position in its sequence (-1 outside one; a gap is a lost frame)")
      .def_readonly("camera_frame_id", &PyFrame::camera_frame_id)
      .def_readonly("after_restart", &PyFrame::after_restart,
                    "True for the first frame after the client reconnected to a restarted broker "
                    "(connect(reconnect=True); sub.restart says more; seqs start again)")
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
for frame in sub.sequence_frames(): ...   the frames of one acquisition sequence
sub.sequence, sub.sequence_end            the sequence and how it ended
async for frame in sub: ...  the same in asyncio (sub.fileno() is the socket to wait on)
with client.subscribe(...) as sub: ...   unsubscribes at the end)")
      .def(
          "next", [](PySubscription& s, std::optional<double> timeout) { return s.next(timeout); },
          py::arg("timeout") = py::none(),
          "A Frame, or None when `timeout` seconds passed (None: wait) or the stream ended.")
      .def_property_readonly(
          "sequence", [](PySubscription& s) { return sequence_object(s.open()->sequence()); },
          "The stream's acquisition sequence as of the frames taken (a Sequence; None before "
          "any). A late joiner has it before its first frame.")
      .def_property_readonly(
          "sequence_end",
          [](PySubscription& s) -> py::object {
            const auto e = s.open()->sequence_end();
            if (!e) return py::none();
            return py::module_::import("framebroker._framebroker")
                .attr("SequenceEnd")(e->id, e->frames, e->missed, e->complete);
          },
          "How the sequence ended, SequenceEnd(id, frames, missed, complete), once its last "
          "frame was taken; None while it runs (and from the next one's start).")
      .def(
          "sequence_frames",
          [](py::object self, std::optional<double> timeout) {
            auto& s = self.cast<PySubscription&>();
            SequenceFrames it{&s, self, timeout};
            // The sequence running now, unless it already finished: then the next one.
            const auto sq = s.open()->sequence();
            const auto end = s.open()->sequence_end();
            if (sq && !(end && end->id == sq->id)) it.id = sq->id;
            return it;
          },
          py::arg("timeout") = py::none(),
          R"(Iterate over the frames of one sequence: the one running, or the next to start.

It stops when the sequence finished (then sub.sequence_end says how: frames, missed), when
`timeout` seconds passed without a frame (None: wait), or when the stream ended. Frames outside
a sequence are skipped.)")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__",
           [](PySubscription& s) {
             py::object f = s.next(std::nullopt);
             if (f.is_none()) throw py::stop_iteration();
             return f;
           })
      .def_property_readonly(
          "restart",
          [](PySubscription& s) -> py::object {
            const auto r = s.open()->restart();
            if (!r) return py::none();
            py::dict d;
            d["count"] = r->count;
            d["last_seq_before"] =
                r->had_frame ? py::object(py::int_(r->last_seq_before)) : py::object(py::none());
            d["first_seq_after"] = r->first_seq_after;
            d["outage_s"] = double(r->outage.count()) / 1000;
            d["reason"] = r->reason;
            return d;
          },
          "With connect(reconnect=True): the latest broker restart taken, a dict (count, "
          "last_seq_before, first_seq_after, outage_s, reason); None before any. The new "
          "broker's seqs start again.")
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
