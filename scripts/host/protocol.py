"""The host bridge's byte protocol, host side: frame encoder, response parser, CRC.

Pure Python (no Amaranth, no I/O), shared by the blocking and the async host and by the
simulation transports. The frame format is specified in docs/host.md and implemented in
hardware by :class:`chipknit.rtl.host.bridge.HostBridge`; a test checks that the constants
here agree with the hardware's.
"""

from dataclasses import dataclass, field

__all__ = ["SYNC", "OP_READ", "OP_WRITE", "OP_WRITE_MASKED", "OP_COUNTERS", "OP_NAK",
           "STATUS_OKAY", "STATUS_DECODE_ERROR", "STATUS_TARGET_ERROR", "STATUS_TIMEOUT",
           "NAK_BAD_CRC", "NAK_BAD_OP", "NAK_BAD_LENGTH", "NAK_BAD_ADDRESS",
           "STATUS_BUS_TIMEOUT", "STATUS_NAMES", "COUNTERS", "crc8", "encode_command",
           "Response", "ResponseParser"]

SYNC = 0xA5
OP_READ = 0x01
OP_WRITE = 0x02
OP_WRITE_MASKED = 0x03
OP_COUNTERS = 0x04
OP_NAK = 0xFF

# Status byte of a response: the network's status (chipknit.rtl.noc.transaction.Status) ...
STATUS_OKAY = 0x00
STATUS_DECODE_ERROR = 0x01
STATUS_TARGET_ERROR = 0x02
STATUS_TIMEOUT = 0x03
# ... or the bridge's own verdict: NAKs (not executed) and a bus timeout (maybe executed).
NAK_BAD_CRC = 0x81
NAK_BAD_OP = 0x82
NAK_BAD_LENGTH = 0x83
NAK_BAD_ADDRESS = 0x84
STATUS_BUS_TIMEOUT = 0x85

STATUS_NAMES = {
    STATUS_OKAY: "OKAY", STATUS_DECODE_ERROR: "DECODE_ERROR",
    STATUS_TARGET_ERROR: "TARGET_ERROR", STATUS_TIMEOUT: "TIMEOUT",
    NAK_BAD_CRC: "BAD_CRC", NAK_BAD_OP: "BAD_OP", NAK_BAD_LENGTH: "BAD_LENGTH",
    NAK_BAD_ADDRESS: "BAD_ADDRESS", STATUS_BUS_TIMEOUT: "BUS_TIMEOUT",
}

#: The bridge's counters, in the order OP_COUNTERS returns them (one 32-bit word each).
COUNTERS = ("commands", "garbage_bytes", "crc_errors", "frame_timeouts", "naks",
            "bus_timeouts", "stale_responses", "transport_errors", "transport_overruns")

COUNTER_BYTES = 4


def crc8(data: bytes) -> int:
    """CRC-8/AUTOSAR: polynomial 0x2F, initial 0xFF, final XOR 0xFF, no reflection."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x2F) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


def _word_bytes(word: int, beat_bytes: int) -> bytes:
    if not 0 <= word < 1 << (8 * beat_bytes):
        raise ValueError(f"Word {word!r} does not fit {8 * beat_bytes} bits")
    return word.to_bytes(beat_bytes, "little")


def encode_command(op: int, tag: int, addr: int = 0, words=(), *, strobes=None,
                   beat_bytes: int = 4, length: int | None = None) -> bytes:
    """One command frame.

    ``words`` are the beats of a write (``len`` is ``len(words) - 1``); for a read give
    ``length`` (beats − 1). ``strobes`` (one int per word, a bit per byte) makes a masked
    write.
    """
    words = list(words)
    if length is None:
        length = len(words) - 1 if words else 0
    if not 0 <= length <= 255:
        raise ValueError(f"Length must be 0..255 (beats - 1), not {length}")
    if not 0 <= addr < 1 << 32:
        raise ValueError(f"Address must fit 32 bits, not {addr:#x}")
    body = bytearray([op, tag & 0xFF, length]) + addr.to_bytes(4, "little")
    if strobes is not None:
        strobe_bytes = -(-beat_bytes // 8)
        if len(strobes) != len(words):
            raise ValueError(f"{len(strobes)} strobes for {len(words)} words")
        for word, strobe in zip(words, strobes, strict=True):
            if not 0 <= strobe < 1 << beat_bytes:
                raise ValueError(f"Strobe {strobe:#x} does not fit {beat_bytes} bytes")
            body += _word_bytes(word, beat_bytes) + strobe.to_bytes(strobe_bytes, "little")
    else:
        for word in words:
            body += _word_bytes(word, beat_bytes)
    return bytes([SYNC]) + bytes(body) + bytes([crc8(body)])


@dataclass(frozen=True)
class Response:
    """A decoded response frame."""
    op: int                 # the command's op (OP_NAK for a NAK)
    tag: int
    length: int             # the len byte
    payload: bytes
    status: int

    @property
    def nak(self) -> bool:
        return self.op == OP_NAK

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"0x{self.status:02x}")

    def words(self, size: int) -> list[int]:
        return [int.from_bytes(self.payload[i:i + size], "little")
                for i in range(0, len(self.payload), size)]


def payload_size(op: int, length: int, beat_bytes: int) -> int:
    """Payload bytes of a response to ``op`` whose len byte is ``length``."""
    if op == OP_READ:
        return (length + 1) * beat_bytes
    if op == OP_COUNTERS:
        return (length + 1) * COUNTER_BYTES
    return 0


@dataclass
class ResponseParser:
    """Incremental parser of response frames: :meth:`feed` bytes, get :class:`Response` s.

    Bytes outside a frame that are not the sync byte are skipped and counted; a frame with a
    bad CRC or an unknown op is dropped and counted, and parsing resumes at the byte after
    its sync byte (so a sync byte inside a damaged frame is not lost).
    """
    beat_bytes: int = 4
    garbage: int = 0
    bad_frames: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Response]:
        self._buffer += data
        out = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                self.garbage += len(self._buffer)
                self._buffer.clear()
                return out
            self.garbage += start
            del self._buffer[:start]
            if len(self._buffer) < 4:
                return out
            rop, tag, length = self._buffer[1], self._buffer[2], self._buffer[3]
            op = OP_NAK if rop == OP_NAK else rop & 0x7F
            if rop != OP_NAK and (not rop & 0x80 or op not in (
                    OP_READ, OP_WRITE, OP_WRITE_MASKED, OP_COUNTERS)):
                self.bad_frames += 1
                del self._buffer[:1]
                continue
            size = payload_size(op, length, self.beat_bytes)
            total = 4 + size + 2
            if len(self._buffer) < total:
                return out
            frame = bytes(self._buffer[:total])
            if crc8(frame[1:-1]) != frame[-1]:
                self.bad_frames += 1
                del self._buffer[:1]
                continue
            del self._buffer[:total]
            out.append(Response(op=op, tag=tag, length=length, payload=frame[4:4 + size],
                                status=frame[-2]))

    def reset(self) -> None:
        self._buffer.clear()
