"""python3 -m framebroker.bench: what a Python subscriber receives from framebrokerd, next to
the pattern labs use today (a numpy ring in multiprocessing.shared_memory, written by a second
process, with a ready flag per slot), measured in the same run by the same process.

Per frame size (Mono16) it starts a framebrokerd of its own with two idle simulated cameras,
free-running when used (FrameRate=0), and measures for --seconds each:

  notify only       take the frame, its array (a view), release it: no pixel read. The camera
                    (pattern `empty`) and the ring's writer touch no pixel either, so frames are
                    always ready and the loop's wall time per frame is the Python side's cost.
  read every pixel  the same plus frame.array.sum(); the camera (pattern `counter`) and the
                    ring's writer (numpy) write every pixel of every frame.

Reported: frames/s for each, framebroker / ring ratios, and the binding's overhead per frame:
sub.next() + frame.array + release timed while frames are queued (the C++ client's share
included, so an upper bound), beside the notify-only loop's wall and CPU time per frame. Goals
judged: notify-only >= 2x the ring at 512x512, reading every pixel >= 1x, overhead <= 20 us.

    python3 -m framebroker.bench                      # 512x512 and 2048x2048, 3 s per case
    python3 -m framebroker.bench --sizes 512 --seconds 1 --json
    fbbench python --json                             # the same, through fbbench

framebrokerd: --broker PATH, else $FB_BUILD_DIR/daemon/framebrokerd, else the build tree's beside
this package, else PATH.
"""
import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing import shared_memory

import numpy as np

GOAL_NOTIFY_RATIO = 2.0  # notify-only fps / ring fps, at 512x512
GOAL_READ_RATIO = 1.0  # read-every-pixel fps / ring fps, every size
GOAL_OVERHEAD_US = 20.0  # notify-only wall time per frame
WARMUP_S = 0.3


# ---------------------------------------------------------------------------- the broker


def find_broker(explicit=None):
    """framebrokerd: explicit, $FB_BUILD_DIR, the build tree holding this package, PATH."""
    candidates = []
    if explicit:
        return explicit
    if os.environ.get("FB_BUILD_DIR"):
        candidates.append(pathlib.Path(os.environ["FB_BUILD_DIR"]) / "daemon" / "framebrokerd")
    # <build>/python/framebroker/bench.py -> <build>/daemon/framebrokerd
    candidates.append(pathlib.Path(__file__).resolve().parents[2] / "daemon" / "framebrokerd")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("framebrokerd") or shutil.which("framebrokerd", path="/usr/sbin:/sbin")
    if found:
        return found
    raise SystemExit("framebroker.bench: framebrokerd not found (--broker PATH, FB_BUILD_DIR, "
                     "or PATH)")


class Broker:
    """A framebrokerd in a temporary runtime directory, stopped by stop()."""

    def __init__(self, binary, cameras):
        self.dir = tempfile.mkdtemp(prefix="fbbench-py-")
        instance = "bench" + uuid.uuid4().hex[:6]
        self.socket = os.path.join(self.dir, instance + ".sock")
        args = [binary, "--runtime-dir", self.dir, "--instance", instance, "--no-default-camera",
                "--log-level", "warn"]
        for c in cameras:
            args += ["--camera", c]
        self.log = open(os.path.join(self.dir, "broker.log"), "w+")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                out = self.log.read()
                self.stop()
                raise SystemExit("framebroker.bench: framebrokerd did not start:\n" + out)
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------- framebroker cases


