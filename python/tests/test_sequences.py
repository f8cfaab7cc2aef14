"""Acquisition sequences from Python against a real framebrokerd: sub.sequence and
frame.index of a camera run, the metadata round trip, a late joiner, a publisher's own
sequence with explicit indices, bad specs, and examples/python/run_sequence.py read back with
python3-zarr. Fixtures and the counter pattern come from conftest.py."""
import json
import os
import pathlib
import subprocess
import sys

import numpy
import pytest
import zarr

import framebroker as fb
from conftest import counter_camera, counter_frame

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
W, H = 64, 48


def test_every_frame_has_its_index_and_the_sequence_its_axes(broker):
    client = fb.connect(socket=broker.socket)
    with client.subscribe("cam", mode="every", max_hold=32) as sub:
        assert sub.sequence is None and sub.sequence_end is None
        client.camera("cam").start(axes="t=3,c=2,z=4", order="tcz", channels=["488", "561"],
                                   z_step_um=0.5, interval_ms=2.0)
        got = []
        for frame in sub.sequence_frames(timeout=10):  # ends at the sequence's end
            with frame:
                got.append((frame.sequence_position, frame.index, frame.sequence_id))
                numpy.testing.assert_array_equal(
                    frame.array, counter_frame(frame.camera_frame_id, W, H))
        seq, end = sub.sequence, sub.sequence_end
        assert seq is not None and end is not None, "no SequenceStarted / SequenceFinished"
        assert sub.next(timeout=0.3) is None  # the end is no error, and no frame follows
    assert list(seq.axes.items()) == [("t", 3), ("c", 2), ("z", 4)]
    assert (seq.order, seq.axes_text, seq.shape) == ("tcz", "t=3,c=2,z=4", (3, 2, 4))
    assert seq.frames == 24
    assert (seq.channels, seq.z_step_um, seq.interval_ms) == (["488", "561"], 0.5, 2.0)
    assert seq.stream == "cam" and seq.metadata == {} and seq.metadata_json == ""
    assert end == (seq.id, end.frames, 0, True) and end.frames == 24 == len(got)
    for position, index, sequence_id in got:
        assert sequence_id == seq.id
        assert index == {"t": position // 8, "c": position // 4 % 2, "z": position % 4}
    assert [g[0] for g in got] == list(range(24))

    # Outside a sequence: no index; iteration and next() carry on as before.
    with client.subscribe("cam", mode="every") as sub:
        client.camera("cam").start(frames=2)
        frames = [sub.next(timeout=10) for _ in range(2)]
        assert all(f is not None and f.index == {} and f.sequence_id is None
                   and f.sequence_position == -1 for f in frames)


def test_metadata_round_trips_as_a_dict_and_as_its_text(broker):
    client = fb.connect(socket=broker.socket)
    mda = {"axis_order": "tcz", "channels": [{"config": "488", "exposure": 5.5}],
           "nested": {"list": [1, 2.5, None, True], "text": "µm ✓"}}
    for given in (mda, json.dumps(mda, ensure_ascii=False)):
        with client.subscribe("cam", mode="every") as sub:
            client.camera("cam").start(axes={"t": 2, "z": 3}, metadata=given)
            n = sum(1 for _ in sub.sequence_frames(timeout=10))
            seq = sub.sequence
            assert n == 6 and sub.sequence_end.complete
        assert seq.axes == {"t": 2, "z": 3} and seq.order == "tz"
        assert seq.metadata == mda
        assert json.loads(seq.metadata_json) == mda
        if isinstance(given, str):
            assert seq.metadata_json == given  # verbatim


def test_a_late_joiner_gets_the_sequence_before_its_first_frame(make_broker):
    broker = make_broker(counter_camera(W, H, fps=100))
    client = fb.connect(socket=broker.socket)
    with client.subscribe("cam", mode="every") as first:
        client.camera("cam").start(axes="t=100,z=5", order="tz")
        assert first.next(timeout=10) is not None  # the sequence runs
        other = fb.connect(socket=broker.socket, name="late joiner")
        with other.subscribe("cam", mode="every") as late:
            frame = late.next(timeout=10)
            assert frame is not None
            seq = late.sequence
            assert seq is not None, "the late joiner's first frame came without its sequence"
            assert frame.sequence_id == seq.id == first.sequence.id
            assert frame.sequence_position > 0 and frame.seq >= seq.first_seq
            p = frame.sequence_position
            assert frame.index == {"t": p // 5, "z": p % 5}
        client.camera("cam").stop()


def test_a_publisher_s_sequence_with_explicit_indices(broker):
    client = fb.connect(socket=broker.socket)
    with client.advertise("made", shape=(4, 8), dtype="uint16") as pub:
        with client.subscribe("made", mode="every", max_hold=8) as sub:
            sid = pub.begin_sequence("c=2,z=3", order="cz", channels=["a", "b"])
            sent = [(1, 2), (0, 0), (1, 0), (0, 1), (0, 2), (1, 1)]
            for i, (c, z) in enumerate(sent):
                with pub.loan(timeout=5) as buf:
                    buf[:] = i
                    buf.commit(index={"z": z, "c": c} if i % 2 else (c, z))
            pub.end_sequence()
            got = [(f.index["c"], f.index["z"], int(f.array[0, 0]))
                   for f in sub.sequence_frames(timeout=10)]
            assert sub.sequence.id == sid and sub.sequence.channels == ["a", "b"]
            assert sub.sequence_end is not None and sub.sequence_end.id == sid
        with pub.loan(timeout=5) as buf:
            with pytest.raises(ValueError, match="index= needs a sequence"):
                buf.commit(index=(0, 0))
    assert got == [(c, z, i) for i, (c, z) in enumerate(sent)]


def test_a_bad_spec_raises_value_error_with_the_reason(broker):
    client = fb.connect(socket=broker.socket)
    cam = client.camera("cam")
    cases = [
        (dict(axes="t=3,q=2"), "unknown axis 'q'"),
        (dict(axes="t=0"), "axis 't' has size 0"),
        (dict(axes="t=3,c=2", order="ct z"), "--order"),
        (dict(axes="t=3,c=2", channels=["only one"]), "1 channel names for 2 channels"),
        (dict(axes="t=3", metadata="[1, 2]"), "must be a JSON object"),
        (dict(axes="t=3", metadata="x" * 70000), "the limit is"),
        (dict(axes="t=3,z=2", frames=5), "frames=5 but the axes t=3,z=2 make 6"),
        (dict(axes=7), "axes must be text"),
        (dict(frames=3, channels=["a"]), "give its axes too"),
    ]
    for kw, says in cases:
        with pytest.raises(ValueError, match=says):
            cam.start(**kw)
    with client.advertise("made", shape=(4, 8)) as pub:
        with pytest.raises(ValueError, match="unknown axis 'q'"):
            pub.begin_sequence("q=2")
        pub.begin_sequence("c=2,z=3")
        with pub.loan(timeout=5) as buf:
            with pytest.raises(ValueError, match="index has no 'c'"):
                buf.commit(index={"z": 1})
            with pytest.raises(ValueError, match="index has 3 values"):
                buf.commit(index=(0, 1, 2))
    assert client.status()["streams"][0]["name"] == "cam"  # the broker carries on


def test_run_sequence_example_saves_the_mda_sequence_as_ome_zarr(make_broker, tmp_path):
    broker = make_broker(counter_camera(W, H, fps=500))
    out = tmp_path / "mda.ome.zarr"
    env = dict(os.environ, FRAMEBROKER_SOCKET=broker.socket)
    p = subprocess.run([PYTHON, str(EXAMPLES / "run_sequence.py"), "cam", str(out)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "54 frames, 0 missed" in p.stdout
    root = zarr.open_group(str(out), mode="r")
    data = root["0"]
    assert data.shape == (3, 2, 9, H, W) and data.dtype == numpy.uint16
    ms = root.attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.1, 1, 0.5, 1, 1]
    assert [c["label"] for c in root.attrs["omero"]["channels"]] == ["488", "561"]
    assert root.attrs["mda_sequence"]["z_plan"] == {"range": 4, "step": 0.5}
    # The camera's frame ids count from 0 at the start: position t*18 + c*9 + z.
    for t in range(3):
        for c in range(2):
            for z in range(9):
                numpy.testing.assert_array_equal(
                    data[t, c, z], counter_frame(t * 18 + c * 9 + z, W, H),
                    err_msg=f"t={t} c={c} z={z}")
    h = subprocess.run([PYTHON, str(EXAMPLES / "run_sequence.py"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert h.returncode == 0 and "usage:" in h.stdout and "Example" in h.stdout
