"""Link transmitter: flits in, per VC under credit control, framed and sent as beats.

Frames go out back to back, one beat per cycle while the lanes are ready. At the start of
each frame the transmitter picks, in order: a frame to replay (after a NAK or a replay
timeout, go-back-N from the oldest unacknowledged one), a new data frame (a VC with a flit
and a credit, round-robin among VCs, while fewer than ``replay_frames`` are unacknowledged),
or a control frame (ACK, NAK and credits only). A new frame takes flits of its VC into
consecutive slots while they keep coming and credits last; the rest of the slots are zero.
Its header and flit beats are kept in the replay buffer until the peer acknowledges them; a
replayed frame is read from there, with a fresh ACK, NAK, trailer and CRC.

The peer's ACK and NAK come from its frames' headers, as soon as a header has passed its own
CRC; its credit totals from its trailers, once a frame has passed the frame CRC. The peer
repeats its NAK in every header until the frame it expects arrives, so a lost NAK costs one
frame, not a timeout. A NAK rewinds unless it is stale: from a rewind until the replay of the
oldest unacknowledged frame has started and ``nak_holdoff`` cycles more, the peer cannot yet
have seen the replay, so its NAKs for that frame are the old ones; a NAK that comes with ACK
progress is always new.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import add_event_counters
from .frame import CRC, LinkParams, header_crc

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
    peer_header_valid, peer_ack, peer_nak : In
        From the local receiver: a header passed its CRC; the ACK and NAK it carried.
    peer_valid, peer_credits : In
        From the local receiver: a frame passed its CRC; the credit totals it carried.
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
            "peer_header_valid": In(1),
            "peer_valid": In(1),
            "peer_ack": In(p.seq_bits),
            "peer_nak": In(1),
            "peer_credits": In(data.ArrayLayout(p.credit_bits, p.vcs)),
            "status": Out(TransmitterStatus(p)),
        })
        #: The peer's last cumulative credit totals (made here so that formal properties can
        #: name them).
        self.last_totals = Signal(data.ArrayLayout(p.credit_bits, p.vcs))
        #: In the first cycle of a frame: its sequence number and whether it is a data frame
        #: (the header, later in the frame, says so on the wire).
        self.start_seq = Signal(p.seq_bits)
        self.start_data = Signal()

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
        # Read one beat ahead (a registered read: block RAM), so that the replay buffer is not
        # on a path with the beat multiplexer and the CRC.
        replay_read = replay.read_port()

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
        m.d.comb += [self.start_seq.eq(decided_seq),
                     self.start_data.eq(decided_kind != KIND_CONTROL)]
        with m.If(start):
            m.d.sync += [kind.eq(decided_kind), cur_seq.eq(decided_seq), cur_vc.eq(decided_vc),
                         filled.eq(0), closed.eq(0), padding.eq(1)]
            with m.If(decided_kind == KIND_NEW):
                m.d.sync += rr_last.eq(pick)

        # What the frame's fields are this cycle (the decision applies from its first beat).
        first = index == 0
        frame_seq = Mux(first, decided_seq, cur_seq)
        frame_vc = Mux(first, decided_vc, cur_vc)
        frame_kind = Mux(first, decided_kind, kind)

        # Header, after the first `header_start` slot beats (see `frame.py`).
        H0, HB = p.header_start, p.header_beats
        header_first = H0 == 0
        live_header = Signal(p.header_layout)
        m.d.comb += [
            live_header.vc.eq(frame_vc),
            live_header.data.eq(frame_kind != KIND_CONTROL),
            live_header.seq.eq(frame_seq),
            live_header.ack.eq(self.send_ack),
            live_header.nak.eq(self.send_nak),
            live_header.check.eq(header_crc(live_header.as_value()[:p.header_field_bits],
                                            p.header_crc_width)),
        ]
        # A header of several beats is the one of its first beat (its CRC covers it).
        sent_header = Signal(p.header_layout)
        with m.If(send & (index == H0)):
            m.d.sync += sent_header.eq(live_header)
        header = Mux(index == H0, live_header.as_value(), sent_header.as_value())
        header_bits = Cat(header, Const(0, HB * W - p.header_layout.size))

        # Flit slots: every beat before the trailer but the header's.
        in_header = Signal()
        in_slots = Signal()
        m.d.comb += [
            in_header.eq((index >= H0) & (index < H0 + HB)),
            in_slots.eq((index < p.first_trailer_beat) & ~in_header),
        ]
        slot_beat = Signal(beat_addr_bits)  # beat within the slot region
        m.d.comb += slot_beat.eq(Mux(index >= H0 + HB, index - HB, index))
        flit_beat = Signal(range(p.beats_per_flit))
        with m.If(send & in_slots):
            m.d.sync += flit_beat.eq(Mux(flit_beat == p.beats_per_flit - 1, 0, flit_beat + 1))
        with m.If(start):
            # Slot 0 starts with the frame unless the header comes first.
            m.d.sync += flit_beat.eq(0 if header_first else 1 % p.beats_per_flit)

        # A new frame takes its first flit in its first cycle (so a data frame always has
        # one, even if the source then drops `valid`), then one at the first beat of each
        # further slot, until one is missing or the credits run out.
        source_valid = Signal()
        source_payload = Signal(p.flit_width)
        source_vc = frame_vc
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
        m.d.comb += first_slot.eq(slot_beat < p.beats_per_flit)
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
            # With slot 0 first, its first beat goes out now.
            m.d.sync += [held.eq(source_payload if header_first else source_payload >> W),
                         filled.eq(1), padding.eq(0)]
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
        if not header_first:
            with m.Elif(first):
                m.d.comb += new_beat.eq(Mux(take_first, source_payload[:W], 0))
        with m.Else():
            m.d.comb += new_beat.eq(Mux(padding, 0, held[:W]))

        # Replay buffer: header beats are rebuilt; flit beats are kept.
        m.d.comb += [
            replay_write.addr.eq(Cat(slot_beat, frame_seq[:slot_bits])),
            replay_write.data.eq(new_beat),
            replay_write.en.eq(send & in_slots & (frame_kind == KIND_NEW)),
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
        for n in range(HB):
            with m.If(index == H0 + n):
                m.d.comb += beat.eq(header_bits[n * W:(n + 1) * W])
        with m.If(in_slots):
            m.d.comb += beat.eq(Mux(frame_kind == KIND_REPLAY, replay_read.data, new_beat))
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
            acked.eq(self.peer_header_valid & ((self.peer_ack - base)[:S] < outstanding)),
            new_base.eq(Mux(acked, self.peer_ack + 1, base)),
        ]
        # A NAK is new unless the peer cannot yet have seen the replay of the oldest frame:
        # from a rewind (`armed`) until its replay started `nak_holdoff` cycles ago (`holdoff`),
        # with no ACK progress since.
        armed = Signal()
        holdoff = Signal(range(p.nak_holdoff + 1))
        nak_now = Signal()
        m.d.comb += nak_now.eq(self.peer_header_valid & self.peer_nak
                               & (acked | (~armed & (holdoff == 0))))

        timer = Signal(range(p.replay_timeout + 1))
        timeout = Signal()
        m.d.comb += timeout.eq(timer == p.replay_timeout)
        rewind = Signal()
        m.d.comb += rewind.eq((nak_now | timeout) & (next_after != new_base))
        with m.If(rewind):
            m.d.sync += [armed.eq(1), holdoff.eq(0)]
        with m.Elif(acked):
            m.d.sync += [armed.eq(0), holdoff.eq(0)]
        with m.Elif(begin_replay & armed):
            m.d.sync += [armed.eq(0), holdoff.eq(p.nak_holdoff)]
        with m.Elif(holdoff != 0):
            m.d.sync += holdoff.eq(holdoff - 1)
        # The timer restarts with each ACK progress, rewind, and start of the replay a rewind
        # asked for (which may start up to a frame after the rewind).
        with m.If(acked | rewind | (begin_replay & armed) | (outstanding == 0)):
            m.d.sync += timer.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)

        # Keep the replay position inside the window when an ACK moves its start past it.
        replay_behind = Signal()
        m.d.comb += replay_behind.eq((replay_after - new_base)[:S] > (next_after - new_base)[:S])
        m.d.sync += [base.eq(new_base), next_seq.eq(next_after)]
        replay_seq_next = Signal(S)      # replay_seq's next value
        m.d.comb += replay_seq_next.eq(Mux(rewind | replay_behind, new_base, replay_after))
        m.d.sync += replay_seq.eq(replay_seq_next)

        # The replay buffer read for the beat that goes out next cycle: that beat's slot beat,
        # in the frame going out now, or, when the next beat starts a frame, in the frame
        # replay_seq will name then (a replay starts from it).
        next_index = Signal(range(p.frame_beats))
        m.d.comb += next_index.eq(Mux(send, Mux(index == p.crc_beat, 0, index + 1), index))
        next_slot_beat = Signal(beat_addr_bits)
        m.d.comb += next_slot_beat.eq(Mux(next_index >= H0 + HB, next_index - HB, next_index))
        read_seq = Signal(S)
        m.d.comb += read_seq.eq(Mux(next_index == 0, replay_seq_next, frame_seq))
        m.d.comb += replay_read.addr.eq(Cat(next_slot_beat, read_seq[:slot_bits]))

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