def run_framebroker(client, camera, seconds, read):
    """Frames/s one `every` subscriber receives from `camera` (started here, stopped after)."""
    import framebroker as fb  # noqa: F401  (the package is imported by now)

    cam = client.camera(camera)
    with client.subscribe(camera, mode="every") as sub:
        cam.start()
        try:
            waits = gaps = 0
            last_seq = None
            deadline = time.perf_counter() + WARMUP_S
            n = 0
            start = cpu0 = None
            while True:
                frame = sub.next(0)
                if frame is None:  # not ready: wait (rare when the camera free-runs)
                    waits += 1
                    frame = sub.next(1.0)
                    if frame is None:
                        raise RuntimeError(f"no frame from {camera} within 1 s")
                a = frame.array
                if read:
                    a.sum()
                del a
                if last_seq is not None and frame.seq != last_seq + 1:
                    gaps += 1
                last_seq = frame.seq
                frame.release()
                n += 1
                if n & 63 == 0:
                    now = time.perf_counter()
                    if now >= deadline:
                        if start is None:  # warm-up over: measure from here
                            start, cpu0, n, waits, gaps = now, time.process_time(), 0, 0, 0
                            deadline = now + seconds
                        else:
                            break
            wall = now - start
            cpu = time.process_time() - cpu0
            drain = None if read else measure_drain(sub, max(0.1, seconds / 3))
        finally:
            cam.stop()
    out = {"frames": n, "seconds": wall, "fps": n / wall, "wall_us_per_frame": wall / n * 1e6,
           "cpu_us_per_frame": cpu / n * 1e6, "waits": waits, "seq_gaps": gaps}
    if drain:
        out.update(drain)
    return out


