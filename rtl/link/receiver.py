"""Link receiver: frames in, CRC-checked flits out, per VC, exactly once and in order.

Each flit is written to its VC's :class:`~chipknit.rtl.link.commit_fifo.CommitFifo` as it
arrives and becomes visible only when the frame's CRC has passed and its sequence number is
the one expected (store-and-forward at frame granularity: a flit's delivery waits for the end
of its frame). A frame that fails is taken back whole, counted, and answered with a NAK.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import add_event_counters
from .commit_fifo import CommitFifo
from .frame import CRC, LinkParams

__all__ = ["LinkReceiver", "ReceiverStatus"]

COUNTER_WIDTH = 32


def ReceiverStatus(params: LinkParams) -> wiring.Signature:
    """Counters of a receiver (all saturating, ``COUNTER_WIDTH`` bits)."""
    return wiring.Signature({name: Out(COUNTER_WIDTH) for name in (
        "frames_ok",        # frames with a good CRC (data and control)
        "data_frames",      # data frames accepted in sequence
        "flits",            # flits accepted (committed)
        "crc_errors",       # frames whose CRC failed
        "duplicates",       # good data frames already received (after a replay)
        "out_of_order",     # good data frames ahead of the expected one (one was lost)
        "protocol_errors",  # good CRC but impossible content (VC or count out of range,
                            # receive buffer overrun: the peer broke the credit rule)
    )})


class LinkReceiver(wiring.Component):
    """Receiving half of a link adapter.

    Members
    -------
    beats : In(stream.Signature(beat_width))
        Beats from the lanes; always ready. A frame starts at the first beat after reset.
    o : Out(stream.Signature(flit_width)).array(vcs)
        Received flits per VC.
    ack : Out(seq_bits)
        Last data frame received in sequence (cumulative ACK to send).
    nak : Out(1)
        A frame was lost since the last in-sequence one: ask for a replay.
    credit_totals : Out(ArrayLayout(credit_bits, vcs))
        Flits the local consumers have taken per VC, modulo ``2**credit_bits``.
    peer_valid : Out(1)
        One-cycle pulse: a frame passed its CRC; ``peer_*`` hold what it said.
    peer_ack, peer_nak, peer_credits : Out
        The ACK, NAK and credit totals the peer sent in that frame.
    expected_seq : Out(seq_bits)
        Sequence number of the next data frame to accept.
    status : Out(ReceiverStatus)
    """

    def __init__(self, params: LinkParams):
        self.params = params
        p = params
        super().__init__({
            "beats": In(stream.Signature(p.beat_width)),
            "o": Out(stream.Signature(p.flit_width)).array(p.vcs),
            "ack": Out(p.seq_bits),
            "nak": Out(1),
            "credit_totals": Out(data.ArrayLayout(p.credit_bits, p.vcs)),
            "peer_valid": Out(1),
            "peer_ack": Out(p.seq_bits),
            "peer_nak": Out(1),
            "peer_credits": Out(data.ArrayLayout(p.credit_bits, p.vcs)),
            "expected_seq": Out(p.seq_bits),
            "status": Out(ReceiverStatus(p)),
        })
        #: The per-VC receive buffers (made here so that formal properties can name them).
        self.buffers = [CommitFifo(p.flit_width, p.rx_buffer_depth, p.frame_flits)
                        for _ in range(p.vcs)]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        W = p.beat_width

        fifos = self.buffers
        for vc, fifo in enumerate(fifos):
            m.submodules[f"buffer_{vc}"] = fifo
            wiring.connect(m, fifo.r, wiring.flipped(self.o[vc]))
        # `flits` steps by a frame's count, below; the others count events.
        counters = add_event_counters(m, self.status, [
            name for (name,), _, _ in self.status.signature.flatten(self.status)
            if name != "flits"], COUNTER_WIDTH)

        m.submodules.crc = checker = CRC(data_width=W).create()

        beat = self.beats.payload
        take = self.beats.valid
        m.d.comb += self.beats.ready.eq(1)
        index = Signal(range(p.frame_beats))
        with m.If(take):
            m.d.sync += index.eq(index + 1)
            with m.If(index == p.crc_beat):
                m.d.sync += index.eq(0)
        m.d.comb += [
            checker.start.eq(take & (index == 0)),
            checker.valid.eq(take & (index != p.crc_beat)),
            checker.data.eq(beat),
        ]

        # Header and trailer, captured beat by beat.
        header_bits = Signal(p.header_beats * W)
        trailer_bits = Signal(p.trailer_beats * W)
        header = data.View(p.header_layout, header_bits[:p.header_layout.size])
        trailer = data.View(p.trailer_layout, trailer_bits[:p.trailer_layout.size])
        for n in range(p.header_beats):
            with m.If(take & (index == n)):
                m.d.sync += header_bits[n * W:(n + 1) * W].eq(beat)
        for n in range(p.trailer_beats):
            with m.If(take & (index == p.first_trailer_beat + n)):
                m.d.sync += trailer_bits[n * W:(n + 1) * W].eq(beat)

        # Flit slots: assemble each flit and write it tentatively to its VC's buffer.
        in_slots = Signal()
        m.d.comb += in_slots.eq((index >= p.first_slot_beat) & (index < p.first_trailer_beat))
        flit_beat = Signal(range(p.beats_per_flit))
        flit = Signal(p.flit_width)
        with m.If(take & in_slots):
            m.d.sync += flit_beat.eq(flit_beat + 1)
            with m.If(flit_beat == p.beats_per_flit - 1):
                m.d.sync += flit_beat.eq(0)
        with m.If(take & (index == 0)):
            m.d.sync += flit_beat.eq(0)
        whole_flit = Cat(flit[W:], beat) if p.beats_per_flit > 1 else beat
        with m.If(take & in_slots):
            m.d.sync += flit.eq(whole_flit)
        flit_done = Signal()
        m.d.comb += flit_done.eq(take & in_slots & (flit_beat == p.beats_per_flit - 1))

        overrun = Signal()    # a slot found no room: the frame cannot be committed
        with m.If(take & (index == 0)):
            m.d.sync += overrun.eq(0)
        for vc, fifo in enumerate(fifos):
            m.d.comb += [
                fifo.w_data.eq(whole_flit),
                fifo.w_en.eq(flit_done & (header.vc == vc)),
            ]
            with m.If(flit_done & (header.vc == vc) & ~fifo.w_rdy):
                m.d.sync += overrun.eq(1)

        # End of frame: check and decide. (Range checks only where the field can overflow.)
        vc_valid = (header.vc < p.vcs) if p.vcs < 1 << p.vc_bits else 1
        count_valid = ((trailer.count <= p.frame_flits)
                       if p.frame_flits < (1 << p.count_bits) - 1 else 1)
        frame_end = Signal()
        crc_ok = Signal()
        sane = Signal()
        in_sequence = Signal()
        duplicate = Signal()
        is_data = Signal()
        m.d.comb += [
            frame_end.eq(take & (index == p.crc_beat)),
            crc_ok.eq(beat[:CRC.crc_width] == checker.crc),
            sane.eq(vc_valid & count_valid & ~overrun),
            is_data.eq(trailer.count != 0),
            in_sequence.eq(header.seq == self.expected_seq),
            # Behind the expected one by at most half the sequence space: a replayed frame.
            duplicate.eq(((self.expected_seq - header.seq)[:p.seq_bits] - 1)[:p.seq_bits]
                         < (1 << (p.seq_bits - 1))),
        ]
        accept = Signal()
        m.d.comb += accept.eq(frame_end & crc_ok & sane & is_data & in_sequence)
        for vc, fifo in enumerate(fifos):
            m.d.comb += [
                fifo.settle.eq(frame_end),
                fifo.keep.eq((accept & (header.vc == vc)).replicate(len(fifo.keep))
                             & trailer.count),
            ]

        m.d.comb += [
            self.peer_valid.eq(frame_end & crc_ok),
            self.peer_ack.eq(header.ack),
            self.peer_nak.eq(header.nak),
            self.peer_credits.eq(trailer.credits),
            self.ack.eq(self.expected_seq - 1),
        ]
        with m.If(accept):
            m.d.sync += [self.expected_seq.eq(self.expected_seq + 1), self.nak.eq(0)]
        lost = Signal()
        m.d.comb += lost.eq(frame_end & (~crc_ok | (crc_ok & sane & is_data & ~in_sequence
                                                     & ~duplicate)))
        with m.If(lost):
            m.d.sync += self.nak.eq(1)

        m.d.comb += [
            counters["frames_ok"].eq(frame_end & crc_ok),
            counters["data_frames"].eq(accept),
            counters["crc_errors"].eq(frame_end & ~crc_ok),
            counters["duplicates"].eq(frame_end & crc_ok & sane & is_data & duplicate),
            counters["out_of_order"].eq(frame_end & crc_ok & sane & is_data & ~in_sequence
                                        & ~duplicate),
            counters["protocol_errors"].eq(frame_end & crc_ok & ~sane),
        ]
        flits = self.status.flits
        stepped = Signal(COUNTER_WIDTH + 1)
        m.d.comb += stepped.eq(flits + trailer.count)
        with m.If(accept):
            m.d.sync += flits.eq(Mux(stepped[-1], (1 << COUNTER_WIDTH) - 1, stepped))

        # Credits: one per flit a local consumer takes, as a running total per VC.
        for vc in range(p.vcs):
            with m.If(self.o[vc].valid & self.o[vc].ready):
                m.d.sync += self.credit_totals[vc].eq(self.credit_totals[vc] + 1)
        return m
