"""Transports a cocotb test drives: the host API against a simulated bridge.

- :class:`StreamTransport`: bytes straight into and out of the bridge's ``rx``/``tx`` byte
  streams (fast; random backpressure on both).
- :class:`UartPinTransport`: bytes as 8N1 frames on the UART pins of
  :class:`~chipknit.rtl.host.top.UartHostBridge`, at the configured baud rate (optionally
  off by a fraction, or with a framing error injected), through :class:`UartDriver` and
  :class:`UartMonitor`, the bit-level UART models.

Times are simulated: :meth:`read` timeouts and :meth:`sleep` are in simulated seconds, so
``AsyncHost(transport, timeout=200e-6)`` waits 200 µs of simulation for a response.
Imports cocotb, so only usable inside a cocotb test.
"""

import cocotb
from cocotb.triggers import Event, FallingEdge, First, Timer
from cocotb.utils import get_sim_time

from .transport import AsyncTransport

__all__ = ["StreamTransport", "UartPinTransport", "UartDriver", "UartMonitor"]


def _ps(seconds: float) -> int:
    return max(1, round(seconds * 1e12))


class _Received:
    """Bytes that arrived, and an event for the reader."""

    def __init__(self):
        self.bytes = bytearray()
        self.event = Event()

    def add(self, byte: int) -> None:
        self.bytes.append(byte)
        self.event.set()

    async def take(self, timeout: float) -> bytes:
        if not self.bytes:
            self.event.clear()
            await First(self.event.wait(), Timer(_ps(timeout), unit="ps"))
        data, self.bytes = bytes(self.bytes), bytearray()
        return data

    def clear(self) -> None:
        self.bytes.clear()


class _SimTransport(AsyncTransport):
    def __init__(self):
        self.received = _Received()
        #: Every byte written and read, for a scoreboard.
        self.sent_log = bytearray()
        self.received_log = bytearray()

    async def read(self, timeout: float) -> bytes:
        data = await self.received.take(timeout)
        self.received_log += data
        return data

    async def sleep(self, seconds: float) -> None:
        await Timer(_ps(seconds), unit="ps")

    def now(self) -> float:
        return get_sim_time("ps") * 1e-12

    def discard_input(self) -> None:
        self.received.clear()


class StreamTransport(_SimTransport):
    """The bridge's ``rx``/``tx`` byte streams (``<prefix>__valid/ready/payload``).

    ``corrupt(data) -> data`` may damage what is sent (to exercise the error paths).
    """

    def __init__(self, dut, clock, *, rx="rx", tx="tx", rx_pauses=None, tx_pauses=None,
                 corrupt=None):
        super().__init__()
        from chipknit.tb.stream import StreamSink, StreamSource
        self.source = StreamSource(dut, rx, clock, rx_pauses)
        self.sink = StreamSink(dut, tx, clock, tx_pauses, callback=self.received.add)
        self.corrupt = corrupt

    async def write(self, data: bytes) -> None:
        self.sent_log += data
        if self.corrupt is not None:
            data = self.corrupt(bytes(data))
        self.source.send_all(data)
        await self.source.wait()


class UartDriver:
    """Drives 8N1 frames onto a pin (idle high) at ``bit_time`` seconds per bit."""

    def __init__(self, pin, bit_time: float):
        self.pin = pin
        self.bit_time = bit_time
        self.pin.value = 1

    async def send_byte(self, byte: int, *, bit_time: float | None = None,
                        stop: int = 1) -> None:
        """One frame; ``stop=0`` sends a framing error, ``bit_time`` another baud rate."""
        step = _ps(bit_time or self.bit_time)
        for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
            self.pin.value = bit
            await Timer(step, unit="ps")
        if not stop:
            self.pin.value = 1          # back to idle, one bit time, so the next start shows
            await Timer(step, unit="ps")

    async def send(self, data: bytes, **options) -> None:
        for byte in data:
            await self.send_byte(byte, **options)


class UartMonitor:
    """Decodes 8N1 frames on a pin: samples mid-bit from the start bit's falling edge.

    ``callback(byte)`` gets each byte; ``framing_errors`` counts stop bits read as 0.
    ``edges`` keeps the time (ps) of every change within frames when ``record_edges`` is set,
    so a test can check the transmitter's bit timing exactly.
    """

    def __init__(self, pin, bit_time: float, callback, *, record_edges: bool = False):
        self.pin = pin
        self.bit_time = bit_time
        self.callback = callback
        self.framing_errors = 0
        self.frames: list[tuple[int, list[int]]] = []
        self.record_edges = record_edges
        self._task = cocotb.start_soon(self._watch())

    def stop(self) -> None:
        self._task.cancel()

    async def _watch(self):
        step = _ps(self.bit_time)
        while True:
            await FallingEdge(self.pin)
            start = get_sim_time("ps")
            await Timer(step // 2, unit="ps")
            if int(self.pin.value):
                continue                        # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await Timer(step, unit="ps")
                byte |= int(self.pin.value) << i
            await Timer(step, unit="ps")
            if not int(self.pin.value):
                self.framing_errors += 1
                continue
            if self.record_edges:
                self.frames.append((start, byte))
            self.callback(byte)


class UartPinTransport(_SimTransport):
    """Bytes over a DUT's UART pins: ``to_dut`` (its rx) and ``from_dut`` (its tx).

    Parameters
    ----------
    bit_time : float
        Seconds per bit, the DUT's ``divisor`` × clock period.
    baud_error : float
        Relative error of the host's bit time (``0.02`` sends 2 % slow bits).
    """

    def __init__(self, to_dut, from_dut, bit_time: float, *, baud_error: float = 0.0):
        super().__init__()
        self.driver = UartDriver(to_dut, bit_time * (1 + baud_error))
        self.monitor = UartMonitor(from_dut, bit_time, self.received.add)

    async def write(self, data: bytes) -> None:
        self.sent_log += data
        await self.driver.send(data)
