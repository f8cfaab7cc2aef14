#!/usr/bin/python3
"""Reads a sequence saved by fbsave with third-party readers (zarr, tifffile, numpy) and says,
for every plane (t, c, z), what it holds: the sim camera's counter frame of which camera frame
id (pixel k of frame f holds (f + k) mod 2^16), zeros, or something else.

usage: check_sequence_dataset.py zarr|tiff|raw PATH
prints one JSON object:
  axes      the reader's axis names ("tczyx" for Zarr's NGFF axes, tifffile's series axes)
  shape     the array's shape as the reader gives it, and tczyx: as (t, c, z, y, x)
  planes    [[t, c, z, counter id or -1 (not a counter frame) or null (all zeros)], ...]
  channels  channel names (Zarr: omero labels; TIFF: OME Channel Names)
  sequence  fbsave's "sequence" metadata entry
  lines     raw: the index.jsonl lines"""
import json
import sys

import numpy


def counter_id(plane):
    """The camera frame id whose counter frame `plane` is; None for zeros, -1 for neither."""
    flat = plane.reshape(-1).astype(numpy.uint64)
    if not flat.any():
        return None
    first = int(flat[0])
    want = (numpy.arange(flat.size, dtype=numpy.uint64) + first) % 65536
    return first if numpy.array_equal(flat, want) else -1


def planes_of(data):
    t, c, z = data.shape[:3]
    return [[i, j, k, counter_id(data[i, j, k])]
            for i in range(t) for j in range(c) for k in range(z)]


def read_zarr(path):
    import zarr
    group = zarr.open_group(path, mode="r")
    attrs = group.attrs.asdict()
    ms = attrs["multiscales"][0]
    axes = "".join(a["name"] for a in ms["axes"])
    data = group[ms["datasets"][0]["path"]][...]
    return {
        "axes": axes,
        "shape": list(data.shape),
        "tczyx": list(data.shape),
        "axis_types": [a.get("type") for a in ms["axes"]],
        "axis_units": [a.get("unit") for a in ms["axes"]],
        "scale": ms["datasets"][0]["coordinateTransformations"][0]["scale"],
        "channels": [c["label"] for c in attrs.get("omero", {}).get("channels", [])],
        "sequence": attrs["framebroker"].get("sequence"),
        "columns": attrs["framebroker"]["frames"],
        "planes": planes_of(data),
    }


def read_tiff(path):
    import tifffile
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        data = series.asarray()
        ome = tif.ome_metadata
    shape = list(data.shape)
    # As (t, c, z, y, x): tifffile leaves out axes of size 1 (squeezed).
    order = [axes.index(a) if a in axes else None for a in "TCZYX"]
    present = [i for i in order if i is not None]
    full = numpy.transpose(data, present)
    full = full.reshape([data.shape[i] if i is not None else 1 for i in order])
    import xml.etree.ElementTree as ET
    root = ET.fromstring(ome)
    ns = {"ome": root.tag.split("}")[0].strip("{")}
    channels = [c.get("Name") for c in root.iter("{%s}Channel" % ns["ome"])]
    pixels = next(root.iter("{%s}Pixels" % ns["ome"]))
    with open(path + ".frames.json") as f:
        summary = json.load(f)
    return {
        "axes": axes,
        "shape": shape,
        "tczyx": list(full.shape),
        "dimension_order": pixels.get("DimensionOrder"),
        "sizes": {a: int(pixels.get("Size" + a)) for a in "TCZ"},
        "channels": channels,
        "sequence": summary.get("sequence"),
        "summary": summary,
        "planes": planes_of(full),
    }


def read_raw(path):
    with open(path + "/meta.json") as f:
        meta = json.load(f)
    with open(path + "/index.jsonl") as f:
        lines = [json.loads(x) for x in f if x.strip()]
    data = numpy.fromfile(path + "/frames.raw", dtype=meta["dtype"])
    h, w = meta["height"], meta["width"]
    frames = data.reshape(-1, h, w)
    planes = []
    for line in lines:
        frame = frames[line["offset"] // meta["frame_bytes"]]
        idx = line.get("index", {})
        planes.append([idx.get("t", 0), idx.get("c", 0), idx.get("z", 0), counter_id(frame)])
    return {"sequence": meta.get("sequence"), "lines": lines, "planes": planes, "meta": meta}


def main():
    fmt, path = sys.argv[1], sys.argv[2]
    out = {"zarr": read_zarr, "tiff": read_tiff, "raw": read_raw}[fmt](path)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
