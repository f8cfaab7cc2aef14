"""python3 -m framebroker status | watch STREAM: a quick look from Python."""
import argparse
import json
import sys
import time

import framebroker as fb


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m framebroker",
        description="A quick look at framebrokerd from Python.",
        epilog="examples:\n  python3 -m framebroker status\n"
               "  python3 -m framebroker watch sim0 --frames 100",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", help="broker socket (default: $FRAMEBROKER_SOCKET or the "
                        "instance's)")
    parser.add_argument("--instance", default="default")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="the broker's status as JSON (as fbctl status --json)")
    watch = commands.add_parser("watch", help="print a line per frame of STREAM")
    watch.add_argument("stream")
    watch.add_argument("--mode", choices=["every", "latest"], default="latest")
    watch.add_argument("--frames", type=int, help="stop after N frames")
    args = parser.parse_args(argv)

    try:
        client = fb.connect(socket=args.socket, instance=args.instance, name="python -m framebroker")
        if args.command == "status":
            print(json.dumps(client.status(), indent=2))
            return 0
        with client.subscribe(args.stream, mode=args.mode) as sub:
            t0 = time.monotonic()
            for n, frame in enumerate(sub, 1):
                # No view of the array may outlive the frame: in latest mode (window 1) the
                # next frame comes only once this one's slot is back.
                with frame:
                    lo, hi, mean = frame.array.min(), frame.array.max(), frame.array.mean()
                print(f"seq {frame.seq}  id {frame.camera_frame_id}  {frame.width}x"
                      f"{frame.height} {frame.pixel_type}  min {lo}  max {hi}  mean {mean:.1f}  "
                      f"{n / max(time.monotonic() - t0, 1e-9):.1f} fps", flush=True)
                if args.frames and n >= args.frames:
                    break
        return 0
    except fb.BrokerNotRunning as e:
        print(f"python3 -m framebroker: {e}", file=sys.stderr)
        return 3
    except fb.Error as e:
        print(f"python3 -m framebroker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
