"""Link transmitter: flits in, per VC under credit control, framed and sent as beats.

Frames go out back to back, one beat per cycle while the lanes are ready. At the start of
each frame the transmitter picks, in order: a frame to replay (after a NAK or a replay
timeout, go-back-N from the oldest unacknowledged one), a new data frame (a VC with a flit
and a credit, round-robin among VCs, while fewer than ``replay_frames`` are unacknowledged),
or a control frame (ACK, NAK and credits only); a new data frame and its VC are decided a
cycle ahead, at the previous frame's CRC beat. A new frame takes flits of its VC into
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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..block_ram import collision_free_memory, registered_read
from ..credit import add_event_counters
from .frame import CRC, LinkParams, crc_step, header_crc

__all__ = ["LinkTransmitter", "TransmitterStatus"]


def _or(values):
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result


def TransmitterStatus(params: LinkParams) -> wiring.Signature:
    """Counters of a transmitter (saturating, ``params.counter_width`` bits) and its credits."""
    return wiring.Signature({
        **{name: Out(params.counter_width) for name in (
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
        #: Per VC, ``credits != 0``, kept as a register beside the count.
        self.has_credit = Signal(p.vcs, init=(1 << p.vcs) - 1)
        #: The new data frame decided a cycle ahead (see ``elaborate``), and whether the
        #: current beat is a frame's first.
        self.early_new = Signal()
        self.early_vc = Signal(p.vc_bits)
        self.first = Signal(init=1)
        #: The registered position flags agree with the beat index, and the registers kept
        #: beside others (source select, slot-start and count registers, timeout and holdoff
        #: flags) with what they stand for (for formal proofs).
        self.position_ok = Signal()

    def elaborate(self, platform):
        m = Module()
        p = self.params
        W, S = p.beat_width, p.seq_bits
        R = p.replay_frames
        slot_bits = (R - 1).bit_length()
        beat_addr_bits = max(1, (p.slot_beats - 1).bit_length())

        counters = add_event_counters(m, self.status, [
            name for (name,), _, _ in self.status.signature.flatten(self.status)
            if name not in ("credits", "outstanding")], p.counter_width)

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
        index_next = Signal(range(p.frame_beats))
        m.d.comb += index_next.eq(Mux(index == p.crc_beat, 0, index + 1))
        first = self.first               # index == 0, as a register
        with m.If(send):
            m.d.sync += [index.eq(index_next), first.eq(index == p.crc_beat)]

        H0, HB = p.header_start, p.header_beats
        header_first = H0 == 0

        # Beat within the slot region, of this beat and of the next one, as registers kept in
        # step with `index` (the replay buffer's addresses).
        def slot_beat_of(i):
            return Mux(i >= H0 + HB, i - HB, i)[:beat_addr_bits]

        def slot_beat_init(i):
            return (i - HB if i >= H0 + HB else i) % (1 << beat_addr_bits)

        # Where in the frame this beat is, decoded from the index a beat ahead, into registers
        # (flit slots: every beat before the trailer but the header's).
        def position(i):
            header = (i >= H0) & (i < H0 + HB)
            in_slots = (i < p.first_trailer_beat) & ~header
            return {"in_slots": in_slots,
                    "first_slot": slot_beat_of(i) < p.beats_per_flit,
                    # the first beat of a slot after slot 0 (one that may take a flit)
                    "slot_start": in_slots & (slot_beat_of(i) % p.beats_per_flit == 0)
                                  & (slot_beat_of(i) >= p.beats_per_flit),
                    "at_second": i == 1,
                    "at_header": i == H0, "at_trailer": i == p.first_trailer_beat,
                    "at_last_trailer": i == p.crc_beat - 1,
                    "at_crc": i == p.crc_beat}

        def position_init(i):
            header = H0 <= i < H0 + HB
            in_slots = i < p.first_trailer_beat and not header
            return {"in_slots": in_slots,
                    "first_slot": slot_beat_init(i) < p.beats_per_flit,
                    "slot_start": (in_slots and slot_beat_init(i) % p.beats_per_flit == 0
                                   and slot_beat_init(i) >= p.beats_per_flit),
                    "at_second": i == 1,
                    "at_header": i == H0, "at_trailer": i == p.first_trailer_beat,
                    "at_last_trailer": i == p.crc_beat - 1,
                    "at_crc": i == p.crc_beat}
        at = {name: Signal(init=int(value), name=name)
              for name, value in position_init(0).items()}
        with m.If(send):
            m.d.sync += [at[name].eq(value) for name, value in position(index_next).items()]
        in_slots = at["in_slots"]
        # (And the registers kept beside others: `may_more`, `source_oh`, the trailer count.)
        may_more_ok, source_ok, count_ok, flags_ok = Signal(), Signal(), Signal(), Signal()
        m.d.comb += self.position_ok.eq(may_more_ok & source_ok & count_ok & flags_ok & Cat(
            index < p.frame_beats, first == (index == 0),
            *(at[name] == value for name, value in position(index).items())).all())

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
        # A read is used only for a replayed frame's slot beats, issued in the same frame
        # (two sends before the beat; one, for the first two beats without
        # `replay_head_registers`), when nothing is written (only new frames are), or at the
        # previous frame's CRC beat, which is no slot: no used read meets a write, so the RAM
        # need not define that case (`collision_free_memory`).
        m.submodules.replay = replay = collision_free_memory(shape=W,
                                                             depth=R << beat_addr_bits)
        replay_write = replay.write_port()
        # Read two beats ahead: the block RAM's registered read, then a register of its own
        # (`buffered`), both stepped with `send`, so that the RAM's slow clock-to-output
        # (5.8 ns on the ECP5) ends in a flip-flop, not in the beat multiplexer and the lanes.
        # A frame's first two beats, where they are slot beats, are also kept in registers,
        # one per replay slot, and replayed from there: their reads would be issued before the
        # frame starts, before the start has decided which frame to replay. Without
        # `replay_head_registers` they are read a cycle ahead instead, straight to the beat,
        # and a replay starts only if it was decided a cycle ahead (`replay_ready`).
        head_registers = p.replay_head_registers
        replay_read_addr = Signal(slot_bits + beat_addr_bits)
        replay_read_en = Signal()
        replay_read_data = registered_read(m, replay, replay_read_addr,
                                           enable=replay_read_en, name="replay_read_data")
        second_in_slots = not (H0 <= 1 < H0 + HB)
        if head_registers:
            first_beats = Signal(data.ArrayLayout(W, R))
            second_beats = Signal(data.ArrayLayout(W, R))

        # Credits per VC, and the peer's last credit totals.
        credits = self.status.credits
        last_totals = self.last_totals
        has_credit = self.has_credit

        # Decision at the start of a frame.
        replaying = Signal()      # replay_seq != next_seq, as a register (set below)
        eligible = Signal(p.vcs)
        for vc in range(p.vcs):
            m.d.comb += eligible[vc].eq(self.i[vc].valid & has_credit[vc])
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
        m.d.comb += start.eq(send & first)
        # A new data frame and its VC are decided a cycle ahead, into registers, from the
        # state of the cycle before the frame starts (its CRC beat, or a stalled first beat).
        # In that cycle no flit is taken and no frame starts, so credits and the window can
        # only grow before the start: a VC eligible then still has a credit and room. At the
        # start only the picked source's `valid` is looked at again (a source that drops it
        # gets a control frame) and a replay, asked for meanwhile, goes first.
        early_new, early_vc = self.early_new, self.early_vc
        m.d.sync += [early_new.eq((eligible != 0) & window_open), early_vc.eq(pick)]
        # At a frame's first beat the source is the early pick (`source_vc`, below, from a
        # one-hot register): its `valid` is `source_valid`. (`decided_*` matter only then.)
        early_valid = Signal()
        source_valid = Signal()
        m.d.comb += early_valid.eq(source_valid)
        decided_kind = Signal(2)
        decided_seq = Signal(S)
        decided_vc = Signal(p.vc_bits)
        # Without the head registers: the replay of `replay_seq` was decided, and its first
        # beat read, in the cycle before the frame's first (a register: `replaying` and
        # `replay_seq` then had their present values). A replay asked for or moved in that
        # cycle sends a control frame first, never a new data frame.
        replay_ready = Signal()
        replay_go = Signal()   # the replay starts with this frame
        m.d.comb += replay_go.eq(replaying if head_registers else replaying & replay_ready)
        with m.If(replay_go):
            m.d.comb += [decided_kind.eq(KIND_REPLAY), decided_seq.eq(replay_seq),
                         decided_vc.eq(slot_vc[replay_seq[:slot_bits]])]
        with m.Elif(replaying):
            m.d.comb += [decided_kind.eq(KIND_CONTROL), decided_seq.eq(next_seq),
                         decided_vc.eq(0)]
        with m.Elif(early_new & early_valid):
            m.d.comb += [decided_kind.eq(KIND_NEW), decided_seq.eq(next_seq),
                         decided_vc.eq(early_vc)]
        with m.Else():
            m.d.comb += [decided_kind.eq(KIND_CONTROL), decided_seq.eq(next_seq),
                         decided_vc.eq(0)]
        m.d.comb += [self.start_seq.eq(decided_seq),
                     self.start_data.eq(decided_kind != KIND_CONTROL)]
        with m.If(start):
            m.d.sync += [kind.eq(decided_kind), cur_seq.eq(decided_seq), cur_vc.eq(decided_vc),
                         filled.eq(0), closed.eq(0), padding.eq(1)]
            with m.If(decided_kind == KIND_NEW):
                m.d.sync += rr_last.eq(early_vc)

        # What the frame's fields are this cycle (the decision applies from its first beat).
        frame_seq = Mux(first, decided_seq, cur_seq)
        frame_vc = Mux(first, decided_vc, cur_vc)
        frame_kind = Mux(first, decided_kind, kind)

        # Header, after the first `header_start` slot beats (see `frame.py`): unless it is the
        # first beat, the frame's fields are in registers by then.
        # The fields (in the layout's order), then their CRC, assigned whole from one
        # concatenation (assigned field by field, the CRC taken from the same signal's low
        # bits is a false combinational loop to Verilator's lint).
        field_bits = Cat(
            frame_vc if header_first else cur_vc,
            (frame_kind if header_first else kind) != KIND_CONTROL,
            frame_seq if header_first else cur_seq,
            self.send_ack,
            self.send_nak,
        )
        assert len(field_bits) == p.header_field_bits
        fields = Signal(p.header_field_bits)
        m.d.comb += fields.eq(field_bits)
        live_header = Signal(p.header_layout)
        m.d.comb += live_header.eq(Cat(fields, header_crc(fields, p.header_crc_width)))
        # A header of several beats is the one of its first beat (its CRC covers it).
        sent_header = Signal(p.header_layout)
        with m.If(send & at["at_header"]):
            m.d.sync += sent_header.eq(live_header)
        header = Mux(at["at_header"], live_header.as_value(), sent_header.as_value())
        header_bits = Cat(header, Const(0, HB * W - p.header_layout.size))

        # (`slot_beat` of this beat, `read_slot_beat` of the beat after the next one.)
        slot_beat = Signal(beat_addr_bits, init=slot_beat_init(0))
        slot_beat_after = Signal(beat_addr_bits, init=slot_beat_init(1 % p.frame_beats))
        read_slot_beat = Signal(beat_addr_bits, init=slot_beat_init(2 % p.frame_beats))
        index_three_ahead = Signal(range(p.frame_beats))
        m.d.comb += index_three_ahead.eq(Mux(index >= p.frame_beats - 3,
                                             index + 3 - p.frame_beats, index + 3))
        with m.If(send):
            m.d.sync += [slot_beat.eq(slot_beat_after),
                         slot_beat_after.eq(read_slot_beat),
                         read_slot_beat.eq(slot_beat_of(index_three_ahead))]
        if p.beats_per_flit > 1:
            flit_beat = Signal(range(p.beats_per_flit))
            with m.If(send & in_slots):
                m.d.sync += flit_beat.eq(Mux(flit_beat == p.beats_per_flit - 1, 0,
                                             flit_beat + 1))
            with m.If(start):
                # Slot 0 starts with the frame unless the header comes first.
                m.d.sync += flit_beat.eq(0 if header_first else 1)
            flit_start = flit_beat == 0
        else:
            flit_start = Const(1)     # every slot beat starts a flit

        # A new frame takes its first flit in its first cycle (so a data frame always has
        # one, even if the source then drops `valid`), then one at the first beat of each
        # further slot, until one is missing or the credits run out.
        source_payload = Signal(p.flit_width)
        # Only a new frame takes flits, and its VC at the start is the early pick: the source
        # is `Mux(first, early_vc, cur_vc)`, kept one-hot in a register (`source_oh`) from its
        # next value, so that the sources' `valid`, payload and credit are picked by an
        # AND-OR of registers.
        source_oh = Signal(p.vcs, init=1)
        next_first = Mux(send, index == p.crc_beat, first)
        next_source_vc = Mux(next_first, pick, Mux(start, decided_vc, cur_vc))
        m.d.sync += source_oh.eq(Cat(next_source_vc == vc for vc in range(p.vcs)))
        source_vc = Mux(first, early_vc, cur_vc)
        m.d.comb += source_ok.eq(source_oh == Cat(source_vc == vc for vc in range(p.vcs)))
        credit_vc = Signal(p.vcs)         # per VC: a flit may be taken (has a credit)
        valid_terms, payload_terms, credit_terms = [], [], []
        for vc in range(p.vcs):
            valid_terms.append(source_oh[vc] & self.i[vc].valid)
            payload_terms.append(self.i[vc].payload & source_oh[vc].replicate(p.flit_width))
            credit_terms.append(source_oh[vc] & credit_vc[vc])
        credit_ok = Signal()
        m.d.comb += [credit_vc.eq(has_credit),
                     source_valid.eq(Cat(valid_terms).any()),
                     source_payload.eq(_or(payload_terms)),
                     credit_ok.eq(Cat(credit_terms).any())]
        first_slot = Signal()
        m.d.comb += first_slot.eq(at["first_slot"])
        # What this beat would take if it goes out (`offer_*`), and what it takes.
        offer_first = Signal()
        offer_more = Signal()
        take_first = Signal()
        take_more = Signal()
        take = Signal()
        # A new frame's slot start before its slots closed (`may_more`): a register, decoded
        # a beat ahead, when slot starts are never back to back (`closed` is set only at one).
        may_more = Signal()
        if p.beats_per_flit >= 2:
            with m.If(send):
                m.d.sync += may_more.eq(
                    position(index_next)["slot_start"]
                    & Mux(start, decided_kind == KIND_NEW, kind == KIND_NEW)
                    & (start | ~closed))
        else:
            m.d.comb += may_more.eq(at["slot_start"] & (kind == KIND_NEW) & ~closed)
        m.d.comb += may_more_ok.eq(may_more == (at["slot_start"] & (kind == KIND_NEW) & ~closed))
        m.d.comb += [
            offer_first.eq(first & (decided_kind == KIND_NEW)),
            offer_more.eq(may_more & source_valid & credit_ok),
            take_first.eq(send & offer_first),
            take_more.eq(send & offer_more),
            take.eq(take_first | take_more),
        ]
        # The same per source (`source_oh` is one-hot), each an AND-OR of registers and the
        # source's `valid`: what `ready` and the flit beat are made of.
        first_new = Signal()      # a frame's first beat, a new data frame if the source has a flit
        m.d.comb += first_new.eq(first & ~replaying & early_new)
        offer_more_vc, offer_first_vc = [], []
        for vc in range(p.vcs):
            more_vc = Signal(name=f"offer_more_{vc}")
            first_vc = Signal(name=f"offer_first_{vc}")
            m.d.comb += [more_vc.eq(source_oh[vc] & self.i[vc].valid & may_more & credit_vc[vc]),
                         first_vc.eq(source_oh[vc] & self.i[vc].valid & first_new),
                         self.i[vc].ready.eq(send & (more_vc | first_vc))]
            offer_more_vc.append(more_vc)
            offer_first_vc.append(first_vc)
        held = Signal(p.flit_width)       # the flit being sent, shifted one beat per cycle
        with m.If(take_first):
            # With slot 0 first, its first beat goes out now.
            m.d.sync += [held.eq(source_payload if header_first else source_payload >> W),
                         filled.eq(1), padding.eq(0)]
        with m.Elif(send & in_slots & flit_start & ~first_slot):
            m.d.sync += padding.eq(~take_more)
            with m.If(take_more):
                m.d.sync += [held.eq(source_payload >> W), filled.eq(filled + 1)]
            with m.Else():
                m.d.sync += [held.eq(0), closed.eq(1)]
        with m.Elif(send & in_slots):
            m.d.sync += held.eq(held >> W)
        # The flit beat: the source's first beat when a slot starts and takes a flit, else
        # the rest of the flit taken (zero once the frame is closed). Written as an AND-OR of
        # exclusive selects (registers but the source's `valid`), not a priority chain.
        new_beat = Signal(W)
        slot_start = Signal()
        use_payload = Signal()
        use_held = Signal()
        m.d.comb += slot_start.eq(at["slot_start"])
        if header_first:
            m.d.comb += [use_payload.eq(offer_more),
                         use_held.eq(~slot_start & ~padding)]
        else:
            m.d.comb += [use_payload.eq(offer_more | offer_first),
                         use_held.eq(~slot_start & ~first & ~padding)]
        held_part = held[:W] & use_held.replicate(W)
        m.d.comb += new_beat.eq((source_payload[:W] & use_payload.replicate(W)) | held_part)
        # The flit beat on the way to the lanes: the same, per source (see `offer_*_vc`).
        payload_parts = [held_part]
        for vc in range(p.vcs):
            use_vc = offer_more_vc[vc] if header_first else (offer_more_vc[vc]
                                                              | offer_first_vc[vc])
            payload_parts.append(self.i[vc].payload[:W] & use_vc.replicate(W))
        lane_new_beat = _or(payload_parts)

        # Replay buffer: header beats are rebuilt; flit beats are kept.
        m.d.comb += [
            replay_write.addr.eq(Cat(slot_beat, frame_seq[:slot_bits])),
            replay_write.data.eq(new_beat),
            replay_write.en.eq(send & in_slots & (frame_kind == KIND_NEW)),
        ]
        if head_registers and not header_first:
            with m.If(send & first & (frame_kind == KIND_NEW)):
                m.d.sync += first_beats[frame_seq[:slot_bits]].eq(new_beat)
        if head_registers and second_in_slots:
            with m.If(send & at["at_second"] & (kind == KIND_NEW)):
                m.d.sync += second_beats[cur_seq[:slot_bits]].eq(new_beat)

        trailer = Signal(p.trailer_layout)
        count_now = Mux(kind == KIND_NEW, filled,
                        Mux(kind == KIND_REPLAY, slot_count[cur_seq[:slot_bits]], 0))
        if p.beats_per_flit >= 2:
            # From a register, a cycle behind: the beat before the trailer is a last slot's
            # second beat (or the trailer, stalled), which changes none of `count_now`'s
            # inputs.
            count = Signal.like(trailer.count)
            m.d.sync += count.eq(count_now)
        else:
            count = count_now
        m.d.comb += count_ok.eq(~at["at_trailer"] | (count == count_now))
        m.d.comb += [
            trailer.count.eq(count),
            trailer.credits.eq(self.send_credits),
        ]
        trailer_bits = Cat(trailer.as_value(),
                           Const(0, p.trailer_beats * W - p.trailer_layout.size))
        with m.If(send & at["at_trailer"] & (kind == KIND_NEW)):
            m.d.sync += [slot_count[cur_seq[:slot_bits]].eq(filled),
                         slot_vc[cur_seq[:slot_bits]].eq(cur_vc)]

        # The beat: a replayed slot beat from the replay buffer's read, registered
        # (`buffered`; `from_buffer`, a register, says so), else whatever the rest of the
        # frame has here (`other`).
        beat = Signal(W)
        other = Signal(W)
        buffered = Signal(W)
        from_buffer = Signal()
        # (The other terms are zero when `from_buffer` is set, so this is an OR.)
        m.d.comb += beat.eq((buffered & from_buffer.replicate(W)) | other)
        # `other` is an AND-OR of exclusive, mostly registered, selects.
        terms = []
        for n in range(HB):
            terms.append((at["at_header"] if n == 0 else index == H0 + n,
                          header_bits[n * W:(n + 1) * W]))
        # A replay's first beat comes from `first_beats` (a replay is decided when
        # `replaying`, of the frame `replay_seq`), its second from `second_beats`; the rest of
        # a replay's slot beats from `buffered`. (A replay's `lane_new_beat` is zero.) Without
        # the head registers, the first two come from the replay buffer's read, a cycle ahead.
        new_select = in_slots
        if not header_first:
            replay_first = Signal()
            m.d.comb += replay_first.eq(first & (decided_kind == KIND_REPLAY))
            new_select = new_select & ~replay_first
            terms.append((replay_first, first_beats[replay_seq[:slot_bits]] if head_registers
                          else replay_read_data))
        if second_in_slots:
            replay_second = Signal()
            m.d.comb += replay_second.eq(at["at_second"] & (kind == KIND_REPLAY))
            new_select = new_select & ~replay_second
            terms.append((replay_second, second_beats[cur_seq[:slot_bits]] if head_registers
                          else replay_read_data))
        terms.append((new_select, lane_new_beat))
        for n in range(p.trailer_beats):
            terms.append((at["at_trailer"] if n == 0 else index == p.first_trailer_beat + n,
                          trailer_bits[n * W:(n + 1) * W]))
        # The frame CRC takes each beat from a register, the cycle after it went out, so that
        # the beat multiplexers are on no path into the CRC; the CRC beat is the register
        # stepped over the last beat, combinationally.
        # `crc_state` restarts from the initial value as the CRC beat goes out, so it holds
        # it while the next frame's first beat is pending.
        last_beat = Signal(W)
        pending = Signal()         # `last_beat` went out and is not in `crc_state` yet
        crc_state = Signal(CRC.crc_width, init=CRC.initial_crc)
        crc_now = Signal(CRC.crc_width)  # the CRC over the frame's beats sent so far
        m.d.comb += crc_now.eq(Mux(pending, crc_step(crc_state, last_beat), crc_state))
        m.d.sync += [crc_state.eq(Mux(send & at["at_crc"], CRC.initial_crc, crc_now)),
                     pending.eq(send & ~at["at_crc"])]
        with m.If(send):
            m.d.sync += last_beat.eq(beat)
        # The CRC beat: `crc_now`, with the step over the trailer's last beat split (the CRC
        # is linear) into the state's part and the beat's, the beat's worked out from the
        # trailer's fields into a register (`crc_trailer`) as that beat goes out. So the
        # last beat's 16 + W-input XOR becomes a 16 + 1-input one.
        last_trailer = Value.cast(trailer_bits[(p.trailer_beats - 1) * W:p.trailer_beats * W])
        crc_trailer = Signal(CRC.crc_width)
        with m.If(at["at_last_trailer"]):
            m.d.sync += crc_trailer.eq(crc_step(Const(0, CRC.crc_width), last_trailer))
        crc_beat = Signal(CRC.crc_width)
        m.d.comb += crc_beat.eq(Mux(pending,
                                    crc_step(crc_state, Const(0, W)) ^ crc_trailer, crc_state))
        terms.append((at["at_crc"], crc_beat))
        or_terms = Const(0, W)
        for select, value in terms:
            or_terms = or_terms | (Value.cast(value) & select.replicate(W))
        m.d.comb += other.eq(or_terms)
        m.d.comb += self.beats.payload.eq(beat)

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
        ack_offset = Signal(S)
        new_base = Signal(S)
        m.d.comb += [
            ack_offset.eq(self.peer_ack - base),
            acked.eq(self.peer_header_valid & (ack_offset < outstanding)),
            new_base.eq(Mux(acked, self.peer_ack + 1, base)),
        ]
        # Frames stay unacknowledged after this cycle (next_after != new_base), worked out
        # without new_base: a frame starts now, or the ACK, if any, leaves some.
        # (Worked out for each value of `acked`, which comes late, and picked by it.)
        left = Signal()
        left_acked = Signal()
        left_not_acked = Signal()
        m.d.comb += [left_acked.eq(begin_new | ((self.peer_ack + 1)[:S] != next_seq)),
                     left_not_acked.eq(begin_new | (outstanding != 0)),
                     left.eq(Mux(acked, left_acked, left_not_acked))]
        # A NAK is new unless the peer cannot yet have seen the replay of the oldest frame:
        # from a rewind (`armed`) until its replay started `nak_holdoff` cycles ago (`holdoff`),
        # with no ACK progress since.
        armed = Signal()
        holdoff = Signal(range(p.nak_holdoff + 1))
        holdoff_zero = Signal(init=1)     # holdoff == 0, kept as a register beside it
        nak_heard = Signal()      # a good header carries a NAK
        m.d.comb += nak_heard.eq(self.peer_header_valid & self.peer_nak)
        nak_now = Signal()
        m.d.comb += nak_now.eq(nak_heard & (acked | (~armed & holdoff_zero)))

        timer = Signal(range(p.replay_timeout + 1))
        timeout = Signal(init=p.replay_timeout == 0)  # timer == replay_timeout, a register
        m.d.comb += flags_ok.eq((timeout == (timer == p.replay_timeout))
                                & (holdoff_zero == (holdoff == 0)))
        rewind = Signal()
        rewind_acked = Signal()
        rewind_not_acked = Signal()
        m.d.comb += [
            rewind_acked.eq((nak_heard | timeout) & left_acked),
            rewind_not_acked.eq(((nak_heard & ~armed & holdoff_zero) | timeout)
                                & left_not_acked),
            rewind.eq(Mux(acked, rewind_acked, rewind_not_acked)),
        ]
        with m.If(rewind):
            m.d.sync += [armed.eq(1), holdoff.eq(0), holdoff_zero.eq(1)]
        with m.Elif(acked):
            m.d.sync += [armed.eq(0), holdoff.eq(0), holdoff_zero.eq(1)]
        with m.Elif(begin_replay & armed):
            m.d.sync += [armed.eq(0), holdoff.eq(p.nak_holdoff),
                         holdoff_zero.eq(p.nak_holdoff == 0)]
        with m.Elif(~holdoff_zero):
            m.d.sync += [holdoff.eq(holdoff - 1), holdoff_zero.eq(holdoff == 1)]
        # The timer restarts with each ACK progress, rewind, and start of the replay a rewind
        # asked for (which may start up to a frame after the rewind). (A NAK or timeout that
        # does not rewind leaves nothing outstanding: the timer stays at 0 anyway.) `timeout`
        # is its compare with `replay_timeout`, a cycle ahead.
        with m.If(acked | nak_now | timeout | (begin_replay & armed) | (outstanding == 0)):
            m.d.sync += [timer.eq(0), timeout.eq(p.replay_timeout == 0)]
        with m.Else():
            m.d.sync += [timer.eq(timer + 1), timeout.eq(timer == p.replay_timeout - 1)]

        # Keep the replay position inside the window when an ACK moves its start past it.
        # (replay_after - new_base > next_after - new_base: with base <= replay_after <=
        # next_after and base <= new_base <= next_after, it is replay_after < new_base.)
        # (Worked out for both values of `replay_after`, picked by whether a frame starts.)
        replay_behind = Signal()
        behind_stay = Signal()
        behind_step = Signal()
        m.d.comb += [behind_stay.eq((replay_seq - base)[:S] <= ack_offset),
                     behind_step.eq((replay_seq + 1 - base)[:S] <= ack_offset),
                     replay_behind.eq(acked & Mux(begin_new | begin_replay, behind_step,
                                                  behind_stay))]
        m.d.sync += [base.eq(new_base), next_seq.eq(next_after)]
        replay_seq_next = Signal(S)      # replay_seq's next value
        m.d.comb += replay_seq_next.eq(Mux(rewind | replay_behind, new_base, replay_after))
        # replaying's next value, replay_seq_next != next_after, case by case (a new frame
        # starts only when not replaying).
        replaying_next = Signal()
        m.d.comb += replaying_next.eq(Mux(rewind | replay_behind, left,
                                          Mux(begin_new, 0,
                                              Mux(begin_replay, (replay_seq + 1)[:S] != next_seq,
                                                  replaying))))
        m.d.sync += [replay_seq.eq(replay_seq_next), replaying.eq(replaying_next)]

        # The replay buffer read, a stage of two stepped with `send`: the beat going out now
        # is in `buffered`, the next one in the RAM's output, and the address is the beat's
        # after that, in the frame going out now. (For a next frame's first two beats the read
        # is unused: they come from `first_beats` and `second_beats`, as headers, trailers
        # and CRC beats do not need the buffer.)
        read_seq = Signal(S)
        m.d.comb += read_seq.eq(frame_seq)
        m.d.comb += [replay_read_addr.eq(Cat(read_slot_beat, read_seq[:slot_bits])),
                     replay_read_en.eq(send)]
        if not head_registers:
            # The first two beats, a cycle ahead: beat 0 of `replay_seq` in the cycle before a
            # frame's first (its CRC beat going out, or a first beat stalled: read again, and
            # decided again, every cycle), beat 1 of the frame as its first beat goes out.
            # Neither meets a read two beats ahead that is used (`head_reads_fit`).
            with m.If(next_first):
                m.d.sync += replay_ready.eq(replaying_next & (replay_seq_next == replay_seq))
                if not header_first:
                    m.d.comb += [replay_read_addr.eq(Cat(Const(slot_beat_init(0), beat_addr_bits),
                                                         replay_seq[:slot_bits])),
                                 replay_read_en.eq(1)]
            if second_in_slots:
                with m.If(first & send):
                    m.d.comb += replay_read_addr.eq(Cat(Const(slot_beat_init(1), beat_addr_bits),
                                                        decided_seq[:slot_bits]))
        with m.If(send):
            m.d.sync += buffered.eq(replay_read_data)
        next_index = Signal(range(p.frame_beats))
        m.d.comb += next_index.eq(Mux(send, index_next, index))
        next_in_slots = ((next_index < p.first_trailer_beat)
                         & ~((next_index >= H0) & (next_index < H0 + HB)))
        m.d.sync += from_buffer.eq(next_in_slots & (next_index >= 2)
                                   & (frame_kind == KIND_REPLAY))

        for vc in range(p.vcs):
            delta = Signal(p.credit_bits, name=f"credit_delta_{vc}")
            m.d.comb += delta.eq(Mux(self.peer_valid,
                                     self.peer_credits[vc] - last_totals[vc], 0))
            taken = Signal(name=f"credit_taken_{vc}")
            m.d.comb += taken.eq(self.i[vc].valid & self.i[vc].ready)
            # The returned credits are added before `taken` (late: the source's `valid`) picks.
            returned = Signal(range(p.rx_credits + 1), name=f"credit_returned_{vc}")
            m.d.comb += returned.eq(credits[vc] + delta)
            m.d.sync += [credits[vc].eq(Mux(taken, returned - 1, returned)),
                         has_credit[vc].eq(Mux(taken, returned != 1, returned != 0))]
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
