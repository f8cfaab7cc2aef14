// connect(), Client and Camera. Requests to the broker wait with the GIL released.

#include "bindings.hpp"

namespace framebroker::python {
namespace {

Mode mode_of(const std::string& mode) {
  if (mode == "every") return Mode::Every;
  if (mode == "latest") return Mode::Latest;
  throw py::value_error("mode must be 'every' or 'latest', not '" + mode + "'");
}

// A Python value as a camera property's text: 5.0 -> "5.0", True -> "true".
std::string property_text(py::handle v) {
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? "true" : "false";
  return py::str(v).cast<std::string>();
}

py::dict property_dict(const PropertyInfo& p) {
  py::dict d;
  d["value"] = p.value;
  d["type"] = p.type;
  d["unit"] = p.unit;
  d["min"] = p.min ? py::object(py::float_(*p.min)) : py::object(py::none());
  d["max"] = p.max ? py::object(py::float_(*p.max)) : py::object(py::none());
  d["allowed"] = p.allowed;
  d["read_only"] = p.read_only;
  return d;
}

}  // namespace

SequenceSpec sequence_spec(py::handle axes, const std::optional<std::string>& order,
                           const std::vector<std::string>& channels, double z_step_um,
                           double interval_ms, py::handle metadata) {
  std::string text;
  if (py::isinstance<py::dict>(axes)) {
    for (auto [name, size] : axes.cast<py::dict>())
      text += (text.empty() ? "" : ",") + py::str(name).cast<std::string>() + "=" +
              py::str(size).cast<std::string>();
  } else if (py::isinstance<py::str>(axes)) {
    text = axes.cast<std::string>();
  } else {
    throw py::value_error(
        "axes must be text like \"t=3,c=2,z=20\" or a dict like {'t': 3, 'c': "
        "2, 'z': 20}");
  }
  SequenceSpec spec = SequenceSpec::parse(text, order.value_or(""));
  spec.channels = channels;
  spec.z_step_um = z_step_um;
  spec.interval_ms = interval_ms;
  if (py::isinstance<py::str>(metadata))
    spec.metadata = metadata.cast<std::string>();
  else if (!metadata.is_none())
    spec.metadata = py::module_::import("json").attr("dumps")(metadata).cast<std::string>();
  spec.check();
  return spec;
}

void bind_client(py::module_& m) {
  using Release = py::call_guard<py::gil_scoped_release>;

  py::class_<CameraControl>(m, "Camera", "One of the broker's cameras: client.camera(name).")
      .def_property_readonly("name", &CameraControl::name)
      .def(
          "start",
          [](CameraControl& c, std::optional<uint64_t> frames, py::object axes,
             std::optional<std::string> order, std::vector<std::string> channels, double z_step_um,
             double interval_ms, py::object metadata) {
            if (axes.is_none()) {
              if (order || !channels.empty() || z_step_um != 0 || interval_ms != 0 ||
                  !metadata.is_none())
                throw py::value_error(
                    "order, channels, z_step_um, interval_ms and metadata "
                    "describe a sequence: give its axes too");
              py::gil_scoped_release unlocked;
              c.start(frames);
              return;
            }
            const SequenceSpec spec =
                sequence_spec(axes, order, channels, z_step_um, interval_ms, metadata);
            if (frames && *frames != spec.frames())
              throw py::value_error("frames=" + std::to_string(*frames) + " but the axes " +
                                    spec.axes_text() + " make " + std::to_string(spec.frames()));
            py::gil_scoped_release unlocked;
            c.start(spec);
          },
          py::arg("frames") = py::none(), py::kw_only(), py::arg("axes") = py::none(),
          py::arg("order") = py::none(), py::arg("channels") = std::vector<std::string>{},
          py::arg("z_step_um") = 0.0, py::arg("interval_ms") = 0.0,
          py::arg("metadata") = py::none(),
          R"(Start acquiring; frames=N stops after N frames.

With axes, a sequence: start(axes="t=3,c=2,z=20", order="tcz", channels=["488", "561"],
z_step_um=0.5, interval_ms=100, metadata={...}) runs 3 x 2 x 20 frames (z fastest here), and
subscribers get sub.sequence before the first and frame.index on each. axes: text or a dict in
acquisition order; order: the axis letters outermost first (default: as given); metadata: a
dict or JSON text (e.g. a useq MDASequence). A bad spec raises ValueError.)")
      .def("stop", &CameraControl::stop, Release())
      .def("snap", &CameraControl::snap, Release(),
           "Acquire one frame from an idle camera (subscribers receive it).")
      .def("get", &CameraControl::get, py::arg("name"), Release(), "A property's value (text).")
      .def(
          "set",
          [](CameraControl& c, const std::string& name, py::handle value) {
            const std::string text = property_text(value);
            py::gil_scoped_release unlocked;
            c.set(name, text);
          },
          py::arg("name"), py::arg("value"), "Set a property, e.g. cam.set('Exposure', 5.0).")
      .def(
          "props",
          [](CameraControl& c) {
            std::vector<PropertyInfo> props;
            {
              py::gil_scoped_release unlocked;
              props = c.properties();
            }
            py::dict d;
            for (const auto& p : props) d[py::str(p.name)] = property_dict(p);
            return d;
          },
          "dict: name -> {value, type, unit, min, max, allowed, read_only}")
      .def("__repr__",
           [](const CameraControl& c) { return "<framebroker.Camera " + c.name() + ">"; });

  py::class_<Client, std::shared_ptr<Client>>(
      m, "Client", "A connection to framebrokerd: framebroker.connect().")
      .def(
          "subscribe",
          [](Client& c, const std::string& stream, const std::string& mode, uint32_t max_hold,
             uint32_t window, bool from_latest, double spin) {
            if (!(spin >= 0 && spin <= 1))
              throw py::value_error("spin is in seconds, from 0 to 1 (e.g. 0.0002)");
            const SubscribeOptions o{mode_of(mode), max_hold, window, from_latest,
                                     std::chrono::microseconds(int64_t(spin * 1e6))};
            std::optional<Subscription> sub;
            {
              py::gil_scoped_release unlocked;
              sub.emplace(c.subscribe(stream, o));
            }
            return wrap_subscription(std::move(*sub));
          },
          py::arg("stream"), py::arg("mode") = "every", py::arg("max_hold") = 0,
          py::arg("window") = 1, py::arg("from_latest") = false, py::arg("spin") = 0.0,
          R"(Subscribe to `stream`.

mode="every": every frame while you keep up, in seq order; at most `max_hold` held and queued
(0: the ring's slots - 4). mode="latest": always the newest, at most `window` in flight.
from_latest: deliver the cached newest frame first. spin: seconds next() busy-polls before it
sleeps (lower latency for a process that has a core to itself; 0: never).)")
      .def(
          "status",
          [](Client& c, const std::string& slots_of) {
            std::string text;
            {
              py::gil_scoped_release unlocked;
              text = to_json(c.status(slots_of), -1);
            }
            return py::module_::import("json").attr("loads")(text);
          },
          py::arg("slots_of") = "",
          "dict with the keys of `fbctl status --json` (slots_of: also that stream's slot map)")
      .def("camera", &Client::camera, py::arg("name"))
      .def("advertise", &advertise_stream, py::arg("stream"), py::kw_only(), py::arg("shape"),
           py::arg("dtype") = "uint16", py::arg("pixel_type") = py::none(), py::arg("slots") = 0,
           py::arg("overflow") = "block", py::arg("tags") = std::map<std::string, std::string>{},
           R"(Publish a stream of your own: a Publisher.

shape: (height, width) or (height, width, channels); dtype: uint8, uint16 or float32; the pixel
type follows (uint16 -> Mono16; pass pixel_type="Mono12" for 12-bit data in uint16). slots: the
ring (0: the broker's default). overflow: "block" (loan() waits for the slowest `every`
subscriber) or "drop". tags: added to every frame. Raises Refused when the name is taken, the
format is not valid or the ring is too large.)")
      .def(
          "discover_cameras",
          [](Client& c, bool include_fake) {
            std::vector<DeviceInfo> devices;
            {
              py::gil_scoped_release unlocked;
              devices = c.discover_cameras(include_fake);
            }
            py::list out;
            for (const auto& d : devices) {
              py::dict e;
              e["id"] = d.id;
              e["physical_id"] = d.physical_id;
              e["vendor"] = d.vendor;
              e["model"] = d.model;
              e["serial"] = d.serial;
              e["protocol"] = d.protocol;
              e["address"] = d.address;
              out.append(e);
            }
            return out;
          },
          py::arg("include_fake") = false)
      .def("flush", &Client::flush, Release(), "Send releases that are still batched.")
      .def("take_async_errors", &Client::take_async_errors)
      .def_property_readonly("socket_path", &Client::socket_path)
      .def_property_readonly("instance", &Client::instance)
      .def_property_readonly("broker_version", &Client::broker_version)
      .def("__repr__",
           [](const Client& c) { return "<framebroker.Client " + c.socket_path() + ">"; });

  m.def(
      "connect",
      [](std::optional<std::string> socket, const std::string& instance,
         std::optional<std::string> name, const std::string& role, bool reconnect,
         std::optional<double> reconnect_timeout) {
        if (reconnect_timeout && !(*reconnect_timeout > 0))
          throw py::value_error("reconnect_timeout is in seconds and > 0 (None: wait forever)");
        ConnectOptions o;
        o.socket_path = socket.value_or("");
        o.instance = instance;
        o.client_name = name.value_or("");
        o.role = role;
        o.reconnect = reconnect;
        if (reconnect_timeout)
          o.reconnect_give_up = std::chrono::milliseconds(int64_t(*reconnect_timeout * 1000));
        py::gil_scoped_release unlocked;
        return std::make_shared<Client>(Client::connect(o));
      },
      py::arg("socket") = py::none(), py::arg("instance") = "default", py::arg("name") = py::none(),
      py::arg("role") = "client", py::kw_only(), py::arg("reconnect") = false,
      py::arg("reconnect_timeout") = py::none(),
      R"(Connect to framebrokerd.

socket: the broker's socket (default: $FRAMEBROKER_SOCKET, else the instance's in the runtime
directory). name: shown by `fbctl subscribers` (default: the program's). Raises
BrokerNotRunning naming the socket when nothing listens there.

reconnect=True survives a broker restart: sub.next() returns None while the broker is away,
reconnects (back-off 20 ms to 500 ms), subscribes again, and the first frame of the new broker
has frame.after_restart (sub.restart says more; its seqs start again). reconnect_timeout:
seconds after which next() raises BrokerLost (None: wait for the broker forever).)");
}

}  // namespace framebroker::python
