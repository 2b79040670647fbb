"""cocotb drivers for ``amaranth.lib.stream`` interfaces.

A stream port ``i`` of a component becomes the Verilog ports ``i__valid``, ``i__ready`` and
``i__payload``; the drivers here take the DUT and that prefix.

- :class:`StreamSource` drives ``valid``/``payload`` from a queue, pausing (``valid`` low)
  when its pause generator says so.
- :class:`StreamSink` drives ``ready`` from its pause generator and collects what it takes.
- :class:`StreamMonitor` only watches a stream and records every transfer.

A transfer happens at a rising clock edge where ``valid`` and ``ready`` were both high; the
drivers sample the values the DUT presented just before the edge, as the hardware does.
Payloads are plain integers.

Pause generators are iterators of booleans (``True`` = pause this cycle); the helpers
:func:`random_pauses` and :func:`burst_pauses` make the common ones.
"""

import random
from collections import deque
from collections.abc import Callable, Iterator

import cocotb
from cocotb.triggers import Event, RisingEdge

__all__ = ["StreamSource", "StreamSink", "StreamMonitor", "random_pauses", "burst_pauses",
           "no_pauses"]


def no_pauses() -> Iterator[bool]:
    while True:
        yield False


def random_pauses(probability: float, rng: random.Random | None = None) -> Iterator[bool]:
    """Pause each cycle independently with ``probability``."""
    rng = rng or random.Random(random.getrandbits(32))
    while True:
        yield rng.random() < probability


def burst_pauses(max_run: int, max_pause: int, rng: random.Random | None = None
                 ) -> Iterator[bool]:
    """Alternate runs of 1..``max_run`` active cycles with 1..``max_pause`` paused ones."""
    rng = rng or random.Random(random.getrandbits(32))
    while True:
        for _ in range(rng.randint(1, max_run)):
            yield False
        for _ in range(rng.randint(1, max_pause)):
            yield True


class _StreamPort:
    def __init__(self, dut, prefix: str, clock):
        self.prefix = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clock = clock


class StreamSource(_StreamPort):
    """Drives a stream the DUT consumes (an ``In(stream.Signature(...))`` port)."""

    def __init__(self, dut, prefix: str, clock, pauses: Iterator[bool] | None = None):
        super().__init__(dut, prefix, clock)
        self.queue: deque[int] = deque()
        self.pauses = pauses or no_pauses()
        self.sent = 0
        self._idle = Event()
        self._idle.set()
        self.valid.value = 0
        self.payload.value = 0
        self._task = cocotb.start_soon(self._drive())

    def send_nowait(self, payload: int) -> None:
        self.queue.append(payload)
        self._idle.clear()

    def send_all(self, payloads) -> None:
        for payload in payloads:
            self.send_nowait(payload)

    def idle(self) -> bool:
        return not self.queue and self._idle.is_set()

    async def wait(self) -> None:
        """Until every queued payload has been taken by the DUT."""
        await self._idle.wait()

    def stop(self) -> None:
        self._task.cancel()
        self.valid.value = 0

    async def _drive(self):
        offering = False
        while True:
            await RisingEdge(self.clock)
            if offering and int(self.ready.value):
                self.queue.popleft()
                self.sent += 1
            offering = bool(self.queue) and not next(self.pauses)
            self.valid.value = int(offering)
            if offering:
                self.payload.value = self.queue[0]
            elif not self.queue:
                self._idle.set()


class StreamMonitor(_StreamPort):
    """Records every transfer on a stream; calls ``callback(payload)`` for each if given."""

    def __init__(self, dut, prefix: str, clock, callback: Callable[[int], None] | None = None):
        super().__init__(dut, prefix, clock)
        self.received: deque[int] = deque()
        self.callback = callback
        self.count = 0
        self._task = cocotb.start_soon(self._watch())

    def stop(self) -> None:
        self._task.cancel()

    async def _watch(self):
        while True:
            await RisingEdge(self.clock)
            if int(self.valid.value) and int(self.ready.value):
                payload = int(self.payload.value)
                self.count += 1
                if self.callback is None:
                    self.received.append(payload)
                else:
                    self.callback(payload)


class StreamSink(StreamMonitor):
    """Consumes a stream the DUT produces (an ``Out(stream.Signature(...))`` port)."""

    def __init__(self, dut, prefix: str, clock, pauses: Iterator[bool] | None = None,
                 callback: Callable[[int], None] | None = None):
        super().__init__(dut, prefix, clock, callback)
        self.pauses = pauses or no_pauses()
        self.ready.value = 0
        self._drive_task = cocotb.start_soon(self._drive())

    def stop(self) -> None:
        super().stop()
        self._drive_task.cancel()
        self.ready.value = 0

    async def _drive(self):
        while True:
            self.ready.value = int(not next(self.pauses))
            await RisingEdge(self.clock)
