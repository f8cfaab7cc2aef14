"""connect(reconnect=True) across a real framebrokerd killed with SIGKILL and started again."""
import socket as pysocket
import subprocess
import time

import numpy
import pytest

import framebroker as fb
from conftest import BROKER, counter_camera, counter_frame

CAMERA = counter_camera(width=32, height=16, fps=200, start=True)


def kill(b):
    b.proc.kill()
    b.proc.wait(10)


def restart(b):
    """Starts the broker again on the same instance and socket; returns when it accepts."""
    b.proc = subprocess.Popen([str(BROKER), "--runtime-dir", str(b.dir), "--instance", b.instance,
                               "--no-default-camera", "--camera", CAMERA],
                              stdout=b.log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        s = pysocket.socket(pysocket.AF_UNIX)
        try:
            s.connect(b.socket)
            return
        except OSError:
            assert b.proc.poll() is None and time.monotonic() < deadline, b.output()
            time.sleep(0.02)
        finally:
            s.close()


def first_frame(sub, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        f = sub.next(timeout=0.2)
        if f is not None:
            return f
    return None


def test_a_reconnecting_subscriber_gets_the_restart_and_frames_again(make_broker):
    b = make_broker(CAMERA)
    client = fb.connect(socket=b.socket, reconnect=True)
    sub = client.subscribe("cam", mode="every")
    plain = fb.connect(socket=b.socket).subscribe("cam", mode="latest")
    held = first_frame(sub)
    assert held is not None and not held.after_restart
    held_array = held.array
    last = held.seq
    assert sub.restart is None
    assert first_frame(plain) is not None

    kill(b)

    with pytest.raises(fb.BrokerLost):
        for _ in range(1000):
            plain.next(timeout=0.01)
    # While the broker is away: None, no exception (frames queued before the kill come first).
    away = time.monotonic()
    while time.monotonic() - away < 0.3:
        f = sub.next(timeout=0.05)
        if f is not None:
            assert not f.after_restart
            last = f.seq
    restart(b)

    f = first_frame(sub, within=20)
    while f is not None and not f.after_restart:  # frames queued before the kill come first
        last = f.seq
        f = first_frame(sub)
    assert f is not None and f.after_restart
    numpy.testing.assert_array_equal(f.array, counter_frame(f.camera_frame_id, 32, 16))
    r = sub.restart
    assert r["count"] == 1
    assert r["last_seq_before"] == last
    assert r["first_seq_after"] == f.seq
    assert r["outage_s"] >= 0.25
    assert r["reason"]
    g = first_frame(sub)
    assert g is not None and not g.after_restart and g.seq > f.seq
    # The old broker's frame stays readable; releasing it goes nowhere.
    numpy.testing.assert_array_equal(held_array, counter_frame(held.camera_frame_id, 32, 16))
    held.release()
    client.flush()
    assert client.take_async_errors() == []


def test_reconnect_timeout_raises_broker_lost(make_broker):
    b = make_broker(CAMERA)
    with pytest.raises(ValueError):
        fb.connect(socket=b.socket, reconnect=True, reconnect_timeout=0)
    sub = fb.connect(socket=b.socket, reconnect=True, reconnect_timeout=0.3).subscribe("cam")
    assert first_frame(sub) is not None
    kill(b)
    with pytest.raises(fb.BrokerLost, match="did not come back"):
        for _ in range(200):
            sub.next(timeout=0.05)
    restart(b)  # stopped cleanly at the end
