#!/usr/bin/env bash
# Runs the product for about fifteen seconds: a broker with its default simulated camera, a
# processor that publishes a binned stream, a subscriber that prints fps, delivered and dropped,
# a Python subscriber of the binned stream, an acquisition sequence (t=3, c=2, z=10) saved as
# OME-Zarr t,c,z,y,x, then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target framebrokerd fbctl fbproc fbsave _framebroker

bin=build-release
runtime=$(mktemp -d /tmp/framebroker-demo.XXXXXX)
sock="$runtime/demo.sock"
broker_pid=
proc_pid=
cleanup() {
  if [ -n "$proc_pid" ] && kill -0 "$proc_pid" 2>/dev/null; then kill -TERM "$proc_pid" || true; fi
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid"
    wait "$broker_pid" || true
  fi
  rm -rf "$runtime"
}
trap cleanup EXIT

echo "== starting framebrokerd (runtime dir $runtime)"
"$bin/daemon/framebrokerd" --runtime-dir "$runtime" --instance demo --log-level warn &
broker_pid=$!
for _ in $(seq 100); do
  "$bin/tools/fbctl" status --socket "$sock" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== fbproc: sim0 binned 2x2, published as sim0.bin2"
"$bin/tools/fbproc/fbproc" --socket "$sock" --from sim0 --to sim0.bin2 --op bin=2 --quiet &
proc_pid=$!
for _ in $(seq 100); do
  "$bin/tools/fbctl" status --socket "$sock" --json 2>/dev/null | grep -q '"sim0.bin2"' && break
  sleep 0.1
done

echo "== fbctl status"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== Python: five frames of sim0.bin2 as numpy arrays (no copy)"
PYTHONPATH="$bin/python" /usr/bin/python3 -m framebroker --socket "$sock" watch sim0.bin2 \
  --mode every --frames 5
echo
echo "== fbctl watch sim0 for 10 s"
"$bin/tools/fbctl" watch sim0 --socket "$sock" --duration 10
echo
echo "== fbctl status (published and dropped per stream)"
"$bin/tools/fbctl" status --socket "$sock"
echo
echo "== an acquisition sequence on sim0: t=3, c=2, z=10, saved by fbsave as OME-Zarr"
"$bin/tools/fbctl" stop sim0 --socket "$sock"
"$bin/tools/fbsave" sim0 --socket "$sock" -o "$runtime/stack.ome.zarr" --frames 60 &
save_pid=$!
for _ in $(seq 100); do
  "$bin/tools/fbctl" status --socket "$sock" --json 2>/dev/null | grep -q '"role": *"saver"' && break
  sleep 0.1
done
"$bin/tools/fbctl" start sim0 --socket "$sock" --frames 60 --axes t=3,c=2,z=10 --order tcz \
  --channels 488,561 --z-step 0.5
wait "$save_pid"
"$bin/tools/fbctl" status --socket "$sock" | grep "sequence" || true
/usr/bin/python3 - "$runtime/stack.ome.zarr" <<'PY'
import sys, zarr
group = zarr.open_group(sys.argv[1], mode="r")
ms = group.attrs["multiscales"][0]
data = group[ms["datasets"][0]["path"]]
print("python3-zarr reads axes", [a["name"] for a in ms["axes"]], "shape", data.shape,
      "channels", [c["label"] for c in group.attrs["omero"]["channels"]])
PY
echo

echo "== stopping fbproc (its stream ends) and the broker"
kill -TERM "$proc_pid"
wait "$proc_pid"
proc_pid=
kill -TERM "$broker_pid"
wait "$broker_pid"
echo "framebrokerd exited with status $?"
broker_pid=
