"""Link transmitter: flits in, per VC under credit control, framed and sent as beats.

Frames go out back to back, one beat per cycle while the lanes are ready. At the start of
each frame the transmitter picks, in order: a frame to replay (after a NAK or a replay
timeout, go-back-N from the oldest unacknowledged one), a new data frame (a VC with a flit
and a credit, round-robin among VCs, while fewer than ``replay_frames`` are unacknowledged),
or a control frame (ACK, NAK and credits only). A new frame takes flits of its VC into
consecutive slots while they keep coming and credits last; the rest of the slots are zero.
Its header and flit beats are kept in the replay buffer until the peer acknowledges them; a
replayed frame is read from there, with a fresh ACK, NAK, trailer and CRC.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import add_event_counters
from .frame import CRC, LinkParams

__all__ = ["LinkTransmitter", "TransmitterStatus"]

COUNTER_WIDTH = 32


def TransmitterStatus(params: LinkParams) -> wiring.Signature:
    """Counters of a transmitter (saturating, ``COUNTER_WIDTH`` bits) and its credits."""
    return wiring.Signature({
        **{name: Out(COUNTER_WIDTH) for name in (
            "frames",          # frames sent, of every kind
            "data_frames",     # new data frames sent
            "flits",           # flits sent in new data frames
            "replayed_frames",  # data frames sent again
            "naks",            # replays started by a NAK
            "timeouts",        # replays started by the replay timer
        )},
        "credits": Out(data.ArrayLayout(range(params.rx_credits + 1), params.vcs),
                       init=[params.rx_credits] * params.vcs),
        "outstanding": Out(range(params.replay_frames + 1)),
    })


class LinkTransmitter(wiring.Component):
    """Sending half of a link adapter.

    Members
    -------
    i : In(stream.Signature(flit_width)).array(vcs)
        Flits to send, per VC. A flit is taken only with a credit for its VC.
    beats : Out(stream.Signature(beat_width))
        Beats to the lanes; ``valid`` is always high (idle means control frames).
    send_ack, send_nak, send_credits : In
        From the local receiver: what to tell the peer (cumulative ACK, NAK, credit totals).
    peer_valid, peer_ack, peer_nak, peer_credits : In
        From the local receiver: what the peer said in a frame that passed its CRC.
    status : Out(TransmitterStatus)
    """

    def __init__(self, params: LinkParams):
        if params.replay_frames & (params.replay_frames - 1):
            raise ValueError(f"replay_frames must be a power of two, not "
                             f"{params.replay_frames}")
        self.params = params
        p = params
        super().__init__({
            "i": In(stream.Signature(p.flit_width)).array(p.vcs),
            "beats": Out(stream.Signature(p.beat_width)),
            "send_ack": In(p.seq_bits),
            "send_nak": In(1),
            "send_credits": In(data.ArrayLayout(p.credit_bits, p.vcs)),
            "peer_valid": In(1),
            "peer_ack": In(p.seq_bits),
            "peer_nak": In(1),
            "peer_credits": In(data.ArrayLayout(p.credit_bits, p.vcs)),
            "status": Out(TransmitterStatus(p)),
        })
        #: The peer's last cumulative credit totals (made here so that formal properties can
        #: name them).
        self.last_totals = Signal(data.ArrayLayout(p.credit_bits, p.vcs))

    def elaborate(self, platform):
        m = Module()
        p = self.params
        W, S = p.beat_width, p.seq_bits
        R = p.replay_frames
        slot_bits = (R - 1).bit_length()
        beat_addr_bits = max(1, (p.slot_beats - 1).bit_length())

        counters = add_event_counters(m, self.status, [
            name for (name,), _, _ in self.status.signature.flatten(self.status)
            if name not in ("credits", "outstanding")], COUNTER_WIDTH)

        # --- Sequence state -----------------------------------------------------------------
        base = Signal(S)          # oldest unacknowledged data frame
        next_seq = Signal(S)      # sequence number of the next new data frame
        replay_seq = Signal(S)    # next frame to replay; == next_seq when not replaying
        outstanding = Signal(S)
        m.d.comb += [outstanding.eq(next_seq - base), self.status.outstanding.eq(outstanding)]

        # --- Frame walker -------------------------------------------------------------------
        index = Signal(range(p.frame_beats))
        send = Signal()
        m.d.comb += [self.beats.valid.eq(1), send.eq(self.beats.valid & self.beats.ready)]
        with m.If(send):
            m.d.sync += index.eq(Mux(index == p.crc_beat, 0, index + 1))

        KIND_CONTROL, KIND_NEW, KIND_REPLAY = 0, 1, 2
        kind = Signal(2)
        cur_seq = Signal(S)
        cur_vc = Signal(p.vc_bits)
        filled = Signal(range(p.frame_flits + 1))
        closed = Signal()                 # a slot went empty: the rest of the frame is padding
        padding = Signal()                # the current slot is empty

        # Per replay slot: the VC and count of the frame it holds.
        slot_vc = Signal(data.ArrayLayout(p.vc_bits, R))
        slot_count = Signal(data.ArrayLayout(range(p.frame_flits + 1), R))
        m.submodules.replay = replay = memory.Memory(shape=W, depth=R << beat_addr_bits,
                                                     init=[])
        replay_write = replay.write_port()
        replay_read = replay.read_port(domain="comb")

        # Credits per VC, and the peer's last credit totals.
        credits = self.status.credits
        last_totals = self.last_totals

        # Decision at the start of a frame.
        replaying = Signal()
        m.d.comb += replaying.eq(replay_seq != next_seq)
        eligible = Signal(p.vcs)
        for vc in range(p.vcs):
            m.d.comb += eligible[vc].eq(self.i[vc].valid & (credits[vc] != 0))
        window_open = Signal()
        m.d.comb += window_open.eq(outstanding < R)
        rr_last = Signal(p.vc_bits)  # VC of the last new data frame
        pick = Signal(p.vc_bits)
        # Round-robin: the first eligible VC after rr_last.
        for offset in reversed(range(1, p.vcs + 1)):
            candidate = Signal(p.vc_bits, name=f"candidate_{offset}")
            m.d.comb += candidate.eq((rr_last + offset) % p.vcs)
            with m.If(eligible.bit_select(candidate, 1)):
                m.d.comb += pick.eq(candidate)

        start = Signal()
        m.d.comb += start.eq(send & (index == 0))
        decided_kind = Signal(2)
        decided_seq = Signal(S)
        decided_vc = Signal(p.vc_bits)
        with m.If(replaying):
            m.d.comb += [decided_kind.eq(KIND_REPLAY), decided_seq.eq(replay_seq),
                         decided_vc.eq(slot_vc[replay_seq[:slot_bits]])]
        with m.Elif((eligible != 0) & window_open):
            m.d.comb += [decided_kind.eq(KIND_NEW), decided_seq.eq(next_seq),
                         decided_vc.eq(pick)]
        with m.Else():
            m.d.comb += [decided_kind.eq(KIND_CONTROL), decided_seq.eq(next_seq),
                         decided_vc.eq(0)]
        with m.If(start):
            m.d.sync += [kind.eq(decided_kind), cur_seq.eq(decided_seq), cur_vc.eq(decided_vc),
                         filled.eq(0), closed.eq(0), padding.eq(1)]
            with m.If(decided_kind == KIND_NEW):
                m.d.sync += rr_last.eq(pick)

        # What the frame's fields are this cycle (the decision applies from its first beat).
        frame_seq = Mux(index == 0, decided_seq, cur_seq)
        frame_vc = Mux(index == 0, decided_vc, cur_vc)

        header = Signal(p.header_layout)
        m.d.comb += [
            header.vc.eq(frame_vc),
            header.seq.eq(frame_seq),
            header.ack.eq(self.send_ack),
            header.nak.eq(self.send_nak),
        ]
        header_bits = Cat(header.as_value(), Const(0, p.header_beats * W - p.header_layout.size))

        # Flit slots.
        in_slots = Signal()
        m.d.comb += in_slots.eq((index >= p.first_slot_beat) & (index < p.first_trailer_beat))
        slot_beat = Signal(beat_addr_bits)  # beat within the slot region
        m.d.comb += slot_beat.eq(index - p.first_slot_beat)
        flit_beat = Signal(range(p.beats_per_flit))
        with m.If(send & in_slots):
            m.d.sync += flit_beat.eq(Mux(flit_beat == p.beats_per_flit - 1, 0, flit_beat + 1))
        with m.If(start):
            m.d.sync += flit_beat.eq(0)

        # A new frame takes its first flit with the header beat (so a data frame always has
        # one, even if the source then drops `valid`), then one at the first beat of each
        # further slot, until one is missing or the credits run out.
        source_valid = Signal()
        source_payload = Signal(p.flit_width)
        source_vc = Mux(index == 0, decided_vc, cur_vc)
        m.d.comb += [
            source_valid.eq(self.i[0].valid),
            source_payload.eq(self.i[0].payload),
        ]
        for vc in range(1, p.vcs):
            with m.If(source_vc == vc):
                m.d.comb += [source_valid.eq(self.i[vc].valid),
                             source_payload.eq(self.i[vc].payload)]
        credit_ok = Signal()
        m.d.comb += credit_ok.eq(credits[source_vc] != 0)
        first_slot = Signal()
        m.d.comb += first_slot.eq(index < p.first_slot_beat + p.beats_per_flit)
        take_first = Signal()
        take_more = Signal()
        take = Signal()
        m.d.comb += [
            take_first.eq(start & (decided_kind == KIND_NEW)),
            take_more.eq(send & in_slots & ~first_slot & (kind == KIND_NEW) & (flit_beat == 0)
                         & ~closed & source_valid & credit_ok),
            take.eq(take_first | take_more),
        ]
        for vc in range(p.vcs):
            m.d.comb += self.i[vc].ready.eq(take & (source_vc == vc))
        held = Signal(p.flit_width)       # the flit being sent, shifted one beat per cycle
        with m.If(take_first):
            m.d.sync += [held.eq(source_payload), filled.eq(1), padding.eq(0)]
        with m.Elif(send & in_slots & (flit_beat == 0) & ~first_slot):
            m.d.sync += padding.eq(~take_more)
            with m.If(take_more):
                m.d.sync += [held.eq(source_payload >> W), filled.eq(filled + 1)]
            with m.Else():
                m.d.sync += [held.eq(0), closed.eq(1)]
        with m.Elif(send & in_slots):
            m.d.sync += held.eq(held >> W)
        new_beat = Signal(W)
        with m.If((flit_beat == 0) & ~first_slot):
            m.d.comb += new_beat.eq(Mux(take_more, source_payload[:W], 0))
        with m.Else():
            m.d.comb += new_beat.eq(Mux(padding, 0, held[:W]))

        # Replay buffer: header beats are rebuilt; flit beats are kept.
        m.d.comb += [
            replay_write.addr.eq(Cat(slot_beat, cur_seq[:slot_bits])),
            replay_write.data.eq(new_beat),
            replay_write.en.eq(send & in_slots & (kind == KIND_NEW)),
            replay_read.addr.eq(Cat(slot_beat, cur_seq[:slot_bits])),
        ]

        trailer = Signal(p.trailer_layout)
        m.d.comb += [
            trailer.count.eq(Mux(kind == KIND_NEW, filled,
                                 Mux(kind == KIND_REPLAY, slot_count[cur_seq[:slot_bits]], 0))),
            trailer.credits.eq(self.send_credits),
        ]
        trailer_bits = Cat(trailer.as_value(),
                           Const(0, p.trailer_beats * W - p.trailer_layout.size))
        with m.If(send & (index == p.first_trailer_beat) & (kind == KIND_NEW)):
            m.d.sync += [slot_count[cur_seq[:slot_bits]].eq(filled),
                         slot_vc[cur_seq[:slot_bits]].eq(cur_vc)]

        m.submodules.crc = generator = CRC(data_width=W).create()
        beat = Signal(W)
        for n in range(p.header_beats):
            with m.If(index == n):
                m.d.comb += beat.eq(header_bits[n * W:(n + 1) * W])
        with m.If(in_slots):
            m.d.comb += beat.eq(Mux(kind == KIND_REPLAY, replay_read.data, new_beat))
        for n in range(p.trailer_beats):
            with m.If(index == p.first_trailer_beat + n):
                m.d.comb += beat.eq(trailer_bits[n * W:(n + 1) * W])
        with m.If(index == p.crc_beat):
            m.d.comb += beat.eq(generator.crc)
        m.d.comb += [
            self.beats.payload.eq(beat),
            generator.start.eq(start),
            generator.valid.eq(send & (index != p.crc_beat)),
            generator.data.eq(beat),
        ]

        # --- Sequence bookkeeping, ACK/NAK, replay timer, credits ---------------------------
        begin_new = Signal()
        begin_replay = Signal()
        m.d.comb += [
            begin_new.eq(start & (decided_kind == KIND_NEW)),
            begin_replay.eq(start & (decided_kind == KIND_REPLAY)),
        ]
        next_after = Signal(S)
        replay_after = Signal(S)
        m.d.comb += [
            next_after.eq(next_seq + begin_new),
            replay_after.eq(replay_seq + (begin_new | begin_replay)),
        ]

        # An ACK inside the window releases frames up to and including it.
        acked = Signal()
        new_base = Signal(S)
        m.d.comb += [
            acked.eq(self.peer_valid & ((self.peer_ack - base)[:S] < outstanding)),
            new_base.eq(Mux(acked, self.peer_ack + 1, base)),
        ]
        nak_seen = Signal()
        nak_now = Signal()
        m.d.comb += nak_now.eq(self.peer_valid & self.peer_nak & ~nak_seen)
        with m.If(self.peer_valid):
            m.d.sync += nak_seen.eq(self.peer_nak)

        timer = Signal(range(p.replay_timeout + 1))
        timeout = Signal()
        m.d.comb += timeout.eq(timer == p.replay_timeout)
        rewind = Signal()
        m.d.comb += rewind.eq((nak_now | timeout) & (next_after != new_base))
        with m.If(acked | rewind | (outstanding == 0)):
            m.d.sync += timer.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)

        # Keep the replay position inside the window when an ACK moves its start past it.
        replay_behind = Signal()
        m.d.comb += replay_behind.eq((replay_after - new_base)[:S] > (next_after - new_base)[:S])
        m.d.sync += [base.eq(new_base), next_seq.eq(next_after)]
        with m.If(rewind | replay_behind):
            m.d.sync += replay_seq.eq(new_base)
        with m.Else():
            m.d.sync += replay_seq.eq(replay_after)

        for vc in range(p.vcs):
            delta = Signal(p.credit_bits, name=f"credit_delta_{vc}")
            m.d.comb += delta.eq(Mux(self.peer_valid,
                                     self.peer_credits[vc] - last_totals[vc], 0))
            taken = Signal(name=f"credit_taken_{vc}")
            m.d.comb += taken.eq(self.i[vc].valid & self.i[vc].ready)
            m.d.sync += credits[vc].eq(credits[vc] + delta - taken)
            with m.If(self.peer_valid):
                m.d.sync += last_totals[vc].eq(self.peer_credits[vc])

        m.d.comb += [
            counters["frames"].eq(start),
            counters["data_frames"].eq(begin_new),
            counters["flits"].eq(take),
            counters["replayed_frames"].eq(begin_replay),
            counters["naks"].eq(nak_now & rewind),
            counters["timeouts"].eq(timeout & ~nak_now & rewind),
        ]
        return m
