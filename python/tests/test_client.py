"""The Python client against a real framebrokerd: frames, zero copy, lifetimes, errors,
publishing, signals and asyncio."""
import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy
import pytest

import framebroker as fb
from conftest import BUILD, counter_camera, counter_frame

PYTHON = "/usr/bin/python3"


def held(client, stream="cam"):
    """Frames the broker counts as held or queued by subscribers of `stream`."""
    return sum(s["held"] + s["queued"] for s in client.status()["subscribers"]
               if s["stream"] == stream)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def run_python(code, socket, **kw):
    env = dict(os.environ, PYTHONPATH=str(BUILD / "python"), FB_SOCKET=socket)
    return subprocess.Popen([PYTHON, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_every_frame_and_every_pixel_at_500_fps(broker):
    client = fb.connect(socket=broker.socket)
    with client.subscribe("cam", mode="every") as sub:
        client.camera("cam").start(frames=1000)
        seqs = []
        for frame in sub:
            a = frame.array
            assert a.shape == (48, 64) and a.dtype == numpy.uint16
            assert numpy.array_equal(a, counter_frame(frame.camera_frame_id, 64, 48)), frame.seq
            seqs.append(frame.seq)
            frame.release()
            if len(seqs) == 1000:
                break
    assert seqs == list(range(seqs[0], seqs[0] + 1000))
    cam = client.status()["streams"][0]
    assert cam["dropped"] == 0


def test_a_spinning_subscriber_gets_every_frame_and_a_bad_spin_is_refused(broker):
    client = fb.connect(socket=broker.socket)
    with pytest.raises(ValueError, match="seconds"):
        client.subscribe("cam", spin=5)
    with client.subscribe("cam", mode="every", spin=0.0005) as sub:
        client.camera("cam").start(frames=300)
        seqs = []
        for frame in sub:
            assert numpy.array_equal(frame.array, counter_frame(frame.camera_frame_id, 64, 48))
            seqs.append(frame.seq)
            frame.release()
            if len(seqs) == 300:
                break
    assert seqs == list(range(seqs[0], seqs[0] + 300))


def test_arrays_are_the_slot_read_only_and_outlive_subscription_and_broker(make_broker):
    broker = make_broker(counter_camera(start=True))
    client = fb.connect(socket=broker.socket)
    sub = client.subscribe("cam")
    frame = sub.next(timeout=5.0)
    a = frame.array
    assert a.flags.writeable is False
    with pytest.raises(ValueError):
        a[0, 0] = 1
    ring = sub.ring()
    assert numpy.shares_memory(a, ring)
    assert ring.flags.writeable is False
    expect = counter_frame(frame.camera_frame_id, 64, 48)
    del sub
    gc.collect()
    assert numpy.array_equal(a, expect)  # after the subscription is gone
    broker.proc.kill()
    broker.proc.wait()
    assert numpy.array_equal(a, expect)  # after the broker is gone
    assert numpy.array_equal(frame.array, expect)
    assert frame.meta["camera_frame_id"] == frame.camera_frame_id


def test_del_frame_releases_its_slot_and_views_defer_release(make_broker):
    broker = make_broker(counter_camera())
    client = fb.connect(socket=broker.socket)
    cam = client.camera("cam")
    with client.subscribe("cam") as sub:
        cam.start(frames=3)
        frames = [sub.next(timeout=5.0) for _ in range(3)]
        assert all(frames)
        assert wait_for(lambda: held(client) == 3)
        del frames[0]                        # no view: the slot goes back
        assert wait_for(lambda: held(client) == 2)
        view = frames[0].array[1:3]
        frames[0].release()                  # a view remains: the slot stays held
        assert frames[0].released
        with pytest.raises(ValueError):
            frames[0].array
        assert frames[0].seq >= 0            # identity stays readable
        time.sleep(0.2)
        assert held(client) == 2
        del view                             # the last view goes: now it is released
        assert wait_for(lambda: held(client) == 1)
        with frames[1]:
            pass                             # `with frame:` releases at the end
        assert wait_for(lambda: held(client) == 0)


def test_an_exception_in_the_loop_releases_the_frame(broker):
    client = fb.connect(socket=broker.socket)
    sub = client.subscribe("cam")
    client.camera("cam").start(frames=1)

    def consume():
        for frame in sub:
            frame.array.sum()
            raise RuntimeError("processing failed")

    try:
        consume()
    except RuntimeError:
        pass  # the traceback (and the loop's frame) go with the except block
    else:
        pytest.fail("consume() did not raise")
    assert wait_for(lambda: held(client) == 0)


def test_kill_9_of_a_python_subscriber_holding_frames_releases_them(make_broker):
    broker = make_broker(counter_camera(start=True))
    holder = run_python("""
        import os, sys, framebroker as fb
        sub = fb.connect(socket=os.environ["FB_SOCKET"]).subscribe("cam")
        frames = [sub.next(timeout=5.0) for _ in range(5)]
        print("holding", len(frames), flush=True)
        sys.stdin.read()
    """, broker.socket, stdin=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "holding 5"
    client = fb.connect(socket=broker.socket)
    assert held(client) >= 5
    holder.kill()
    holder.wait()
    assert wait_for(lambda: not client.status()["subscribers"])
    stream = client.status()["streams"][0]
    assert stream["free"] + stream["writing"] + stream["ready"] == stream["slots"]
    assert stream["free"] >= stream["slots"] - 2


def test_rss_stays_flat_over_100000_frames(make_broker):
    broker = make_broker(counter_camera(width=32, height=32, fps=20000, slots=256, start=True))
    client = fb.connect(socket=broker.socket)

    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    with client.subscribe("cam") as sub:
        n = 0
        for frame in sub:
            frame.array  # make (and drop) the array of every frame
            n += 1
            if n == 10000:
                start = rss_kb()
            if n == 100000:
                break
        end = rss_kb()
    assert end - start < 4096, f"RSS grew {end - start} kB over 90,000 frames"
    del frame
    # Frames in flight when the subscription closed go back as they arrive.
    assert wait_for(lambda: held(client) == 0)


def test_bad_input_gets_clear_exceptions_and_others_lose_nothing(make_broker):
    broker = make_broker(counter_camera(start=True))
    client = fb.connect(socket=broker.socket)
    other = fb.connect(socket=broker.socket).subscribe("cam")
    with pytest.raises(fb.UnknownStream, match="no stream named 'nope'"):
        client.subscribe("nope")
    with pytest.raises(ValueError, match="mode must be 'every' or 'latest'"):
        client.subscribe("cam", mode="sometimes")
    with pytest.raises(ValueError, match="no pixel type holds int64"):
        client.advertise("bad", shape=(8, 8), dtype="int64")
    with pytest.raises(ValueError, match="does not hold"):
        client.advertise("bad", shape=(8, 8), dtype="uint8", pixel_type="Mono16")
    with pytest.raises(fb.Refused, match="camera"):
        client.advertise("cam", shape=(8, 8), dtype="uint16")
    with client.advertise("mine", shape=(8, 8), dtype="uint16", slots=4) as pub:
        with pub.loan(timeout=2.0) as buf:
            with pytest.raises(ValueError):
                buf[:] = numpy.zeros((9, 8), numpy.uint16)  # past its shape
            with pytest.raises(IndexError):
                buf.reshape(-1)[64] = 1                    # past its size
            buf.abort()
    with pytest.raises(fb.BrokerNotRunning, match="nothing.sock"):
        fb.connect(socket=str(broker.dir / "nothing.sock"))
    assert isinstance(fb.UnknownStream("x"), fb.Error)
    # The other client still gets consecutive frames; the broker is alive.
    seqs = [other.next(timeout=5.0).seq for _ in range(20)]
    assert seqs == list(range(seqs[0], seqs[0] + 20))
    assert broker.proc.poll() is None


def test_publish_with_provenance_and_end_of_stream(make_broker):
    broker = make_broker(counter_camera(start=True))
    client = fb.connect(socket=broker.socket)
    source = client.subscribe("cam")
    pub = client.advertise("cam.x2", shape=(48, 64), dtype="uint16", slots=16)
    out = client.subscribe("cam.x2")
    status = {s["name"]: s for s in client.status()["streams"]}
    assert status["cam.x2"]["producer"]["kind"] == "client"
    inputs, got = [], []
    for _ in range(5):
        frame = source.next(timeout=5.0)
        with pub.loan(timeout=2.0) as buf:
            numpy.multiply(frame.array, 2, out=buf)
            buf.commit(source=frame)
        inputs.append((frame.seq, frame.camera_frame_id, frame.array * 2))
        got.append(out.next(timeout=5.0))  # a blocking publisher waits for this subscriber
    pub.close()
    assert list(out) == []  # nothing more: the iteration ends at the end of the stream
    assert len(got) == 5
    for g, (seq, cfid, pixels) in zip(got, inputs):
        assert g.meta["source_stream"] == "cam" and g.meta["source_seq"] == seq
        assert g.camera_frame_id == cfid
        assert numpy.array_equal(g.array, pixels)
    assert out.ended


def test_ctrl_c_interrupts_a_blocking_next(make_broker):
    broker = make_broker(counter_camera())  # stopped: no frame ever comes
    # Python keeps SIGINT ignored when it starts ignored (a shell's background job): give the
    # child the handler a terminal's Ctrl-C meets.
    waiter = run_python("""
        import os, signal, framebroker as fb
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sub = fb.connect(socket=os.environ["FB_SOCKET"]).subscribe("cam")
        print("waiting", flush=True)
        try:
            sub.next()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """, broker.socket)
    assert waiter.stdout.readline().strip() == "waiting"
    time.sleep(0.3)
    waiter.send_signal(signal.SIGINT)
    out, err = waiter.communicate(timeout=10)
    assert "interrupted" in out, err


def test_async_for_and_fileno(make_broker):
    broker = make_broker(counter_camera(start=True))
    client = fb.connect(socket=broker.socket)
    sub = client.subscribe("cam")
    assert isinstance(sub.fileno(), int) and sub.fileno() >= 0

    async def take(n):
        seqs = []
        async for frame in sub:
            seqs.append(frame.seq)
            frame.release()
            if len(seqs) == n:
                return seqs

    seqs = asyncio.run(asyncio.wait_for(take(50), 20))
    assert seqs == list(range(seqs[0], seqs[0] + 50))


def test_camera_control_and_status(broker):
    client = fb.connect(socket=broker.socket, name="pytest")
    cam = client.camera("cam")
    cam.set("FrameRate", 250.0)
    assert float(cam.get("FrameRate")) == 250.0
    props = cam.props()
    assert props["Width"]["value"] == "64"
    status = client.status()
    assert {"broker", "streams", "subscribers", "cameras"} <= status.keys()
    assert status["streams"][0]["name"] == "cam"
    with pytest.raises(fb.Refused):
        cam.set("Width", "-5")


def test_module_command_line(broker):
    env = dict(os.environ, PYTHONPATH=str(BUILD / "python"))
    r = subprocess.run([PYTHON, "-m", "framebroker", "--socket", broker.socket, "status"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert '"streams"' in r.stdout
    client = fb.connect(socket=broker.socket)
    client.camera("cam").start()
    r = subprocess.run([PYTHON, "-m", "framebroker", "--socket", broker.socket, "watch", "cam",
                        "--frames", "3"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("seq ") == 3
    r = subprocess.run([PYTHON, "-m", "framebroker", "--socket", "/nonexistent.sock", "status"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 3 and "not running" in r.stderr


def test_help_reads_like_the_header():
    assert "numpy array that *is* the" in fb.__doc__
    assert "release" in fb.Frame.__doc__
    assert fb.Subscription.ring.__doc__
