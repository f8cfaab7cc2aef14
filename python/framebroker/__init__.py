"""framebroker: every frame of framebrokerd's cameras as a numpy array that *is* the
shared-memory slot (no copy, read-only), plus camera control and publishing.

    import framebroker as fb
    client = fb.connect()                          # $FRAMEBROKER_SOCKET or the instance's socket
    with client.subscribe("sim0", mode="every") as sub:
        for frame in sub:                          # every frame, in seq order
            a = frame.array                        # numpy (h, w) or (h, w, c), read-only
            frame.seq, frame.camera_frame_id, frame.meta
            ...                                    # the slot goes back when `frame` and every
                                                   # view of `a` are gone (or frame.release())

    cam = client.camera("sim0"); cam.set("Exposure", 5.0); cam.start(frames=100)

    # A sequence: subscribers get sub.sequence before its first frame, frame.index on each.
    cam.start(axes="t=3,c=2,z=20", order="tcz", channels=["488", "561"], z_step_um=0.5,
              metadata={"note": "any JSON object"})
    for frame in sub.sequence_frames():            # the frames of one sequence, then it stops
        t, c, z = frame.index["t"], frame.index["c"], frame.index["z"]
    sub.sequence.axes, sub.sequence_end            # {'t': 3, 'c': 2, 'z': 20}, (id, frames, ...)

    with client.advertise("sim0.mip", shape=(512, 512), dtype="uint16") as pub:
        with pub.loan(timeout=1.0) as buf:         # a writable numpy view of a slot
            buf[:] = result
            buf.commit(source=frame)               # published, with the input's provenance

mode="every" loses nothing while you keep up (at most max_hold frames held and queued; the
broker counts what a slow subscriber misses); mode="latest" always gives the newest frame, with
at most `window` frames (default 1) in flight: a frame held by a variable (or an array view of
it kept from the last iteration) counts, so drop it (`with frame:`, `del a`) before asking for
the next one, or subscribe with window=2.
Waits release the GIL and Ctrl-C interrupts them; `async for frame in sub` works in asyncio
(sub.fileno() is the socket to wait on). Errors are framebroker.Error subclasses carrying the
broker's sentence: BrokerNotRunning, BrokerLost, UnknownStream, Refused, Timeout.
`python3 -m framebroker status` and `python3 -m framebroker watch STREAM` take a quick look.
"""

import asyncio as _asyncio

import numpy as _np

from ._framebroker import (  # noqa: F401  (the public API)
    BrokerLost,
    BrokerNotRunning,
    Camera,
    Client,
    Error,
    Frame,
    Loan,
    Publisher,
    Refused,
    Sequence,
    SequenceEnd,
    Subscription,
    Timeout,
    UnknownStream,
    connect,
)

__all__ = [
    "connect", "Client", "Camera", "Subscription", "Frame", "Publisher", "Loan", "LoanArray",
    "Sequence", "SequenceEnd",
    "Error", "BrokerNotRunning", "BrokerLost", "UnknownStream", "Refused", "Timeout",
]


class LoanArray(_np.ndarray):
    """A loan's slot as a writable numpy array, with commit() and abort() of the loan."""

    def __array_finalize__(self, obj):
        self._loan = getattr(obj, "_loan", None)

    def commit(self, source=None, **info):
        """Publish the slot; source: the Frame it was made from (provenance)."""
        self._loan.commit(source, **info)

    def abort(self):
        """Give the slot back unpublished."""
        self._loan.abort()


def _loan_enter(loan):
    view = loan.array.view(LoanArray)
    view._loan = loan
    return view


def _loan_exit(loan, exc_type, exc, tb):
    loan.abort()  # nothing when committed
    return False


Loan.__enter__ = _loan_enter
Loan.__exit__ = _loan_exit


def _aiter(sub):
    return sub


async def _anext(sub):
    """The next frame, waiting in the event loop on the subscription's socket."""
    loop = _asyncio.get_running_loop()
    while True:
        frame = sub.next(0)
        if frame is not None:
            return frame
        if sub.ended:
            raise StopAsyncIteration
        ready = loop.create_future()
        fd = sub.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            # The timeout also covers frames the library read from the socket meanwhile.
            await _asyncio.wait_for(ready, 0.1)
        except _asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)


Subscription.__aiter__ = _aiter
Subscription.__anext__ = _anext
