"""python3 -m framebroker.bench runs end to end and reports every field in --json (tiny runs:
no timing thresholds here)."""
import json
import os
import pathlib
import subprocess
import sys

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
BUILD = pathlib.Path(os.environ.get("FB_BUILD_DIR",
                                    pathlib.Path(__file__).resolve().parents[2] / "build"))


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=180, **kw)


def check_result(r, sides):
    assert [s["width"] for s in r["sizes"]] == sides
    for s in r["sizes"]:
        assert s["height"] == s["width"] and s["pixel_type"] == "Mono16"
        assert s["frame_bytes"] == s["width"] * s["height"] * 2 and s["slots"] >= 8
        for side in ("framebroker", "ring"):
            for case in ("notify", "read"):
                c = s[side][case]
                assert c["frames"] > 0 and c["fps"] > 0 and c["seconds"] > 0
                assert c["wall_us_per_frame"] > 0 and c["cpu_us_per_frame"] >= 0
        assert s["notify_ratio"] > 0 and s["read_ratio"] > 0
        assert s["overhead_us_per_frame"] > 0 and s["overhead_loop_us_per_frame"] > 0
        assert s["overhead_cpu_us_per_frame"] >= 0
    names = [g["goal"] for g in r["goals"]]
    assert any("notify-only" in n for n in names) == (512 in sides)
    assert all({"goal", "value", "target", "pass"} <= g.keys() for g in r["goals"])
    assert r["pass"] == all(g["pass"] for g in r["goals"])
    assert len(r["load_before"]) == 3 and len(r["load_after"]) == 3


def test_bench_json():
    p = run([PYTHON, "-m", "framebroker.bench", "--sizes", "64,512", "--seconds", "0.1",
             "--json", "--broker", str(BUILD / "daemon" / "framebrokerd")])
    assert p.returncode == 0, p.stderr
    check_result(json.loads(p.stdout), [64, 512])


def test_bench_table():
    p = run([PYTHON, "-m", "framebroker.bench", "--sizes", "64", "--seconds", "0.1"])
    assert p.returncode == 0, p.stderr
    assert "notify only" in p.stdout and "read every pixel" in p.stdout and "overhead" in p.stdout


def test_fbbench_python_wrapper():
    fbbench = BUILD / "tools" / "fbbench"
    # PYTHONPATH is fbbench's to set (the build tree's python dir beside it).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = run([str(fbbench), "python", "--sizes", "64", "--seconds", "0.1", "--json"], env=env)
    assert p.returncode == 0, p.stderr
    check_result(json.loads(p.stdout), [64])
    p = run([str(fbbench), "--json", "python", "--sizes", "64", "--seconds", "0.1"], env=env)
    assert p.returncode == 0, p.stderr
    check_result(json.loads(p.stdout), [64])
    p = run([str(fbbench), "python", "--help"], env=env)
    assert p.returncode == 0 and "framebroker.bench" in p.stdout
