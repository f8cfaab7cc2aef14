"""Fixtures for the Python client's tests: a real framebrokerd per test, in a temporary runtime
directory, with a counter camera. Binaries come from FB_BUILD_DIR (default: ../../build)."""
import os
import pathlib
import subprocess
import time
import uuid

import numpy
import pytest

BUILD = pathlib.Path(os.environ.get("FB_BUILD_DIR",
                                    pathlib.Path(__file__).resolve().parents[2] / "build"))
BROKER = BUILD / "daemon" / "framebrokerd"


class Broker:
    """A running framebrokerd; `socket` is its socket path."""

    def __init__(self, runtime_dir, camera):
        self.dir = runtime_dir
        self.instance = "py" + uuid.uuid4().hex[:8]
        self.socket = str(runtime_dir / (self.instance + ".sock"))
        args = [str(BROKER), "--runtime-dir", str(runtime_dir), "--instance", self.instance]
        if camera:
            args += ["--no-default-camera", "--camera", camera]
        self.log = open(runtime_dir / "broker.log", "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("framebrokerd did not start: " + self.output())
            time.sleep(0.02)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(20) == 0, "framebrokerd did not stop cleanly:\n" + self.output()
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        self.log.close()


def counter_camera(width=64, height=48, fps=500, slots=64, start=False):
    return (f"sim:name=cam,Width={width},Height={height},Pattern=counter,FrameRate={fps},"
            f"slots={slots},start={'true' if start else 'false'}")


def counter_frame(camera_frame_id, width, height):
    """The sim camera's counter pattern: pixel k holds (id + k) mod 2^16."""
    return ((numpy.arange(width * height, dtype=numpy.uint64) + camera_frame_id)
            % 65536).astype(numpy.uint16).reshape(height, width)


@pytest.fixture
def make_broker(tmp_path):
    """make_broker(camera_spec) -> Broker; every broker made is stopped (cleanly) at the end."""
    made = []

    def make(camera=counter_camera()):
        b = Broker(tmp_path, camera)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


@pytest.fixture
def broker(make_broker):
    return make_broker()
