"""Link frame format and parameters.

A link frame is a fixed number of *beats*; a beat is what the lanes carry in one core cycle
(``beat_width = lanes × bits per lane``). Every frame has the same layout:

====================  =========================================================  ===========
beats                 content                                                    CRC covers
====================  =========================================================  ===========
first slots           the first ``frame_flits // 2`` slots of ``flit_width``     yes
                      bits (:attr:`LinkParams.header_start` beats)
``header_beats``      header: VC of the flits, data/control, sequence number,    yes
                      cumulative ACK, NAK, and a short header CRC of its own
other slots           the other slots; slots fill from slot 0, unfilled ones    yes
                      are zero
``trailer_beats``     trailer: number of filled slots, cumulative               yes
                      credit-return counters, one per VC
``1``                 CRC-16 (x^16 + x^15 + x^2 + 1, init 0xFFFF, not reflected: —
                      CRC-16/CMS), in the low 16 bits of the beat
====================  =========================================================  ===========

A frame with ``count == 0`` (header ``data`` = 0) is a control frame: it carries ACK/NAK and
credits, consumes no sequence number and is never replayed.

Neither CRC starts from zero: with an initial value of zero, all-zero beats (every lane
stuck at 0, ``valid`` still up) are a frame with a good CRC and a good header, and a live
link whose lanes all die would go on "receiving" empty control frames, never retrain and
replay for ever. Frames and headers that are all zeros or all ones fail, and no repeated
beat value (lanes stuck at any levels) passes both CRCs; one passes the frame CRC alone, so
the trainer counts header CRC failures too (``tests/test_link.py`` checks these).

The header has its own CRC (:func:`header_crc`, 5 to 8 bits, whatever the header beats leave
after the fields), so the receiver acts on the ACK and NAK it carries as soon as the header
has arrived, not at the frame CRC: every header, idle frames' too, carries the cumulative ACK
and the NAK state, so a NAK lost in a corrupted header is repeated by the next one.

The header sits in the middle of the frame, not at its start: a frame that fails is found at
its end, and the answer has to wait for the next header going the other way. When both ends'
frames are in phase (two ends reset together), a header at the start has just left when the
NAK is set, and the NAK comes back a frame later than from a header in the middle. The
receiver does not need the VC before the header: it writes each flit to every VC's buffer
tentatively and commits it only in the VC the header names. All flits of a frame belong to
one VC, so the VC is sent once, in the header.

Credit returns are cumulative counters (modulo ``2**credit_bits``), not increments, so a
trailer lost to a CRC error loses no credit: the next good trailer carries the total.
"""

from dataclasses import dataclass
from functools import cached_property

from amaranth.hdl import Cat, Value
from amaranth.lib import crc, data
from amaranth.lib.crc import catalog

__all__ = ["LinkParams", "CRC", "HEADER_CRC_POLYNOMIALS", "header_crc", "crc_step"]

#: The frame CRC: x^16 + x^15 + x^2 + 1 (0x8005), init 0xFFFF, not reflected (CRC-16/CMS).
CRC = catalog.CRC16_CMS

#: Header CRC initial value by width: one for which neither all-zero nor all-one fields and
#: check pass, for any field width up to 128 bits (the smallest such for 5 to 7 bits;
#: all-ones fails that for 5, 6 and 7 bits at some widths).
HEADER_CRC_INITIAL = {5: 0x03, 6: 0x01, 7: 0x07, 8: 0x07}

#: Header CRC polynomial by width (not reflected, no final XOR): CRC-5/USB's,
#: CRC-6/ITU's, CRC-7/MMC's and CRC-8/SMBUS's generator polynomials. Any of them detects every
#: single-bit and every burst of up to its width in the header.
HEADER_CRC_POLYNOMIALS = {5: 0x05, 6: 0x03, 7: 0x09, 8: 0x07}
MIN_HEADER_CRC, MAX_HEADER_CRC = min(HEADER_CRC_POLYNOMIALS), max(HEADER_CRC_POLYNOMIALS)


def header_crc_algorithm(width: int) -> crc.Algorithm:
    return crc.Algorithm(crc_width=width, polynomial=HEADER_CRC_POLYNOMIALS[width],
                         initial_crc=HEADER_CRC_INITIAL[width], reflect_input=False,
                         reflect_output=False, xor_output=0)


def header_crc(fields: Value, width: int) -> Value:
    """The header CRC of ``fields`` (the header's fields packed LSB first, as one word fed MSB
    first), combinationally: the CRC is affine, so each bit is an XOR of field bits and of
    the CRC of zero fields."""
    n = len(fields)
    parameters = header_crc_algorithm(width)(data_width=n)
    of_zero = parameters.compute([0])
    columns = [parameters.compute([1 << i]) ^ of_zero for i in range(n)]
    return _xor_matrix(columns, [fields[i] for i in range(n)], width) ^ of_zero


