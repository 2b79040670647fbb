"""Link receiver: frames in, CRC-checked flits out, per VC, exactly once and in order.

Each flit is written to its VC's :class:`~chipknit.rtl.link.commit_fifo.CommitFifo` as it
arrives and becomes visible only when the frame's CRC has passed and its sequence number is
the one expected (store-and-forward at frame granularity: a flit's delivery waits for the end
of its frame). A frame that fails is taken back whole, counted, and answered with a NAK.
The CRC beat is compared into a register and the frame's end is decided a cycle later
(``LinkParams.late_check``), so no path runs from the lanes through the compare to the buffers.
Flits leave through two output registers per VC (one cycle), so that ``o`` comes from
flip-flops and the consumer's ``ready`` reaches neither the buffer's RAM nor its fill level.

The header has its own CRC, checked in the cycle after its last beat: the peer's ACK and NAK
in a good header go to the local transmitter at once (``peer_header_valid``), a frame earlier
than the frame CRC would allow. The NAK this end sends is set as soon as a frame is known to
be lost — a header that fails its CRC, a data header ahead of the expected sequence number,
or the expected frame failing its frame CRC — and stays set, in every header sent, until the
expected frame arrives.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import add_event_counters
from .commit_fifo import CommitFifo
from .frame import CRC, LinkParams, header_crc

__all__ = ["LinkReceiver", "ReceiverStatus"]


def ReceiverStatus(params: LinkParams) -> wiring.Signature:
    """Counters of a receiver (all saturating, ``params.counter_width`` bits)."""
    return wiring.Signature({name: Out(params.counter_width) for name in (
        "frames_ok",        # frames with a good CRC (data and control)
        "data_frames",      # data frames accepted in sequence
        "flits",            # flits accepted (committed)
        "crc_errors",       # frames whose CRC failed
        "duplicates",       # good data frames already received (after a replay)
        "out_of_order",     # good data frames ahead of the expected one (one was lost)
        "header_errors",    # headers whose own CRC failed
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
    peer_header_valid : Out(1)
        One-cycle pulse: a header passed its CRC; ``peer_ack`` and ``peer_nak`` hold what it
        said.
    peer_valid : Out(1)
        One-cycle pulse, the cycle after a frame passed its CRC; ``peer_credits`` hold its
        credit totals.
    peer_ack, peer_nak, peer_credits : Out
        The ACK, NAK and credit totals the peer sent.
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
            "peer_header_valid": Out(1),
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
        #: High when a frame's CRC has passed: in the cycle after its CRC beat arrives
        #: (``params.late_check``: the compare is registered), else in that cycle.
        self.frame_ok = Signal()
        #: Per VC, flits in the output registers (read from the buffer, not yet taken).
        self.held = [Signal(range(3), name=f"held_{vc}") for vc in range(p.vcs)]

    def elaborate(self, platform):
        m = Module()
        p = self.params
        W = p.beat_width

        fifos = self.buffers
        for vc, fifo in enumerate(fifos):
            m.submodules[f"buffer_{vc}"] = fifo
            if not p.output_skid:
                # `o` straight from the buffer's registered read (`LinkParams.output_skid`).
                m.d.comb += [self.o[vc].valid.eq(fifo.r.valid),
                             self.o[vc].payload.eq(fifo.r.payload),
                             fifo.r.ready.eq(self.o[vc].ready), self.held[vc].eq(0)]
                continue
            # Two output registers per VC (a skid buffer): `o` comes from flip-flops, not from
            # the buffer's block RAM, and the buffer reads whenever the second register is
            # free, so the consumer's `ready` (which may depend on the payload) reaches neither
            # the RAM nor the buffer's fill level. Costs one cycle of latency.
            main, spare = (Signal(p.flit_width, name=f"out_{vc}_{n}") for n in ("main", "spare"))
            main_valid, spare_valid = (Signal(name=f"out_{vc}_{n}_valid")
                                       for n in ("main", "spare"))
            m.d.comb += [fifo.r.ready.eq(~spare_valid),
                         self.held[vc].eq(main_valid + spare_valid),
                         self.o[vc].valid.eq(main_valid), self.o[vc].payload.eq(main)]
            with m.If(~main_valid | self.o[vc].ready):
                with m.If(spare_valid):
                    m.d.sync += [main.eq(spare), spare_valid.eq(0)]
                with m.Else():
                    m.d.sync += [main.eq(fifo.r.payload), main_valid.eq(fifo.r.valid)]
            with m.Elif(~spare_valid):
                m.d.sync += [spare.eq(fifo.r.payload), spare_valid.eq(fifo.r.valid)]
        # `flits` steps by a frame's count, below; the others count events.
        counters = add_event_counters(m, self.status, [
            name for (name,), _, _ in self.status.signature.flatten(self.status)
            if name != "flits"], p.counter_width)

        m.submodules.crc = checker = CRC(data_width=W).create()

        beat = self.beats.payload
        take = self.beats.valid
        m.d.comb += self.beats.ready.eq(1)
        index = Signal(range(p.frame_beats))
        H0, HB = p.header_start, p.header_beats

        # Where in the frame this beat is, decoded a beat ahead into registers (flit slots:
        # every beat before the trailer but the header's).
        def position(i):
            return {"first": i == 0, "at_crc": i == p.crc_beat,
                    "last_header": i == H0 + HB - 1,
                    "last_trailer": i == p.first_trailer_beat + p.trailer_beats - 1,
                    "in_slots": (i < p.first_trailer_beat) & ~((i >= H0) & (i < H0 + HB))}
        # At reset the first beat of a frame is expected: index 0.
        at_init = {"first": True, "at_crc": p.crc_beat == 0, "last_header": H0 + HB == 1,
                   "last_trailer": False, "in_slots": H0 > 0}
        at = {name: Signal(init=at_init[name], name=name) for name in position(index)}
        index_next = Signal(range(p.frame_beats))
        m.d.comb += index_next.eq(Mux(index == p.crc_beat, 0, index + 1))
        with m.If(take):
            m.d.sync += [index.eq(index_next),
                         *(at[name].eq(value) for name, value in position(index_next).items())]
        m.d.comb += [
            checker.start.eq(take & at["first"]),
            checker.valid.eq(take & ~at["at_crc"]),
            checker.data.eq(beat),
        ]

        # Header and trailer, captured beat by beat.
        header_bits = Signal(p.header_beats * W)
        trailer_bits = Signal(p.trailer_beats * W)
        header = data.View(p.header_layout, header_bits[:p.header_layout.size])
        trailer = data.View(p.trailer_layout, trailer_bits[:p.trailer_layout.size])
        for n in range(HB):
            with m.If(take & (index == H0 + n)):
                m.d.sync += header_bits[n * W:(n + 1) * W].eq(beat)
        # The header's own CRC, checked as its last beat arrives and used in the cycle after
        # (registered, with the header).
        header_check = Signal()
        m.d.sync += header_check.eq(take & at["last_header"])
        arriving = data.View(p.header_layout,
                             Cat(header_bits[:(HB - 1) * W], beat)[:p.header_layout.size])
        header_ok = Signal()
        m.d.sync += header_ok.eq(arriving.check == header_crc(
            arriving.as_value()[:p.header_field_bits], p.header_crc_width))
        for n in range(p.trailer_beats):
            with m.If(take & (index == p.first_trailer_beat + n)):
                m.d.sync += trailer_bits[n * W:(n + 1) * W].eq(beat)

        # Flit slots: assemble each flit and write it tentatively to every VC's buffer (the
        # header, which names the VC, may come later); the frame end commits it in one.
        in_slots = Signal()
        m.d.comb += in_slots.eq(at["in_slots"])
        flit = Signal(p.flit_width)
        if p.beats_per_flit > 1:
            flit_beat = Signal(range(p.beats_per_flit))
            with m.If(take & in_slots):
                m.d.sync += flit_beat.eq(flit_beat + 1)
                with m.If(flit_beat == p.beats_per_flit - 1):
                    m.d.sync += flit_beat.eq(0)
            with m.If(take & at["first"]):
                # Slot 0 starts with the frame unless the header comes first.
                m.d.sync += flit_beat.eq(0 if H0 == 0 else 1)
            last_beat = flit_beat == p.beats_per_flit - 1
            whole_flit = Cat(flit[W:], beat)
        else:
            last_beat, whole_flit = Const(1), beat    # every slot beat is a whole flit
        with m.If(take & in_slots):
            m.d.sync += flit.eq(whole_flit)
        flit_done = Signal()
        m.d.comb += flit_done.eq(take & in_slots & last_beat)

        overruns = Signal(p.vcs)    # per VC, a slot found no room: cannot commit there
        with m.If(take & at["first"]):
            m.d.sync += overruns.eq(0)
        for vc, fifo in enumerate(fifos):
            m.d.comb += [
                fifo.w_data.eq(whole_flit),
                fifo.w_en.eq(flit_done),
            ]
            with m.If(flit_done & ~fifo.w_rdy):
                m.d.sync += overruns[vc].eq(1)
        overrun = overruns.bit_select(header.vc, 1)

        # End of frame: check and decide. (Range checks only where the field can overflow.)
        vc_valid = (header.vc < p.vcs) if p.vcs < 1 << p.vc_bits else 1
        count_valid = ((trailer.count <= p.frame_flits)
                       if p.frame_flits < (1 << p.count_bits) - 1 else 1)
        kind_valid = header.data == (trailer.count != 0)
        frame_end = Signal()
        crc_ok = Signal()
        sane = Signal()
        in_sequence = Signal()
        duplicate = Signal()
        is_data = Signal()
        # With `late_check` the CRC compare goes into a register, and the frame end acts on it
        # a cycle after the CRC beat: the compare is then the only logic after the lanes, and
        # what the decision drives (the buffers' pointers, the NAK, the counters) starts at
        # flip-flops. Everything else it reads still holds this frame's values then.
        decide = m.d.sync if p.late_check else m.d.comb
        decide += [frame_end.eq(take & at["at_crc"]),
                   crc_ok.eq(beat[:CRC.crc_width] == checker.crc)]
        m.d.comb += [
            sane.eq(vc_valid & count_valid & kind_valid & ~overrun),
            is_data.eq(trailer.count != 0),
            in_sequence.eq(header.seq == self.expected_seq),
            # Behind the expected one by at most half the sequence space: a replayed frame.
            duplicate.eq(((self.expected_seq - header.seq)[:p.seq_bits] - 1)[:p.seq_bits]
                         < (1 << (p.seq_bits - 1))),
        ]
        # Everything but the CRC is decided as the trailer's last beat arrives, into a register
        # per VC (the header, the overruns and the expected sequence number are final by
        # then): at the CRC beat the compare only picks `commit`.
        arriving = data.View(p.trailer_layout, Cat(trailer_bits[:(p.trailer_beats - 1) * W],
                                                   beat)[:p.trailer_layout.size])
        arriving_count_valid = ((arriving.count <= p.frame_flits)
                                if p.frame_flits < (1 << p.count_bits) - 1 else 1)
        arriving_ok = Signal()
        m.d.comb += arriving_ok.eq(vc_valid & arriving_count_valid
                                   & (header.data == (arriving.count != 0)) & ~overrun
                                   & (arriving.count != 0) & in_sequence)
        would_commit = Signal(p.vcs)      # this frame commits in VC n if its CRC passes
        with m.If(take & at["last_trailer"]):
            m.d.sync += would_commit.eq(Mux(arriving_ok, 1 << header.vc, 0))
        accept = Signal()
        m.d.comb += accept.eq(frame_end & crc_ok & (would_commit != 0))
        for vc, fifo in enumerate(fifos):
            m.d.comb += [
                fifo.settle.eq(frame_end),
                # `keep` from the trailer register; the CRC check only picks `commit`.
                fifo.keep.eq(trailer.count),
                # (`count_valid` again, from the register: constant true at the default.)
                fifo.commit.eq(frame_end & crc_ok & would_commit[vc] & count_valid),
            ]

        # The peer's credit totals are used the cycle after its frame passed the CRC (they stay
        # in the trailer register until the next frame's trailer).
        m.d.comb += self.frame_ok.eq(frame_end & crc_ok)
        m.d.sync += self.peer_valid.eq(self.frame_ok)
        m.d.comb += [
            self.peer_header_valid.eq(header_check & header_ok),
            self.peer_ack.eq(header.ack),
            self.peer_nak.eq(header.nak),
            self.peer_credits.eq(trailer.credits),
            self.ack.eq(self.expected_seq - 1),
        ]
        # NAK: set when a frame is known lost, held until the expected one arrives. At the
        # header: a header that fails its CRC (it may have been the expected frame), or a good
        # header ahead of the expected one (the expected one was lost; a control frame carries
        # the sender's next sequence number, so it finds a lost last frame too). At the frame
        # end: the expected frame (by its header) failing the frame CRC or the sanity checks.
        ahead = Signal()
        m.d.comb += ahead.eq(~in_sequence & ~duplicate)
        lost = Signal()
        m.d.comb += lost.eq((header_check & (~header_ok | ahead))
                            | (frame_end & header.data & in_sequence & ~accept))
        with m.If(accept):
            m.d.sync += [self.expected_seq.eq(self.expected_seq + 1), self.nak.eq(0)]
        with m.Elif(lost):
            m.d.sync += self.nak.eq(1)

        m.d.comb += [
            counters["frames_ok"].eq(frame_end & crc_ok),
            counters["data_frames"].eq(accept),
            counters["crc_errors"].eq(frame_end & ~crc_ok),
            counters["duplicates"].eq(frame_end & crc_ok & sane & is_data & duplicate),
            counters["out_of_order"].eq(frame_end & crc_ok & sane & is_data & ~in_sequence
                                        & ~duplicate),
            counters["protocol_errors"].eq(frame_end & crc_ok & ~sane),
            counters["header_errors"].eq(header_check & ~header_ok),
        ]
        flits = self.status.flits
        stepped = Signal(p.counter_width + 1)
        m.d.comb += stepped.eq(flits + trailer.count)
        with m.If(accept):
            m.d.sync += flits.eq(Mux(stepped[-1], (1 << p.counter_width) - 1, stepped))

        # Credits: one per flit a local consumer takes, as a running total per VC.
        for vc in range(p.vcs):
            with m.If(self.o[vc].valid & self.o[vc].ready):
                m.d.sync += self.credit_totals[vc].eq(self.credit_totals[vc] + 1)
        return m
