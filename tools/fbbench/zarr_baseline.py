# fbbench save's python3-zarr baseline: writes N frames shaped like the sim's `spots` (about 5%
# background with 10 bits of noise, 20 gaussian beads), each a roll of one image, into a zarr array
# with chunks (K, H, W). The frames are made before the clock starts; the time covers zarr.open,
# the writes and os.sync(). Embedded in fbbench at build time.
#
# Usage: zarr_baseline.py SIDE N K PATH CNAME CLEVEL (CNAME "none": no compressor); prints one JSON
# object: seconds, bytes, disk_bytes, blosc_threads.
import json, os, sys, time
import numpy as np, numcodecs, zarr
from numcodecs import Blosc

side, n, k = (int(a) for a in sys.argv[1:4])
path, cname, clevel = sys.argv[4], sys.argv[5], int(sys.argv[6])

def spots_image(side, seed=1):
    rng = np.random.default_rng(seed)
    full, noise = 65535, 65535 >> 6
    img = (full // 20 - noise // 2 + rng.integers(0, noise + 1, size=(side, side))).astype(np.float32)
    s = 15
    yy, xx = np.mgrid[:s, :s] - s // 2
    sprite = 0.7 * full * np.exp(-(xx ** 2 + yy ** 2) / (2 * 2.2 ** 2))
    for _ in range(20):
        x, y = rng.integers(0, side - s, size=2)
        img[y:y + s, x:x + s] += sprite * rng.uniform(0.85, 1.0)
    return np.minimum(img, full).astype(np.uint16)

img = spots_image(side)
frame_bytes = side * side * 2
nblocks = max(1, min(4, (512 << 20) // (k * frame_bytes), -(-n // k)))
blocks = [np.stack([np.roll(img, 7 * (b * k + j), axis=1) for j in range(k)]) for b in range(nblocks)]
compressor = None if cname == "none" else Blosc(cname=cname, clevel=clevel, shuffle=Blosc.SHUFFLE)

t0 = time.perf_counter()
z = zarr.open(path, mode="w", shape=(n, side, side), chunks=(k, side, side), dtype="u2",
              compressor=compressor)
for i, start in enumerate(range(0, n, k)):
    stop = min(n, start + k)
    z[start:stop] = blocks[i % nblocks][:stop - start]
os.sync()
seconds = time.perf_counter() - t0

disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
print(json.dumps({"seconds": seconds, "bytes": n * frame_bytes, "disk_bytes": disk,
                  "blosc_threads": numcodecs.blosc.get_nthreads()}))
