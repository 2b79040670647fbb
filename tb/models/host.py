"""Reference model of the host bridge (device side) and of a memory target behind it.

:class:`BridgeModel` is what :class:`chipknit.rtl.host.bridge.HostBridge` does, byte for
byte: :meth:`BridgeModel.feed` takes the bytes the host sends and returns the bytes the
bridge answers, executing commands on a :class:`MemoryModel`; :meth:`BridgeModel.gap` is a
silence longer than the bridge's frame timeout. It keeps the same counters. Written from
docs/host.md, independently of the host library (:mod:`chipknit.host`) and of the RTL.
"""

from dataclasses import dataclass, field

__all__ = ["MemoryModel", "BridgeModel", "model_crc8", "Region"]

SYNC = 0xA5
OP_READ, OP_WRITE, OP_WRITE_MASKED, OP_COUNTERS, OP_NAK = 0x01, 0x02, 0x03, 0x04, 0xFF
OKAY, DECODE_ERROR, TARGET_ERROR, TIMEOUT = 0, 1, 2, 3
BAD_CRC, BAD_OP, BAD_LENGTH, BAD_ADDRESS, BUS_TIMEOUT = 0x81, 0x82, 0x83, 0x84, 0x85
COUNTERS = ("commands", "garbage_bytes", "crc_errors", "frame_timeouts", "naks",
            "bus_timeouts", "stale_responses", "transport_errors", "transport_overruns")


def model_crc8(data) -> int:
    """CRC-8/AUTOSAR (poly 0x2F, init 0xFF, xorout 0xFF), MSB first."""
    crc = 0xFF
    for byte in data:
        for bit in range(7, -1, -1):
            feedback = ((crc >> 7) ^ (byte >> bit)) & 1
            crc = ((crc << 1) & 0xFF) ^ (0x2F if feedback else 0)
    return crc ^ 0xFF


@dataclass(frozen=True)
class Region:
    """Addresses ``[base, base + size)`` whose accesses end with ``behaviour``: a status
    (``DECODE_ERROR``, ``TARGET_ERROR``, ``TIMEOUT``: nothing is read or written), or
    ``"slow"`` (done, but answered only after the bridge's bus timeout)."""
    base: int
    size: int
    behaviour: int | str

    def __contains__(self, addr):
        return self.base <= addr < self.base + self.size


@dataclass
class MemoryModel:
    """A word-addressed memory target: ``size`` bytes from address 0, zero-initialised.

    An unaligned address or a burst that leaves the memory is a ``TARGET_ERROR``; a burst
    that starts in one of ``regions`` behaves as the region says.
    """
    beat_bytes: int = 4
    size: int = 4096
    regions: tuple[Region, ...] = ()
    words: dict = field(default_factory=dict)

    def region(self, addr: int) -> Region | None:
        return next((region for region in self.regions if addr in region), None)

    def status(self, addr: int, beats: int) -> int | str:
        region = self.region(addr)
        if region is not None:
            return region.behaviour
        if addr % self.beat_bytes or addr + beats * self.beat_bytes > self.size:
            return TARGET_ERROR
        return OKAY

    def read(self, addr: int, beats: int) -> tuple[int | str, list[int]]:
        status = self.status(addr, beats)
        if status not in (OKAY, "slow"):
            return status, [0] * beats
        return status, [self.words.get(addr + i * self.beat_bytes, 0) for i in range(beats)]

    def write(self, addr: int, data: list[int], strobes: list[int]) -> int | str:
        status = self.status(addr, len(data))
        if status not in (OKAY, "slow"):
            return status
        for i, (word, strobe) in enumerate(zip(data, strobes, strict=True)):
            at = addr + i * self.beat_bytes
            old = self.words.get(at, 0)
            for byte in range(self.beat_bytes):
                if strobe >> byte & 1:
                    mask = 0xFF << (8 * byte)
                    old = (old & ~mask) | (word & mask)
            self.words[at] = old
        return status


