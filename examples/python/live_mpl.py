#!/usr/bin/python3
"""A live matplotlib view of a framebroker stream: always the newest frame (mode="latest").

The subscription never slows the camera or other subscribers: a slow redraw just skips frames.
matplotlib is imported only when the window opens, so this file imports (and --help works)
without a display or matplotlib installed.

Example (a broker running the simulated camera sim0):
  ./live_mpl.py sim0
  ./live_mpl.py sim0 --vmin 0 --vmax 4095 --cmap magma
"""
import argparse
import sys
import time

import framebroker as fb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stream", help="the stream to show, e.g. sim0")
    p.add_argument("--vmin", type=float, help="black level (default: each frame's minimum)")
    p.add_argument("--vmax", type=float, help="white level (default: each frame's maximum)")
    p.add_argument("--cmap", default="gray", help="matplotlib colormap (default: gray)")
    p.add_argument("--socket", help="broker socket (default: $FRAMEBROKER_SOCKET or the "
                   "default instance's)")
    args = p.parse_args(argv)

    import matplotlib.pyplot as plt  # here, not at the top: needs a display

    client = fb.connect(socket=args.socket, name="live_mpl.py")
    with client.subscribe(args.stream, mode="latest") as sub:
        frame = sub.next(timeout=5.0)
        if frame is None:
            sys.exit(f"live_mpl.py: no frame from {args.stream} in 5 s (is the camera started?)")
        fig, ax = plt.subplots()
        # imshow copies the pixels, so the frame can go back at once.
        image = ax.imshow(frame.array, cmap=args.cmap, vmin=args.vmin, vmax=args.vmax)
        fig.colorbar(image, ax=ax)
        frame.release()
        shown, t0 = 0, time.monotonic()
        while plt.fignum_exists(fig.number):
            frame = sub.next(timeout=0.1)
            if frame is not None:
                with frame:
                    a = frame.array
                    image.set_data(a)
                    if args.vmin is None or args.vmax is None:
                        image.set_clim(args.vmin if args.vmin is not None else a.min(),
                                       args.vmax if args.vmax is not None else a.max())
                    del a
                    shown += 1
                    ax.set_title(f"{args.stream}  seq {frame.seq}  "
                                 f"{shown / max(time.monotonic() - t0, 1e-9):.1f} fps shown")
            plt.pause(0.001)  # draws and runs the window's events
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
    except fb.Error as e:
        sys.exit(f"live_mpl.py: {e}")
