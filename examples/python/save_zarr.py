#!/usr/bin/python3
"""Save every frame of a framebroker stream into a Zarr array (python3-zarr, v2 API).

Frames are copied into a buffer of one chunk (--chunk frames) and appended to the array chunk by
chunk, so memory holds one chunk, never the acquisition. The output is a Zarr group:
  frames           (t, y, x[, c]) the pixels, chunks of (--chunk, y, x[, c])
  camera_frame_id  (t,) uint64   the camera's frame number of each frame
  seq              (t,) uint64   the broker's sequence number (a gap: frames this script missed)

Example (a broker running the simulated camera sim0):
  ./save_zarr.py sim0 /data/run1.zarr --frames 1000
  python3 -c "import zarr; z = zarr.open('/data/run1.zarr'); print(z['frames'])"
"""
import argparse
import sys

import numpy as np
import zarr

import framebroker as fb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stream", help="the stream to save, e.g. sim0")
    p.add_argument("output", help="the Zarr directory to create (replaced if it exists)")
    p.add_argument("--frames", type=int, help="stop after N frames (default: until Ctrl-C or the "
                   "stream ends)")
    p.add_argument("--chunk", type=int, default=16, help="frames per chunk (default: 16)")
    p.add_argument("--socket", help="broker socket (default: $FRAMEBROKER_SOCKET or the "
                   "default instance's)")
    args = p.parse_args(argv)

    client = fb.connect(socket=args.socket, name="save_zarr.py")
    root = zarr.open_group(args.output, mode="w")
    saved = missed = 0
    with client.subscribe(args.stream, mode="every") as sub:
        frames = chunk = ids = seqs = None
        n = 0  # frames in the chunk buffer
        last_seq = None
        try:
            for frame in sub:
                with frame:  # the slot goes back to the broker at the end of the block
                    a = frame.array
                    if frames is None:  # the first frame tells the shape and dtype
                        frames = root.zeros("frames", shape=(0,) + a.shape, dtype=a.dtype,
                                            chunks=(args.chunk,) + a.shape)
                        ids = root.zeros("camera_frame_id", shape=(0,), dtype="u8",
                                         chunks=(65536,))
                        seqs = root.zeros("seq", shape=(0,), dtype="u8", chunks=(65536,))
                        chunk = np.empty((args.chunk,) + a.shape, a.dtype)
                        chunk_ids = np.empty(args.chunk, np.uint64)
                        chunk_seqs = np.empty(args.chunk, np.uint64)
                    chunk[n] = a  # the one copy, out of shared memory
                    chunk_ids[n], chunk_seqs[n] = frame.camera_frame_id, frame.seq
                    del a
                    if last_seq is not None and frame.seq != last_seq + 1:
                        missed += frame.seq - last_seq - 1
                    last_seq = frame.seq
                n += 1
                saved += 1
                if n == args.chunk:  # a full chunk: append it (one chunk written)
                    frames.append(chunk)
                    ids.append(chunk_ids)
                    seqs.append(chunk_seqs)
                    n = 0
                if args.frames and saved >= args.frames:
                    break
        except KeyboardInterrupt:
            pass
        if n:  # the last, partial chunk
            frames.append(chunk[:n])
            ids.append(chunk_ids[:n])
            seqs.append(chunk_seqs[:n])
    print(f"save_zarr.py: {saved} frames of {args.stream} in {args.output}"
          + (f", {missed} missed (seq gaps)" if missed else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except fb.Error as e:
        sys.exit(f"save_zarr.py: {e}")
