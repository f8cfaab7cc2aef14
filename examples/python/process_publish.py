#!/usr/bin/python3
"""Publish the maximum projection of every K frames of a stream as a stream of its own.

Subscribes `every` to STREAM, copies each frame into a (K, y, x) numpy stack (the frame goes back
to the broker at once), and every K frames computes np.max straight into a loaned slot of the
output stream and commits it with the provenance of the group's first frame. Any framebroker
tool (fbctl, fbview, fbsave, another script) can subscribe to the output like to a camera.

Example (a broker running the simulated camera sim0):
  ./process_publish.py sim0 --k 8                 # publishes sim0.mip
  python3 -m framebroker watch sim0.mip
"""
import argparse
import sys

import numpy as np

import framebroker as fb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stream", help="the input stream, e.g. sim0")
    p.add_argument("--k", type=int, default=8, help="frames per projection (default: 8)")
    p.add_argument("--to", help="the output stream's name (default: STREAM.mip)")
    p.add_argument("--frames", type=int, help="stop after publishing N projections")
    p.add_argument("--socket", help="broker socket (default: $FRAMEBROKER_SOCKET or the "
                   "default instance's)")
    args = p.parse_args(argv)
    if args.k < 1:
        p.error("--k must be at least 1")

    client = fb.connect(socket=args.socket, name="process_publish.py")
    # The input's geometry, from the broker's status, so the output exists before any frame.
    info = next((s for s in client.status()["streams"] if s["name"] == args.stream), None)
    if info is None:
        raise fb.UnknownStream(f"no stream '{args.stream}'")
    dtype = {"Mono8": np.uint8, "Mono16": np.uint16, "Mono32F": np.float32}.get(
        info["format"]["pixel_type"], np.uint16)  # Mono10/12/14 come as uint16 too
    shape = (info["height"], info["width"])
    stack = np.empty((args.k,) + shape, dtype)
    published = 0
    with client.advertise(args.to or args.stream + ".mip", shape=shape, dtype=dtype) as pub, \
            client.subscribe(args.stream, mode="every") as sub:
        print(f"process_publish.py: publishing {pub.stream}", file=sys.stderr, flush=True)
        first = None
        n = 0
        try:
            for frame in sub:
                stack[n] = frame.array  # copy, then give the slot back...
                if n == 0:
                    first = frame  # ...except the group's first, kept for the provenance
                else:
                    frame.release()
                n += 1
                if n < args.k:
                    continue
                # The projection goes straight into the output's shared memory.
                with pub.loan(timeout=1.0) as buf:
                    np.max(stack, axis=0, out=buf)
                    buf.commit(source=first)  # camera frame id, timestamp, source_seq pass on
                first.release()
                n = 0
                published += 1
                if args.frames and published >= args.frames:
                    break
        except KeyboardInterrupt:
            pass
    print(f"process_publish.py: {published} projections of {args.k} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except fb.Error as e:
        sys.exit(f"process_publish.py: {e}")
