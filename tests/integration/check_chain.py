#!/usr/bin/python3
"""Reads the OME-Zarr dataset fbsave wrote of a processor chain's output (with python3-zarr)
and checks every frame against the sim camera's counter pattern put through the chain's ops,
computed here with numpy and nothing of framebroker's.

usage: check_chain.py PATH WIDTH HEIGHT OP [OP ...]
  WIDTH x HEIGHT: the camera's Mono16 frames; pixel k of the frame with camera frame id f holds
  (f + k) mod 2^16.
  OP: roi=x,y,w,h | bin=N | bin=N,sum | max-project=K | mean=K | copy, in chain order.
An output frame made of K camera frames carries the first one's camera frame id.
prints one JSON object: frames, bad_frames, seqs, source_stream, source_seqs, camera_frame_ids."""
import json
import sys

import numpy
import zarr


def camera_frame(f, width, height):
    return ((numpy.arange(width * height, dtype=numpy.uint64) + f) % 65536).reshape(height, width)


def apply(op, frames):
    """frames: the list of 2-D uint64 arrays one output frame is made of."""
    name, _, arg = op.partition("=")
    if name == "copy":
        return frames
    if name == "roi":
        x, y, w, h = map(int, arg.split(","))
        return [a[y:y + h, x:x + w] for a in frames]
    if name == "bin":
        n, _, how = arg.partition(",")
        n = int(n)
        out = []
        for a in frames:
            h, w = a.shape[0] // n, a.shape[1] // n
            s = a[:h * n, :w * n].reshape(h, n, w, n).sum(axis=(1, 3))
            out.append(numpy.minimum(s, 65535) if how == "sum" else s // (n * n))
        return out
    k = int(arg)
    groups = [frames[i:i + k] for i in range(0, len(frames), k)]
    if name == "max-project":
        return [numpy.max(numpy.stack(g), axis=0) for g in groups]
    if name == "mean":
        return [numpy.sum(numpy.stack(g), axis=0) // k for g in groups]
    raise SystemExit("unknown op " + op)


def frames_per_output(ops):
    k = 1
    for op in ops:
        name, _, arg = op.partition("=")
        if name in ("max-project", "mean"):
            k *= int(arg)
    return k


def main():
    path, width, height, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    group = zarr.open_group(path, mode="r")
    fb = group.attrs.asdict()["framebroker"]
    arr = group["0"]
    k = frames_per_output(ops)
    bad = 0
    for t in range(arr.shape[0]):
        f = fb["frames"]["camera_frame_id"][t]
        expect = [camera_frame(f + i, width, height) for i in range(k)]
        for op in ops:
            expect = apply(op, expect)
        got = numpy.asarray(arr[t]).reshape(expect[0].shape)
        if len(expect) != 1 or not numpy.array_equal(got.astype(numpy.uint64), expect[0]):
            bad += 1
    print(json.dumps({
        "frames": int(arr.shape[0]),
        "bad_frames": bad,
        "seqs": fb["frames"]["seq"],
        "source_stream": fb.get("source_stream"),
        "source_seqs": fb["frames"].get("source_seq"),
        "camera_frame_ids": fb["frames"]["camera_frame_id"],
        "missed": fb["missed_seqs"],
    }))


if __name__ == "__main__":
    main()
