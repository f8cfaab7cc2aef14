#!/usr/bin/python3
"""Run a useq-schema-shaped acquisition (an MDASequence as JSON) on a camera; save it as OME-Zarr
(array "0": the axes t, p, c, z it has, then y, x; a lost plane left 0; attribute mda_sequence).
Example, on camera sim0 of the broker at $FRAMEBROKER_SOCKET (or of the default instance):
  ./run_sequence.py sim0 /data/mda.ome.zarr [--sequence mda.json]  # default: EXAMPLE below
"""
import argparse
import json

import zarr

import framebroker as fb

EXAMPLE = {"axis_order": "tpcz", "time_plan": {"interval": 0.1, "loops": 3},
           "channels": [{"config": "488"}, {"config": "561"}], "z_plan": {"range": 4, "step": 0.5}}


def start_keywords(mda):
    """Camera.start's keywords from an MDASequence dict (interval in s, z range and step in um)."""
    z, tp = mda.get("z_plan") or {}, mda.get("time_plan") or {}
    channels = [c["config"] for c in mda.get("channels") or []]
    sizes = {"t": tp.get("loops", 1), "p": len(mda.get("stage_positions") or []) or 1,
             "c": len(channels) or 1, "z": round(z["range"] / z["step"]) + 1 if z else 1}
    order = "".join(a for a in mda.get("axis_order", "tpcz") if sizes.get(a, 1) > 1) or "t"
    return dict(axes={a: sizes[a] for a in order}, channels=channels, metadata=mda,
                z_step_um=z.get("step", 0), interval_ms=1000 * tp.get("interval", 0))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("camera", help="the camera to run it on, e.g. sim0")
    p.add_argument("output", help="the OME-Zarr directory to create (replaced if it exists)")
    p.add_argument("--sequence", help="an MDASequence JSON file (default: EXAMPLE)")
    args = p.parse_args()
    mda = json.load(open(args.sequence)) if args.sequence else EXAMPLE
    client, root, data = fb.connect(), zarr.open_group(args.output, "w"), None
    with client.subscribe(args.camera, mode="every") as sub:
        client.camera(args.camera).start(**start_keywords(mda))
        for frame in sub.sequence_frames(timeout=10):  # until the sequence finishes
            with frame:
                if data is None:  # the sequence and the first frame tell the shape
                    seq, plane = sub.sequence, (frame.height, frame.width)
                    dims = [a for a in "tpcz" if a in seq.axes]
                    data = root.zeros("0", shape=tuple(seq.axes[a] for a in dims) + plane,
                                      chunks=(1,) * len(dims) + plane, dtype=frame.array.dtype)
                data[tuple(frame.index[a] for a in dims)] = frame.array
        if (end := sub.sequence_end) is None or data is None:
            raise SystemExit("run_sequence.py: the sequence did not finish")
    kind = {"t": "time", "c": "channel"}
    axes = [{"name": a, "type": kind.get(a, "space")} for a in dims + ["y", "x"]]
    scale = [{"t": seq.interval_ms / 1000, "z": seq.z_step_um or 1}.get(a, 1) for a in dims]
    image = {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale + [1, 1]}]}
    root.attrs.update(multiscales=[{"version": "0.4", "axes": axes, "datasets": [image]}],
                      omero={"channels": [{"label": c} for c in seq.channels]}, mda_sequence=mda)
    print(f"run_sequence.py: {data.shape}: {end.frames} frames, {end.missed} missed")


if __name__ == "__main__":
    main()
