"""Reference model of the link protocol (imports no RTL).

- :func:`crc16` — CRC-16/UMTS bit by bit (poly 0x8005, init 0, no reflection), independent of
  Amaranth's table-free implementation.
- :class:`FrameFormat` — the frame layout of ``docs/link.md`` computed from the same
  parameters as the RTL, with :meth:`FrameFormat.decode` to read a captured frame.
- :func:`go_back_n_goodput` — the go-back-N bound the benchmark compares against.
"""

from dataclasses import dataclass

__all__ = ["crc16", "FrameFormat", "Frame", "go_back_n_goodput", "frame_error_rate"]


def crc16(words, width: int) -> int:
    """CRC-16/UMTS over ``words`` of ``width`` bits each, most significant bit first."""
    crc = 0
    for word in words:
        for bit in reversed(range(width)):
            feedback = ((crc >> 15) & 1) ^ ((word >> bit) & 1)
            crc = (crc << 1) & 0xFFFF
            if feedback:
                crc ^= 0x8005
    return crc


@dataclass(frozen=True)
class Frame:
    vc: int
    seq: int
    ack: int
    nak: int
    count: int
    credits: tuple[int, ...]
    flits: tuple[int, ...]
    crc_ok: bool


@dataclass(frozen=True)
class FrameFormat:
    flit_width: int = 64
    vcs: int = 2
    beat_width: int = 16
    frame_flits: int = 15
    seq_bits: int = 6
    rx_credits: int = 32

    @property
    def vc_bits(self):
        return max(1, (self.vcs - 1).bit_length())

    @property
    def count_bits(self):
        return max(1, self.frame_flits.bit_length())

    @property
    def credit_bits(self):
        return max(1, self.rx_credits.bit_length())

    @property
    def header_bits(self):
        return self.vc_bits + 2 * self.seq_bits + 1

    @property
    def trailer_bits(self):
        return self.count_bits + self.vcs * self.credit_bits

    def _beats(self, bits):
        return -(-bits // self.beat_width)

    @property
    def frame_beats(self):
        return (self._beats(self.header_bits) + self.frame_flits * self.flit_width //
                self.beat_width + self._beats(self.trailer_bits) + 1)

    @property
    def payload_efficiency(self):
        return self.frame_flits * self.flit_width / (self.frame_beats * self.beat_width)

    def decode(self, beats: list[int]) -> Frame:
        """Read one frame from its beats (header fields LSB first, as the RTL packs them)."""
        assert len(beats) == self.frame_beats, f"{len(beats)} beats, want {self.frame_beats}"
        W = self.beat_width
        header_beats = self._beats(self.header_bits)
        bits = sum(beat << (W * n) for n, beat in enumerate(beats[:header_beats]))
        fields = {}
        for name, width in (("vc", self.vc_bits), ("seq", self.seq_bits),
                            ("ack", self.seq_bits), ("nak", 1)):
            fields[name] = bits & ((1 << width) - 1)
            bits >>= width
        per_flit = self.flit_width // W
        slots = beats[header_beats:header_beats + self.frame_flits * per_flit]
        flits = tuple(sum(beat << (W * n) for n, beat in enumerate(slots[k:k + per_flit]))
                      for k in range(0, len(slots), per_flit))
        trailer_start = header_beats + len(slots)
        bits = sum(beat << (W * n) for n, beat in
                   enumerate(beats[trailer_start:self.frame_beats - 1]))
        count = bits & ((1 << self.count_bits) - 1)
        bits >>= self.count_bits
        credits = []
        for _ in range(self.vcs):
            credits.append(bits & ((1 << self.credit_bits) - 1))
            bits >>= self.credit_bits
        crc_ok = crc16(beats[:-1], W) == beats[-1] & 0xFFFF
        return Frame(fields["vc"], fields["seq"], fields["ack"], fields["nak"], count,
                     tuple(credits), flits[:count], crc_ok)


def frame_error_rate(ber: float, frame_bits: int) -> float:
    return 1 - (1 - ber) ** frame_bits


def go_back_n_goodput(frame_error: float, window: float) -> float:
    """Goodput relative to error-free for go-back-N: (1 - p) / (1 + (W - 1) p)."""
    return (1 - frame_error) / (1 + (window - 1) * frame_error)
