"""Reference model of the link protocol (imports no RTL).

- :func:`crc16` — CRC-16/CMS bit by bit (poly 0x8005, init 0xFFFF, no reflection), independent of
  Amaranth's table-free implementation; :func:`header_crc` — the header's own 5- to 8-bit CRC
  the same way.
- :class:`FrameFormat` — the frame layout of ``docs/link.md`` computed from the same
  parameters as the RTL, with :meth:`FrameFormat.decode` to read a captured frame.
- :func:`go_back_n_goodput` — the go-back-N bound the benchmark compares against.
"""

from dataclasses import dataclass

__all__ = ["crc16", "header_crc", "FrameFormat", "Frame", "go_back_n_goodput",
           "frame_error_rate"]

#: Header CRC generator polynomial by width (not reflected, no final XOR).
HEADER_CRC_POLYNOMIALS = {5: 0x05, 6: 0x03, 7: 0x09, 8: 0x07}
#: Header CRC initial value by width (docs/link.md: no all-zero or all-one header passes).
HEADER_CRC_INITIAL = {5: 0x03, 6: 0x01, 7: 0x07, 8: 0x07}


def _crc(words, width: int, crc_width: int, polynomial: int, initial: int) -> int:
    crc, top, mask = initial, crc_width - 1, (1 << crc_width) - 1
    for word in words:
        for bit in reversed(range(width)):
            feedback = ((crc >> top) & 1) ^ ((word >> bit) & 1)
            crc = (crc << 1) & mask
            if feedback:
                crc ^= polynomial
    return crc


def crc16(words, width: int) -> int:
    """CRC-16/CMS over ``words`` of ``width`` bits each, most significant bit first."""
    return _crc(words, width, 16, 0x8005, 0xFFFF)


def header_crc(fields: int, field_bits: int, crc_width: int) -> int:
    """The header CRC over its fields, one ``field_bits`` word, most significant bit first."""
    return _crc([fields], field_bits, crc_width, HEADER_CRC_POLYNOMIALS[crc_width],
                HEADER_CRC_INITIAL[crc_width])


@dataclass(frozen=True)
class Frame:
    vc: int
    data: int
    seq: int
    ack: int
    nak: int
    count: int
    credits: tuple[int, ...]
    flits: tuple[int, ...]
    crc_ok: bool
    header_ok: bool


@dataclass(frozen=True)
class FrameFormat:
    flit_width: int = 64
    vcs: int = 2
    beat_width: int = 16
    frame_flits: int = 15
    seq_bits: int = 3
    rx_credits: int = 48

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
    def header_field_bits(self):
        """VC, data, seq, ACK, NAK."""
        return self.vc_bits + 1 + 2 * self.seq_bits + 1

    @property
    def header_beats(self):
        return self._beats(self.header_field_bits + min(HEADER_CRC_POLYNOMIALS))

    @property
    def header_crc_width(self):
        return min(max(HEADER_CRC_POLYNOMIALS),
                   self.header_beats * self.beat_width - self.header_field_bits)

    @property
    def trailer_bits(self):
        return self.count_bits + self.vcs * self.credit_bits

    def _beats(self, bits):
        return -(-bits // self.beat_width)

    @property
    def frame_beats(self):
        return (self.header_beats + self.frame_flits * self.flit_width //
                self.beat_width + self._beats(self.trailer_bits) + 1)

    @property
    def payload_efficiency(self):
        return self.frame_flits * self.flit_width / (self.frame_beats * self.beat_width)

    @property
    def header_start(self):
        """The header follows the first ``frame_flits // 2`` slots."""
        return self.frame_flits // 2 * (self.flit_width // self.beat_width)

    @property
    def late_check(self):
        """The receiver decides a frame's end a cycle after its CRC beat (a registered CRC
        compare), except when a flit is one beat and a flit slot comes first in the frame."""
        return self.flit_width // self.beat_width > 1 or self.header_start == 0

    def decode(self, beats: list[int]) -> Frame:
        """Read one frame from its beats (header fields LSB first, as the RTL packs them)."""
        assert len(beats) == self.frame_beats, f"{len(beats)} beats, want {self.frame_beats}"
        W = self.beat_width
        header_beats, h0 = self.header_beats, self.header_start
        header = beats[h0:h0 + header_beats]
        bits = sum(beat << (W * n) for n, beat in enumerate(header))
        field_bits = bits & ((1 << self.header_field_bits) - 1)
        fields = {}
        for name, width in (("vc", self.vc_bits), ("data", 1), ("seq", self.seq_bits),
                            ("ack", self.seq_bits), ("nak", 1), ("check", self.header_crc_width)):
            fields[name] = bits & ((1 << width) - 1)
            bits >>= width
        header_ok = fields["check"] == header_crc(field_bits, self.header_field_bits,
                                                  self.header_crc_width)
        per_flit = self.flit_width // W
        slots = (beats[:h0] + beats[h0 + header_beats:header_beats
                                     + self.frame_flits * per_flit])
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
        return Frame(fields["vc"], fields["data"], fields["seq"], fields["ack"], fields["nak"],
                     count, tuple(credits), flits[:count], crc_ok, header_ok)


def frame_error_rate(ber: float, frame_bits: int) -> float:
    return 1 - (1 - ber) ** frame_bits


def go_back_n_goodput(frame_error: float, window: float) -> float:
    """Goodput relative to error-free for go-back-N: (1 - p) / (1 + (W - 1) p)."""
    return (1 - frame_error) / (1 + (window - 1) * frame_error)