def _xor_matrix(columns, inputs, width: int) -> Value:
    """A linear map over GF(2): bit ``b`` of the result is the XOR of every ``inputs[i]``
    whose ``columns[i]`` (its image, from the software reference) has bit ``b`` set."""
    bits = []
    for b in range(width):
        term = Value.cast(0)
        for column, bit in zip(columns, inputs, strict=True):
            if column >> b & 1:
                term = term ^ bit
        bits.append(term)
    return Cat(*bits)


def crc_step(state: Value, word: Value, *more: Value) -> Value:
    """The frame CRC register after ``word`` (one beat, fed MSB first) from ``state``,
    combinationally, as :class:`CRC`'s processor would step it: the update is linear, so each
    bit is an XOR of state and word bits (columns from the software reference). Further
    words (``more``, of the same width) are stepped over after it, still as one flat XOR per
    bit (not one step's XORs feeding the next's)."""
    words = (word, *more)
    n, width = len(word), CRC.crc_width
    if any(len(w) != n for w in words):
        raise ValueError("crc_step: every word must have the same width")

    def algorithm(initial):
        return crc.Algorithm(crc_width=width, polynomial=CRC.polynomial, initial_crc=initial,
                             reflect_input=False, reflect_output=False, xor_output=0)
    zeros = [0] * len(words)
    from_state = [algorithm(1 << j)(data_width=n).compute(zeros) for j in range(width)]
    from_words, inputs = [], [state[j] for j in range(width)]
    for k, w in enumerate(words):
        for i in range(n):
            unit = list(zeros)
            unit[k] = 1 << i
            from_words.append(algorithm(0)(data_width=n).compute(unit))
            inputs.append(w[i])
    return _xor_matrix(from_state + from_words, inputs, width)


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
        Width of sequence numbers; the replay window must be below ``2**seq_bits``. The
        default 3 (window 4) leaves the header's CRC 7 bits in one 16-bit beat.
    replay_frames : int
        Unacknowledged data frames the sender keeps (the go-back-N window).
    rx_credits : int
        Flits of receive buffer per VC the peer may fill (its initial credits). The default
        48 covers most of a window of frames of one VC (4 × 15 flits) while the credit
        totals still fit the 16-bit trailer (6 bits per VC); with 32, credits ran out at BER
        1e-3, where credit returns in failed frames are lost for a while.
    lane_latency : int
        A bound on the cycles a beat spends in the lanes, one way (registers, gearboxes,
        deskew). Only sizes the replay timers below; a longer real latency costs goodput
        under errors (stale NAKs replay too often), never correctness.
    replay_timeout : int or None
        Cycles without ACK progress, with frames outstanding, before the sender replays.
        Default (``None``): :attr:`ack_round_trip` plus one frame (the frame being sent when
        the last ACK came), the longest an ACK can take on a clean link.
    nak_holdoff : int or None
        After a replay of the oldest unacknowledged frame starts, the cycles during which a
        repeated NAK for the same frame is taken as stale (sent before the peer could see the
        replay). Default (``None``): one frame plus both lane flights and the header (and
        the receiver's registered CRC compare, :attr:`late_check`).
    counter_width : int
        Width of the transmitter's and receiver's saturating event counters.
    output_skid : bool
        Two output registers per VC at the receiver (default): ``o`` comes from flip-flops
        and the consumer's ``ready`` reaches neither the receive buffer's block RAM nor its
        fill level, for a cycle more of latency. ``False`` hands ``o`` straight from the
        buffer's registered read: a cycle less and about 120 iCE40 logic cells fewer per
        end, for small, slow links (the ``icebreaker`` package's).
    replay_head_registers : bool
        The transmitter keeps each replay slot's first two beats in flip-flops (default), so
        that a replay decided in the cycle its frame starts can go out at once, every beat
        of it but the first two read two cycles ahead through a register of its own.
        ``False`` reads those two beats from the replay buffer a cycle ahead instead: no
        flip-flops (``2 × replay_frames × beat_width`` fewer), the block RAM's output
        straight to the lanes, and a replay asked for in the last cycle before a frame
        starts waits for the next frame (a control frame goes first). Needs a frame whose
        beats 1 and 2 are not both slot beats (:attr:`head_reads_fit`), as the ``icebreaker``
        package's, whose link this is for.
    """
    flit_width: int = 64
    vcs: int = 2
    beat_width: int = 16
    frame_flits: int = 15
    seq_bits: int = 3
    replay_frames: int = 4
    rx_credits: int = 48
    lane_latency: int = 16
    replay_timeout: int | None = None
    nak_holdoff: int | None = None
    counter_width: int = 32
    output_skid: bool = True
    replay_head_registers: bool = True

    def __post_init__(self):
        def positive(name):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        for name in ("flit_width", "vcs", "beat_width", "frame_flits", "seq_bits",
                     "replay_frames", "rx_credits", "counter_width"):
            positive(name)
        for name in ("output_skid", "replay_head_registers"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if (not isinstance(self.lane_latency, int) or isinstance(self.lane_latency, bool)
                or self.lane_latency < 0):
            raise ValueError(f"lane_latency must be a non-negative integer, not "
                             f"{self.lane_latency!r}")
        if self.replay_timeout is None:
            object.__setattr__(self, "replay_timeout", self.frame_beats + self.ack_round_trip)
        if self.nak_holdoff is None:
            object.__setattr__(self, "nak_holdoff", self.frame_beats + 2 * self.lane_latency
                               + self.header_beats + 4 + self.late_check)
        for name in ("replay_timeout", "nak_holdoff"):
            positive(name)
        if self.beat_width < CRC.crc_width:
            raise ValueError(f"beat_width must be at least {CRC.crc_width} (the CRC), "
                             f"not {self.beat_width}")
        if self.flit_width % self.beat_width:
            raise ValueError(f"flit_width ({self.flit_width}) must be a multiple of "
                             f"beat_width ({self.beat_width})")
        if not self.replay_head_registers and not self.head_reads_fit:
            raise ValueError(f"replay_head_registers=False needs beats 1 and 2 of a frame not "
                             f"both slot beats; a frame of {self.frame_flits} flits of "
                             f"{self.beats_per_flit} beats has its header at beat "
                             f"{self.header_start}")
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

    @property
    def late_check(self) -> bool:
        """The receiver compares the CRC beat into a register and decides the frame's end a
        cycle later. Not when a flit is one beat and a flit slot comes first in the frame:
        the next frame's first flit would then reach the receive buffer in that cycle."""
        return self.beats_per_flit > 1 or self.header_start == 0

    @property
    def ack_round_trip(self) -> int:
        """The longest, on a clean link, from a frame's last beat leaving to its ACK being
        used: the lanes, the peer's check (1, or 2 with :attr:`late_check`), the wait for the
        peer's next header (up to a frame), the header back through the lanes and its check
        (1), and 2 of margin."""
        return (2 * self.lane_latency + self.frame_beats + self.header_beats + 4
                + self.late_check)

    @property
    def header_field_bits(self) -> int:
        """Bits of the header's fields, its CRC excluded: VC, data, seq, ACK, NAK."""
        return self.vc_bits + 1 + 2 * self.seq_bits + 1

    @property
    def header_beats(self) -> int:
        return -(-(self.header_field_bits + MIN_HEADER_CRC) // self.beat_width)

    @property
    def header_crc_width(self) -> int:
        """What the header beats leave after the fields, at most 8 bits."""
        return min(MAX_HEADER_CRC, self.header_beats * self.beat_width - self.header_field_bits)

    @cached_property
    def header_layout(self) -> data.StructLayout:
        """The header: its fields (the first :attr:`header_field_bits`), then their CRC."""
        return data.StructLayout({
            "vc": self.vc_bits,
            "data": 1,            # a data frame (new or replayed); 0 = control frame
            "seq": self.seq_bits,
            "ack": self.seq_bits,
            "nak": 1,
            "check": self.header_crc_width,
        })

    @cached_property
    def trailer_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "count": self.count_bits,
            "credits": data.ArrayLayout(self.credit_bits, self.vcs),
        })

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
    def head_reads_fit(self) -> bool:
        """A replay's first two beats can come from the replay buffer's one read port
        (``replay_head_registers=False``): the read for beat 1, issued in beat 0, meets the
        one issued there two beats ahead for beat 2 only when both are slot beats."""
        def is_slot(i):
            return i < self.first_trailer_beat and not (
                self.header_start <= i < self.header_start + self.header_beats)
        return not (is_slot(1) and is_slot(2))

    @property
    def header_start(self) -> int:
        """Beat of the header: after the first ``frame_flits // 2`` slots."""
        return self.frame_flits // 2 * self.beats_per_flit

    def slot_beat_index(self, n: int) -> int:
        """Beat of the frame that carries beat ``n`` of the slots."""
        return n if n < self.header_start else n + self.header_beats

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
