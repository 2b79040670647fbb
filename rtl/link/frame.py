"""Link frame format and parameters.

A link frame is a fixed number of *beats*; a beat is what the lanes carry in one core cycle
(``beat_width = lanes × bits per lane``). Every frame has the same layout:

====================  =========================================================  ===========
beats                 content                                                    CRC covers
====================  =========================================================  ===========
``header_beats``      :class:`FrameHeader`: VC of the flits, sequence number,    yes
                      cumulative ACK, NAK
``flit slots``        ``frame_flits`` slots of ``flit_width`` bits, filled from   yes
                      slot 0; unfilled slots are zero
``trailer_beats``     :class:`FrameTrailer`: number of filled slots, cumulative  yes
                      credit-return counters, one per VC
``1``                 CRC-16 (x^16 + x^15 + x^2 + 1, init 0, not reflected:     —
                      CRC-16/UMTS), in the low 16 bits of the beat
====================  =========================================================  ===========

A frame with ``count == 0`` is a control frame: it carries ACK/NAK and credits, consumes no
sequence number and is never replayed. All flits of a frame belong to one VC, so the VC is
sent once, in the header, and the receiver knows where to put each flit as it arrives.

Credit returns are cumulative counters (modulo ``2**credit_bits``), not increments, so a
trailer lost to a CRC error loses no credit: the next good trailer carries the total.
"""

from dataclasses import dataclass
from functools import cached_property

from amaranth.lib import data
from amaranth.lib.crc import catalog

__all__ = ["LinkParams", "CRC"]

#: The frame CRC: x^16 + x^15 + x^2 + 1 (0x8005), init 0, not reflected (CRC-16/UMTS).
CRC = catalog.CRC16_UMTS


def _bits_for(value: int) -> int:
    """Bits to hold 0..value."""
    return max(1, value.bit_length())


@dataclass(frozen=True)
class LinkParams:
    """Parameters of one link (both ends must agree).

    Parameters
    ----------
    flit_width : int
        Bits per flit (opaque to the link). A multiple of ``beat_width``.
    vcs : int
        Virtual channels, each with its own credits and receive buffer.
    beat_width : int
        Bits per beat: lanes × bits per lane per core cycle. At least 16 (the CRC).
    frame_flits : int
        Flit slots per frame.
    seq_bits : int
        Width of sequence numbers; the replay window must be below ``2**seq_bits``.
    replay_frames : int
        Unacknowledged data frames the sender keeps (the go-back-N window).
    rx_credits : int
        Flits of receive buffer per VC the peer may fill (its initial credits).
    replay_timeout : int
        Cycles without ACK progress, with frames outstanding, before the sender replays.
    """
    flit_width: int = 64
    vcs: int = 2
    beat_width: int = 16
    frame_flits: int = 15
    seq_bits: int = 6
    replay_frames: int = 4
    rx_credits: int = 32
    replay_timeout: int = 512

    def __post_init__(self):
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("flit_width", "vcs", "beat_width", "frame_flits", "seq_bits",
                     "replay_frames", "rx_credits", "replay_timeout"):
            positive(name)
        if self.beat_width < CRC.crc_width:
            raise ValueError(f"beat_width must be at least {CRC.crc_width} (the CRC), "
                             f"not {self.beat_width}")
        if self.flit_width % self.beat_width:
            raise ValueError(f"flit_width ({self.flit_width}) must be a multiple of "
                             f"beat_width ({self.beat_width})")
        if self.replay_frames >= 1 << self.seq_bits:
            raise ValueError(f"replay_frames ({self.replay_frames}) must be below "
                             f"2**seq_bits ({1 << self.seq_bits}) for go-back-N")

    @property
    def vc_bits(self) -> int:
        return _bits_for(self.vcs - 1)

    @property
    def count_bits(self) -> int:
        return _bits_for(self.frame_flits)

    @property
    def credit_bits(self) -> int:
        """Width of a cumulative credit counter.

        At most ``rx_credits`` returns can be unreported (the peer cannot hold more flits
        than its credits), so a modulus above ``rx_credits`` decodes every difference.
        """
        return _bits_for(self.rx_credits)

    @property
    def beats_per_flit(self) -> int:
        return self.flit_width // self.beat_width

    @cached_property
    def header_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "vc": self.vc_bits,
            "seq": self.seq_bits,
            "ack": self.seq_bits,
            "nak": 1,
        })

    @cached_property
    def trailer_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "count": self.count_bits,
            "credits": data.ArrayLayout(self.credit_bits, self.vcs),
        })

    @property
    def header_beats(self) -> int:
        return -(-self.header_layout.size // self.beat_width)

    @property
    def trailer_beats(self) -> int:
        return -(-self.trailer_layout.size // self.beat_width)

    @property
    def slot_beats(self) -> int:
        return self.frame_flits * self.beats_per_flit

    @property
    def frame_beats(self) -> int:
        return self.header_beats + self.slot_beats + self.trailer_beats + 1

    @property
    def first_slot_beat(self) -> int:
        return self.header_beats

    @property
    def first_trailer_beat(self) -> int:
        return self.header_beats + self.slot_beats

    @property
    def crc_beat(self) -> int:
        return self.frame_beats - 1

    @property
    def frame_bits(self) -> int:
        return self.frame_beats * self.beat_width

    @property
    def payload_efficiency(self) -> float:
        """Payload bits per raw lane bit, error-free and with every slot filled."""
        return self.frame_flits * self.flit_width / self.frame_bits

    @property
    def rx_buffer_depth(self) -> int:
        """Entries per VC receive buffer: the credits plus one frame being checked."""
        return self.rx_credits + self.frame_flits