def measure_drain(sub, seconds):
    """The per-frame cost when frames are surely ready: let the subscription's queue fill
    (max_hold frames, the camera free-runs), then time taking them all back to back (next(0),
    array, release), the final next(0) that finds none included. Median over the bursts."""
    per_frame, frames = [], 0
    perf = time.perf_counter
    end = perf() + seconds
    while perf() < end:
        time.sleep(0.005)
        # next(0) only hands out frames the client already read from the socket; one waiting
        # next() reads what queued meanwhile (the releases go with it), then they are timed.
        first = sub.next(1.0)
        if first is None:
            continue
        first.release()
        t0 = perf()
        k = 0
        while True:
            frame = sub.next(0)
            if frame is None:
                break
            a = frame.array
            del a
            frame.release()
            k += 1
        t1 = perf()
        if k >= 8:
            per_frame.append((t1 - t0) / k * 1e6)
            frames += k
    if not per_frame:
        return None
    per_frame.sort()
    return {"drain_us_per_frame": per_frame[len(per_frame) // 2], "drain_bursts": len(per_frame),
            "drain_frames": frames}


# ---------------------------------------------------------------------------- the ring baseline

# The ring's segment: a header of per-slot ready flags (1: written, 0: free) plus control bytes,
# then `slots` frames. The writer fills slot i % slots when its flag is 0 and sets it; the reader
# waits for the flag, reads the frame and clears it. Both poll with time.sleep(0) (a yield).
HEADER = 4096
CTRL_STOP, CTRL_READY = 0, 1


def _ring_views(shm, slots, height, width):
    flags = np.ndarray((slots,), np.uint8, shm.buf, 0)
    ctrl = np.ndarray((8,), np.uint8, shm.buf, slots)
    frames = np.ndarray((slots, height, width), np.uint16, shm.buf, HEADER)
    return flags, ctrl, frames


def ring_writer(name, slots, height, width, write_pixels):
    """The second process: fills the ring as fast as the reader frees slots."""
    shm = shared_memory.SharedMemory(name=name)
    # Attaching registered the segment for removal at this process's exit; the reader owns it.
    from multiprocessing import resource_tracker
    resource_tracker.unregister(shm._name, "shared_memory")
    try:
        flags, ctrl, frames = _ring_views(shm, slots, height, width)
        # The sim camera's `counter` pattern: pixel k of frame i holds (i + k) mod 2^16.
        base = (np.arange(height * width, dtype=np.uint32) % 65536).astype(np.uint16)
        base = base.reshape(height, width)
        ctrl[CTRL_READY] = 1
        i = 0
        sleep = time.sleep
        while True:
            s = i % slots
            while flags[s]:
                if ctrl[CTRL_STOP]:
                    return
                sleep(0)
            if write_pixels:
                np.add(base, np.uint16(i & 0xFFFF), out=frames[s])
            flags[s] = 1
            i += 1
    finally:
        del flags, ctrl, frames
        shm.close()


def run_ring(seconds, slots, height, width, read):
    """Frames/s this process reads from a shared_memory ring another process writes."""
    size = HEADER + slots * height * width * 2
    shm = shared_memory.SharedMemory(create=True, size=size)
    flags, ctrl, frames = _ring_views(shm, slots, height, width)
    flags[:] = 0
    ctrl[:] = 0
    # A fresh interpreter (not a fork of one holding broker connections and threads), importing
    # this very module.
    env = dict(os.environ)
    package_root = str(pathlib.Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    code = (f"from framebroker.bench import ring_writer; "
            f"ring_writer({shm.name!r}, {slots}, {height}, {width}, {bool(read)})")
    writer = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        limit = time.monotonic() + 30
        while not ctrl[CTRL_READY]:
            if writer.poll() is not None or time.monotonic() > limit:
                raise RuntimeError("the ring's writer did not start")
            time.sleep(0.005)
        sleep = time.sleep
        perf = time.perf_counter
        deadline = perf() + WARMUP_S
        j = n = 0
        start = cpu0 = None
        while True:
            s = j % slots
            polls = 0
            while not flags[s]:
                sleep(0)
                polls += 1
                if polls & 0xFFFF == 0 and writer.poll() is not None:
                    raise RuntimeError("the ring's writer died")
            a = frames[s]  # the view a lab's reader takes
            if read:
                a.sum()
            del a
            flags[s] = 0
            j += 1
            n += 1
            if n & 63 == 0:
                now = perf()
                if now >= deadline:
                    if start is None:
                        start, cpu0, n = now, time.process_time(), 0
                        deadline = now + seconds
                    else:
                        break
        wall = now - start
        cpu = time.process_time() - cpu0
    finally:
        ctrl[CTRL_STOP] = 1
        try:
            writer.wait(10)
        except subprocess.TimeoutExpired:
            writer.kill()
            writer.wait()
        del flags, ctrl, frames
        shm.close()
        shm.unlink()
    return {"frames": n, "seconds": wall, "fps": n / wall, "wall_us_per_frame": wall / n * 1e6,
            "cpu_us_per_frame": cpu / n * 1e6}


# ---------------------------------------------------------------------------- the run


def slots_for(frame_bytes):
    """A ring of at most 256 MiB, 8 to 64 slots (the same for the broker and the ring)."""
    return max(8, min(64, (256 << 20) // frame_bytes))


def measure_size(broker_bin, side, seconds, log):
    import framebroker as fb

    w = h = side
    frame_bytes = w * h * 2
    slots = slots_for(frame_bytes)
    cams = [f"sim:name={name},Width={w},Height={h},PixelType=Mono16,Pattern={pattern},"
            f"FrameRate=0,slots={slots},start=false"
            for name, pattern in (("empty", "empty"), ("counter", "counter"))]
    row = {"width": w, "height": h, "pixel_type": "Mono16", "frame_bytes": frame_bytes,
           "slots": slots}
    broker = Broker(broker_bin, cams)
    try:
        client = fb.connect(socket=broker.socket, name="framebroker.bench")
        log(f"{w}x{h}: framebroker notify only")
        fb_notify = run_framebroker(client, "empty", seconds, read=False)
        log(f"{w}x{h}: framebroker read every pixel")
        fb_read = run_framebroker(client, "counter", seconds, read=True)
        del client
    finally:
        broker.stop()
    log(f"{w}x{h}: ring notify only")
    ring_notify = run_ring(seconds, slots, h, w, read=False)
    log(f"{w}x{h}: ring read every pixel")
    ring_read = run_ring(seconds, slots, h, w, read=True)
    row.update({
        "framebroker": {"notify": fb_notify, "read": fb_read},
        "ring": {"notify": ring_notify, "read": ring_read},
        "notify_ratio": fb_notify["fps"] / ring_notify["fps"],
        "read_ratio": fb_read["fps"] / ring_read["fps"],
        # The binding's cost per frame, the C++ client under it included: taking queued frames
        # back to back (the drain); beside it the notify-only loop's wall and CPU time per frame
        # (its wall time also holds waits for the broker and time preempted on a busy machine).
        "overhead_us_per_frame": fb_notify.get("drain_us_per_frame",
                                               fb_notify["wall_us_per_frame"]),
        "overhead_loop_us_per_frame": fb_notify["wall_us_per_frame"],
        "overhead_cpu_us_per_frame": fb_notify["cpu_us_per_frame"],
    })
    return row


def judge(rows):
    goals = []
    for r in rows:
        size = f"{r['width']}x{r['height']}"
        if (r["width"], r["height"]) == (512, 512):
            goals.append({"goal": f"notify-only >= {GOAL_NOTIFY_RATIO:g}x ring fps at {size}",
                          "value": r["notify_ratio"], "target": GOAL_NOTIFY_RATIO,
                          "pass": r["notify_ratio"] >= GOAL_NOTIFY_RATIO})
        goals.append({"goal": f"read every pixel >= {GOAL_READ_RATIO:g}x ring fps at {size}",
                      "value": r["read_ratio"], "target": GOAL_READ_RATIO,
                      "pass": r["read_ratio"] >= GOAL_READ_RATIO})
        goals.append({"goal": f"overhead <= {GOAL_OVERHEAD_US:g} us per frame at {size}",
                      "value": r["overhead_us_per_frame"], "target": GOAL_OVERHEAD_US,
                      "pass": r["overhead_us_per_frame"] <= GOAL_OVERHEAD_US})
    return goals


def print_table(result):
    print("framebroker Python subscriber vs a multiprocessing.shared_memory ring "
          f"({result['seconds']:g} s per case, {result['cpus']} CPUs, load "
          f"{result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f})")
    print(f"{'size':<11}{'case':<19}{'framebroker fps':>16}{'ring fps':>12}{'ratio':>8}"
          f"{'fb us/frame':>13}{'ring us/frame':>15}")
    for r in result["sizes"]:
        size = f"{r['width']}x{r['height']}"
        for key, label in (("notify", "notify only"), ("read", "read every pixel")):
            f, g = r["framebroker"][key], r["ring"][key]
            print(f"{size:<11}{label:<19}{f['fps']:>16,.0f}{g['fps']:>12,.0f}"
                  f"{f['fps'] / g['fps']:>7.2f}x{f['wall_us_per_frame']:>13.2f}"
                  f"{g['wall_us_per_frame']:>15.2f}")
    for r in result["sizes"]:
        n = r["framebroker"]["notify"]
        print(f"overhead {r['width']}x{r['height']}: {r['overhead_us_per_frame']:.2f} us per "
              f"frame taking queued frames (sub.next + array + release, C++ client included); "
              f"notify loop {r['overhead_loop_us_per_frame']:.2f} us wall, "
              f"{r['overhead_cpu_us_per_frame']:.2f} us CPU per frame ({n['waits']} waits "
              f"in {n['frames']} frames)")
    for g in result["goals"]:
        print(f"goal: {g['goal']}: {g['value']:.2f} {'PASS' if g['pass'] else 'FAIL'}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m framebroker.bench",
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n  python3 -m framebroker.bench\n"
               "  python3 -m framebroker.bench --sizes 512 --seconds 1 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,2048",
                        help="square Mono16 frame sides, comma separated (default: 512,2048)")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="seconds measured per case, 4 cases per size (default: 3)")
    parser.add_argument("--broker", help="framebrokerd binary (default: $FB_BUILD_DIR/daemon/"
                        "framebrokerd, the build tree's, or PATH)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: integers, comma separated")
    if not sizes or any(s < 16 or s > 8192 for s in sizes):
        parser.error("--sizes: sides from 16 to 8192")
    if not 0.05 <= args.seconds <= 3600:
        parser.error("--seconds: from 0.05 to 3600")
    broker_bin = find_broker(args.broker)

    def log(msg):
        print(f"framebroker.bench: {msg}", file=sys.stderr, flush=True)

    result = {"seconds": args.seconds, "cpus": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "broker": broker_bin, "load_before": list(os.getloadavg())}
    try:
        result["sizes"] = [measure_size(broker_bin, s, args.seconds, log) for s in sizes]
    except KeyboardInterrupt:
        return 130
    result["load_after"] = list(os.getloadavg())
    result["goals"] = judge(result["sizes"])
    result["pass"] = all(g["pass"] for g in result["goals"])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
