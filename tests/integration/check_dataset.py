#!/usr/bin/python3
"""Reads an fbsave dataset with third-party readers (zarr, tifffile, numpy) and
checks every frame against the sim camera's counter pattern: pixel k of the
frame with camera frame id f holds (f + k) mod 2^(8 * bytes per sample).

usage: check_dataset.py zarr|tiff|raw PATH
prints one JSON object: frames, seqs, missed (expanded), bad_frames, meta."""
import json
import sys

import numpy


def expand(ranges):
    out = []
    for first, count in ranges:
        out.extend(range(first, first + count))
    return out


def read_zarr(path):
    import zarr
    group = zarr.open_group(path, mode="r")
    attrs = group.attrs.asdict()
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4", ms
    assert [a["name"] for a in ms["axes"]][0] == "t", ms["axes"]
    fb = attrs["framebroker"]
    arr = group["0"]
    frames = [arr[t] for t in range(arr.shape[0])]
    return frames, fb["frames"]["seq"], fb["frames"]["camera_frame_id"], fb["missed_seqs"], fb


def read_tiff(path):
    import tifffile
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff, "not BigTIFF"
        assert tif.is_ome, "not OME-TIFF"
        series = tif.series[0]
        data = series.asarray()
        if data.ndim == 2:
            data = data[numpy.newaxis]
    meta = json.load(open(path + ".frames.json"))
    lines = [json.loads(l) for l in open(path + ".frames.jsonl") if l.strip()]
    if meta["complete"]:
        assert data.shape[0] == meta["frames_written"] == len(lines), (data.shape, meta["frames_written"], len(lines))
    else:  # killed: the pages the OME header counted at the last checkpoint, each with its line
        assert meta["frames_written"] <= data.shape[0] <= len(lines), (data.shape, meta["frames_written"], len(lines))
        lines = lines[:data.shape[0]]
    return list(data), [l["seq"] for l in lines], [l["camera_frame_id"] for l in lines], \
        expand(meta["missed_seqs"]), meta


def read_raw(path):
    meta = json.load(open(path + "/meta.json"))
    lines = [json.loads(l) for l in open(path + "/index.jsonl") if l.strip()]
    data = numpy.fromfile(path + "/frames.raw", dtype=numpy.dtype(meta["dtype"]))
    h, w = meta["height"], meta["width"]
    frames = []
    lines = [l for l in lines if (l["offset"] + l["bytes"]) // data.itemsize <= data.size]  # whole frames only
    for line in lines:
        start = line["offset"] // data.itemsize
        frames.append(data[start:start + h * w].reshape(h, w))
    return frames, [l["seq"] for l in lines], [l["camera_frame_id"] for l in lines], \
        expand(meta["missed_seqs"]), meta


def main():
    fmt, path = sys.argv[1], sys.argv[2]
    frames, seqs, ids, missed, meta = {"zarr": read_zarr, "tiff": read_tiff, "raw": read_raw}[fmt](path)
    assert len(frames) == len(seqs) == len(ids), (len(frames), len(seqs), len(ids))
    bad = 0
    for frame, f in zip(frames, ids):
        frame = numpy.asarray(frame)
        k = numpy.arange(frame.size, dtype=numpy.uint64)
        want = ((k + f) % (1 << (8 * frame.dtype.itemsize))).astype(frame.dtype).reshape(frame.shape)
        bad += int(not numpy.array_equal(frame, want))
    print(json.dumps({"frames": len(frames), "seqs": seqs, "missed": missed, "bad_frames": bad,
                      "dtype": str(numpy.asarray(frames[0]).dtype) if frames else None,
                      "frames_written": meta.get("frames_written"),
                      "frames_missed": meta.get("frames_missed"),
                      "complete": meta.get("complete")}))


main()
