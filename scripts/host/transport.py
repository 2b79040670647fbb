"""Byte transports the host talks to the bridge through.

A transport moves bytes and knows nothing of frames. Two flavours, one interface each:

- :class:`Transport` (blocking): :class:`SerialTransport` over pyserial, for the boards.
- :class:`AsyncTransport` (``async``): what a cocotb test drives; see
  :mod:`chipknit.host.sim` for the ones that drive a simulated bridge's byte streams or its
  UART pins.
"""

import time
from abc import ABC, abstractmethod

__all__ = ["Transport", "AsyncTransport", "SerialTransport", "LoopbackTransport"]


class Transport(ABC):
    """A blocking byte pipe."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (returns once it is handed to the OS or the model)."""

    @abstractmethod
    def read(self, timeout: float) -> bytes:
        """Bytes that arrived, waiting up to ``timeout`` seconds for at least one; ``b""``
        if none came."""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    @abstractmethod
    def discard_input(self) -> None:
        """Drop whatever has arrived and not been read."""

    @abstractmethod
    def close(self) -> None:
        """Release the transport."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncTransport(ABC):
    """The same as :class:`Transport`, awaited (times are simulated time under cocotb)."""

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def read(self, timeout: float) -> bytes: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    @abstractmethod
    def now(self) -> float:
        """The transport's clock in seconds (simulated time under cocotb)."""

    @abstractmethod
    def discard_input(self) -> None:
        """Drop whatever has arrived and not been read."""


class SerialTransport(Transport):
    """A serial port through pyserial (8N1, no flow control), e.g. a board's FTDI UART.

    Parameters
    ----------
    port : str
        ``/dev/ttyUSB1``, ``COM4``, or any pyserial URL (``loop://`` for a loopback).
    baud : int
        Must match the bitstream's UART divisor (``clock / divisor``).
    """

    def __init__(self, port: str, baud: int = 115200):
        import serial  # pyserial; imported here so the rest works without it
        self.port = port
        self.baud = baud
        self._serial = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N",
                                             stopbits=1, timeout=0, xonxoff=False,
                                             rtscts=False)

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, timeout: float) -> bytes:
        self._serial.timeout = timeout
        first = self._serial.read(1)
        if not first:
            return b""
        waiting = self._serial.in_waiting
        return first + (self._serial.read(waiting) if waiting else b"")

    def discard_input(self) -> None:
        self._serial.reset_input_buffer()

    def close(self) -> None:
        self._serial.close()


class LoopbackTransport(Transport):
    """A transport whose far end is a Python callable ``device(bytes) -> bytes`` (e.g. the
    bridge's reference model): what the host sends is answered at once."""

    def __init__(self, device):
        self.device = device
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        self._pending += self.device(bytes(data))

    def read(self, timeout: float) -> bytes:
        data, self._pending = bytes(self._pending), bytearray()
        return data

    def sleep(self, seconds: float) -> None:
        gap = getattr(self.device, "gap", None)
        if gap is not None:
            gap()

    def discard_input(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        """Nothing to release."""
