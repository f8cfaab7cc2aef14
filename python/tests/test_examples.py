"""The Python examples (examples/python) against a real framebrokerd: save_zarr.py's array read
back with python3-zarr, process_publish.py's projections checked against numpy. Fixtures and the
counter pattern come from conftest.py."""
import os
import pathlib
import subprocess
import sys
import time

import numpy
import pytest
import zarr

import framebroker as fb
from conftest import counter_camera, counter_frame

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
W, H = 64, 48


def run_example(name, *args, **kw):
    return subprocess.Popen([PYTHON, str(EXAMPLES / name), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("name", ["save_zarr.py", "process_publish.py", "live_mpl.py"])
def test_help(name):
    # live_mpl.py must answer --help without matplotlib or a display.
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    p = run_example(name, "--help", env=env)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "usage:" in out and "Example" in out


def test_save_zarr_writes_every_frame(make_broker, tmp_path):
    broker = make_broker(counter_camera(W, H, fps=200, slots=64, start=True))
    out = tmp_path / "run.zarr"
    frames = 45  # two full chunks of 16 and a partial one
    p = run_example("save_zarr.py", "cam", out, "--frames", frames, "--chunk", 16,
                    "--socket", broker.socket)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr
    root = zarr.open_group(str(out), mode="r")
    z = root["frames"]
    assert z.shape == (frames, H, W) and z.dtype == numpy.uint16
    assert z.chunks == (16, H, W)
    ids, seqs = root["camera_frame_id"][:], root["seq"][:]
    assert len(ids) == len(seqs) == frames
    assert (numpy.diff(seqs) == 1).all(), "frames missed: " + stderr
    for i in range(frames):
        numpy.testing.assert_array_equal(z[i], counter_frame(int(ids[i]), W, H),
                                         err_msg=f"frame {i}")


def wait_for_stream(client, name, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s["name"] == name for s in client.status()["streams"]):
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.05)
    raise AssertionError(f"{name} was not published within {timeout} s")


def test_process_publish_max_projection(make_broker):
    broker = make_broker(counter_camera(W, H, fps=200, slots=64, start=False))
    k, projections = 4, 6
    p = run_example("process_publish.py", "cam", "--k", k, "--frames", projections,
                    "--socket", broker.socket)
    try:
        client = fb.connect(socket=broker.socket, name="test_examples")
        wait_for_stream(client, "cam.mip", p)
        got = []
        with client.subscribe("cam.mip", mode="every") as sub:
            client.camera("cam").start()
            while len(got) <= projections:
                frame = sub.next(timeout=20)
                if frame is None:
                    break  # the stream ended (or nothing came: checked below)
                with frame:
                    got.append((frame.camera_frame_id, frame.meta["source_stream"],
                                frame.meta["source_seq"], frame.array.copy()))
            assert sub.ended
        client.camera("cam").stop()
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert len(got) == projections
    first = got[0][0]
    for i, (fid, source_stream, source_seq, array) in enumerate(got):
        assert fid == first + i * k, "input frames missed"
        assert source_stream == "cam"
        expected = numpy.max([counter_frame(fid + j, W, H) for j in range(k)], axis=0)
        numpy.testing.assert_array_equal(array, expected, err_msg=f"projection {i}")