@dataclass
class BridgeModel:
    """The bridge, byte in, byte out (see the module documentation).

    Parameters mirror :class:`~chipknit.rtl.host.bridge.HostBridgeParams`: ``beat_bytes``,
    ``buffer_beats``, ``max_read_beats`` (``min(256, 2**length_bits)``), ``addr_width``.
    ``transport`` gives the two transport counters the bridge reports.
    """
    memory: MemoryModel
    beat_bytes: int = 4
    buffer_beats: int = 64
    max_read_beats: int = 256
    addr_width: int = 32
    counter_width: int = 16
    transport: tuple[int, int] = (0, 0)
    counters: dict = field(default_factory=lambda: dict.fromkeys(COUNTERS[:7], 0))
    _frame: bytearray | None = None

    @property
    def strobe_bytes(self) -> int:
        return -(-self.beat_bytes // 8)

    def _count(self, name, n=1):
        self.counters[name] = min(self.counters[name] + n, (1 << self.counter_width) - 1)

    def counter_values(self) -> list[int]:
        return [self.counters[name] for name in COUNTERS[:7]] + list(self.transport)

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._frame is None:
                if byte == SYNC:
                    self._frame = bytearray()
                else:
                    self._count("garbage_bytes")
                continue
            self._frame.append(byte)
            if len(self._frame) == self._frame_length():
                frame, self._frame = bytes(self._frame), None
                out += self._execute(frame)
        return bytes(out)

    def gap(self) -> None:
        """Silence longer than the frame timeout: a partial frame is abandoned."""
        if self._frame is not None:
            self._frame = None
            self._count("frame_timeouts")

    __call__ = feed     # a device for chipknit.host.transport.LoopbackTransport

    def in_frame(self) -> bool:
        return self._frame is not None

    def _frame_length(self) -> int:
        """Bytes after SYNC, known once op and len are in."""
        if len(self._frame) < 3:
            return 1 << 30
        op, length = self._frame[0], self._frame[2]
        data = 0
        if op == OP_WRITE:
            data = (length + 1) * self.beat_bytes
        elif op == OP_WRITE_MASKED:
            data = (length + 1) * (self.beat_bytes + self.strobe_bytes)
        return 7 + data + 1

    def _response(self, op, tag, length, payload, status) -> bytes:
        body = bytes([op, tag, length]) + bytes(payload) + bytes([status])
        return bytes([SYNC]) + body + bytes([model_crc8(body)])

    def _nak(self, tag, reason) -> bytes:
        self._count("naks")
        return self._response(OP_NAK, tag, 0, b"", reason)

    def _execute(self, frame: bytes) -> bytes:
        op, tag, length = frame[0], frame[1], frame[2]
        addr = int.from_bytes(frame[3:7], "little")
        if model_crc8(frame[:-1]) != frame[-1]:
            self._count("crc_errors")
            return self._nak(tag, BAD_CRC)
        if op not in (OP_READ, OP_WRITE, OP_WRITE_MASKED, OP_COUNTERS):
            return self._nak(tag, BAD_OP)
        writing = op in (OP_WRITE, OP_WRITE_MASKED)
        if (writing and length >= self.buffer_beats) or \
                (op == OP_READ and length >= self.max_read_beats):
            return self._nak(tag, BAD_LENGTH)
        if op != OP_COUNTERS and addr >> self.addr_width:
            return self._nak(tag, BAD_ADDRESS)
        self._count("commands")
        if op == OP_COUNTERS:
            values = self.counter_values()
            payload = b"".join(value.to_bytes(4, "little") for value in values)
            return self._response(op | 0x80, tag, len(values) - 1, payload, OKAY)
        beats = length + 1
        if op == OP_READ:
            status, words = self.memory.read(addr, beats)
            if status == "slow":
                self._count("bus_timeouts")
                self._count("stale_responses", beats)
                status, words = BUS_TIMEOUT, [0] * beats
            payload = b"".join(word.to_bytes(self.beat_bytes, "little") for word in words)
            return self._response(op | 0x80, tag, length, payload, status)
        data, strobes = [], []
        step = self.beat_bytes + (self.strobe_bytes if op == OP_WRITE_MASKED else 0)
        for i in range(beats):
            chunk = frame[7 + i * step:7 + (i + 1) * step]
            data.append(int.from_bytes(chunk[:self.beat_bytes], "little"))
            strobes.append(int.from_bytes(chunk[self.beat_bytes:], "little")
                           & ((1 << self.beat_bytes) - 1) if op == OP_WRITE_MASKED
                           else (1 << self.beat_bytes) - 1)
        status = self.memory.write(addr, data, strobes)
        if status == "slow":
            self._count("bus_timeouts")
            self._count("stale_responses")
            status = BUS_TIMEOUT
        return self._response(op | 0x80, tag, length, b"", status)
