#!/usr/bin/python3
"""Packs a dataset fbsave wrote into one input of the replay_readers fuzz target.

usage: fuzz/pack_dataset.py DATASET OUT_FILE
  e.g. fuzz/pack_dataset.py run1.ome.zarr fuzz/corpus/replay_readers/zarr_lz4

The layout (byte 0: the format, then the files in a fixed order, separated by "\\n--fbfile--\\n")
is described in fuzz/fuzz_replay_readers.cpp; files the dataset lacks are packed empty.
"""
import os
import sys

SEPARATOR = b"\n--fbfile--\n"
FORMATS = {
    0: [".zattrs", "0/.zarray", "0/0.0.0", "0/1.0.0", "0/2.0.0", "0/0.0.0.0"],
    1: ["", ".frames.json", ".frames.jsonl"],
    2: ["meta.json", "index.jsonl", "frames.raw"],
}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, out = sys.argv[1].rstrip("/"), sys.argv[2]
    if os.path.isdir(path):
        fmt = 0 if os.path.exists(os.path.join(path, ".zattrs")) else 2
        files = [os.path.join(path, f) for f in FORMATS[fmt]]
    else:
        fmt = 1
        files = [path + f for f in FORMATS[fmt]]
    parts = []
    for f in files:
        data = open(f, "rb").read() if os.path.exists(f) else b""
        if SEPARATOR in data:
            sys.exit(f"{f} holds the separator; it cannot be packed")
        parts.append(data)
    while parts and not parts[-1]:
        parts.pop()
    with open(out, "wb") as o:
        o.write(bytes([fmt]) + SEPARATOR.join(parts))


if __name__ == "__main__":
    main()
