"""Formal property wrappers for the link adapter's transmitter and receiver credits.

Run by :func:`chipknit.tb.formal.check` (see ``tests/test_formal.py``). As in
:mod:`chipknit.tb.properties`, the free inputs are top-level ports that the solver drives
arbitrarily every cycle; ``Assume`` restricts them only to what a real peer can say.

The transmitter wrappers watch the transmitter from outside: a *wire monitor* decodes every
frame it sends (beat count from reset, header, slot beats, trailer), and a *ghost* model of
go-back-N follows what the peer has acknowledged and which credits it holds. The properties
are stated on what goes out on the wire, so they hold for any implementation of the
transmitter, not only this one.

The peer (:class:`TransmitterEnvironment`) may say anything a correct receiver can: in a
header (``peer_header_valid``), a cumulative ACK of a frame that has been sent whole, never
going backwards, and a NAK at any time (repeated or not); in a trailer (``peer_valid``),
credit totals that return no more flits than it has been sent. Both may pulse in any cycle
(any frame timing, any frames lost).
"""

from amaranth.hdl import Array, Assert, Assume, Module, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from chipknit.rtl.link.frame import LinkParams, header_crc
from chipknit.rtl.link.receiver import LinkReceiver
from chipknit.rtl.link.transmitter import LinkTransmitter

__all__ = ["SMALL_LINK", "TransmitterReplayProperties", "TransmitterCreditProperties",
           "ReceiverCreditProperties"]

#: A link small enough for the solver: one-beat flits, two per frame (5-beat frames), two VCs,
#: four sequence numbers, a window of two frames, two credits per VC, a replay timer of two
#: frames (long enough that a NAK, not only the timer, decides when to replay) and a stale-NAK
#: hold-off of two cycles (short, so that a NAK after it falls within the bounded check).
SMALL_LINK = LinkParams(flit_width=16, vcs=2, beat_width=16, frame_flits=2, seq_bits=2,
                        replay_frames=2, rx_credits=2, replay_timeout=10, nak_holdoff=2)


class TransmitterEnvironment(wiring.Component):
    """A :class:`LinkTransmitter` driven by free inputs and a peer that keeps the protocol.

    Subclasses add their properties in :meth:`properties`. Ghost state (of the wrapper, not
    the transmitter):

    - ``g_next``: sequence number of the next new data frame, counted on the wire (a data
      frame whose sequence number is ``g_next`` when its last beat goes out is new);
    - ``g_base``: the oldest data frame the peer has not acknowledged;
    - ``g_held``: per VC, flits the transmitter has taken that the peer has not returned.
    """

    def __init__(self, params: LinkParams = SMALL_LINK, transmitter_class=LinkTransmitter):
        self.params, self.transmitter_class = params, transmitter_class
        p = params
        super().__init__({
            "i_valid": In(p.vcs),
            "i_payload": In(data.ArrayLayout(p.flit_width, p.vcs)),
            "beats_ready": In(1),
            "send_ack": In(p.seq_bits), "send_nak": In(1),
            "send_credits": In(data.ArrayLayout(p.credit_bits, p.vcs)),
            "peer_header_valid": In(1), "peer_valid": In(1),
            "peer_ack": In(p.seq_bits), "peer_nak": In(1),
            "peer_credits": In(data.ArrayLayout(p.credit_bits, p.vcs)),
            "watch": In(p.seq_bits),     # a free constant (see the replay properties)
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        S, W = p.seq_bits, p.beat_width
        m.submodules.transmitter = tx = self.transmitter_class(p)
        self.tx = tx
        for vc in range(p.vcs):
            m.d.comb += [tx.i[vc].valid.eq(self.i_valid[vc]),
                         tx.i[vc].payload.eq(self.i_payload[vc])]
        m.d.comb += [
            tx.beats.ready.eq(self.beats_ready),
            tx.send_ack.eq(self.send_ack), tx.send_nak.eq(self.send_nak),
            tx.send_credits.eq(self.send_credits),
            tx.peer_header_valid.eq(self.peer_header_valid),
            tx.peer_valid.eq(self.peer_valid), tx.peer_ack.eq(self.peer_ack),
            tx.peer_nak.eq(self.peer_nak), tx.peer_credits.eq(self.peer_credits),
        ]

        # --- Wire monitor: decode each frame as it goes out -----------------------------------
        send = Signal()
        m.d.comb += send.eq(tx.beats.valid & tx.beats.ready)
        index = Signal(range(p.frame_beats))
        with m.If(send):
            m.d.sync += index.eq(index + 1)
            with m.If(index == p.crc_beat):
                m.d.sync += index.eq(0)
        beat = tx.beats.payload
        header_bits = Signal(p.header_beats * W)
        slot_bits = Signal(p.slot_beats * W)
        trailer_bits = Signal(p.trailer_beats * W)
        for n in range(p.header_beats):
            with m.If(send & (index == p.header_start + n)):
                m.d.sync += header_bits[n * W:(n + 1) * W].eq(beat)
        for n in range(p.slot_beats):
            with m.If(send & (index == p.slot_beat_index(n))):
                m.d.sync += slot_bits[n * W:(n + 1) * W].eq(beat)
        for n in range(p.trailer_beats):
            with m.If(send & (index == p.first_trailer_beat + n)):
                m.d.sync += trailer_bits[n * W:(n + 1) * W].eq(beat)
        header = data.View(p.header_layout, header_bits[:p.header_layout.size])
        trailer = data.View(p.trailer_layout, trailer_bits[:p.trailer_layout.size])
        self.frame_start = Signal()      # the first beat of a frame goes out
        self.frame_end = Signal()        # the last beat (CRC) goes out: fields below are final
        m.d.comb += [self.frame_start.eq(send & (index == 0)),
                     self.frame_end.eq(send & (index == p.crc_beat))]
        self.header, self.trailer, self.slot_bits = header, trailer, slot_bits

        # --- Ghost go-back-N state and the peer's ACKs ----------------------------------------
        g_next = Signal(S)
        g_base = Signal(S)
        unacked = Signal(S)
        m.d.comb += unacked.eq(g_next - g_base)
        self.g_next, self.g_base, self.unacked = g_next, g_base, unacked
        is_data = Signal()
        is_new = Signal()
        m.d.comb += [is_data.eq(trailer.count != 0), is_new.eq(is_data & (header.seq == g_next))]
        self.is_data, self.is_new = is_data, is_new
        with m.If(self.frame_end & is_new):
            m.d.sync += g_next.eq(g_next + 1)
        # A cumulative ACK covers frames sent whole and never goes backwards: it names a frame
        # in [g_base - 1, g_next - 1] (g_base - 1 repeats the last ACK).
        m.d.comb += Assume(~self.peer_header_valid
                           | ((self.peer_ack + 1 - g_base)[:S] <= unacked))
        with m.If(self.peer_header_valid):
            m.d.sync += g_base.eq(self.peer_ack + 1)

        # --- Ghost credits: the peer returns no more than it has been sent ---------------------
        self.g_held = []
        for vc in range(p.vcs):
            # Wide enough that a transmitter taking flits without credit shows up.
            held = Signal(range(2 * p.rx_credits + 2), name=f"g_held_{vc}")
            last = Signal(p.credit_bits, name=f"g_last_{vc}")
            returned = Signal(p.credit_bits, name=f"g_returned_{vc}")
            taken = Signal(name=f"g_taken_{vc}")
            m.d.comb += [
                returned.eq((self.peer_credits[vc] - last)[:p.credit_bits]),
                taken.eq(tx.i[vc].valid & tx.i[vc].ready),
                Assume(~self.peer_valid | (returned <= held)),
            ]
            with m.If(self.peer_valid):
                m.d.sync += [last.eq(self.peer_credits[vc]),
                             held.eq(held + taken - returned)]
            with m.Else():
                m.d.sync += held.eq(held + taken)
            self.g_held.append((held, last))

        self.properties(m)
        return m

    def properties(self, m):
        raise NotImplementedError


class TransmitterReplayProperties(TransmitterEnvironment):
    """Go-back-N safety of the replay buffer, stated on the frames on the wire.

    - **Window**: a new data frame goes out only while fewer than ``replay_frames`` frames are
      unacknowledged, so it never takes the replay slot of an unacknowledged frame.
    - **No acknowledged or unsent frame**: a data frame is the next new one or an
      unacknowledged one.
    - **In order**: each data frame follows the previous one in sequence, or restarts at the
      oldest unacknowledged frame (a go-back-N rewind); after a NAK that asks for a replay,
      the next data frame to start is the oldest unacknowledged one. A NAK asks for a replay
      unless it may be stale: the oldest unacknowledged frame started going out (new or
      replayed) at most ``nak_holdoff`` cycles ago; a NAK that comes with ACK progress always
      asks.
    - **Exact**: a replayed frame carries the same VC, count and slot beats as when it was
      new (checked for a free choice of sequence number ``watch``).
    """

    def __init__(self, params: LinkParams = SMALL_LINK, transmitter_class=LinkTransmitter):
        super().__init__(params, transmitter_class)

    def properties(self, m):
        p = self.params
        S = p.seq_bits
        header, trailer = self.header, self.trailer
        seq = header.seq

        # Data abstraction, to keep the bounded check fast: what the transmitter says for the
        # local receiver (ACK, NAK, credits) only fills header and trailer fields that are
        # rebuilt for every frame, so it is held at zero; flits take four values, enough to
        # tell any two frames apart.
        m.d.comb += Assume((self.send_ack == 0) & (self.send_nak == 0)
                           & (self.send_credits.as_value() == 0))
        for vc in range(p.vcs):
            m.d.comb += Assume(self.i_payload[vc] < 4)
        # A bounded check starts from the reset state; a reset later only starts the same
        # traces again, so it is left out (it doubles the solver's work at every step).
        m.d.comb += Assume(~ResetSignal())

        # g_base when the frame started (ACKs may arrive while it goes out).
        start_base = Signal(S)
        start_unacked = Signal(S)
        with m.If(self.frame_start):
            m.d.sync += [start_base.eq(self.g_base), start_unacked.eq(self.unacked)]
        prev_seq = Signal(S)
        have_prev = Signal()
        with m.If(self.frame_end & self.is_data):
            m.d.sync += [prev_seq.eq(seq), have_prev.eq(1)]

        in_window = (seq - start_base)[:S] <= start_unacked
        follows = have_prev & (seq == (prev_seq + 1)[:S])
        m.d.comb += [
            Assert(~(self.frame_end & self.is_new) | (start_unacked < p.replay_frames)),
            Assert(~(self.frame_end & self.is_data) | in_window),
            Assert(~(self.frame_end & self.is_data) | follows | (seq == start_base)),
        ]

        # A NAK asks for a replay unless it may be stale (see above): the next frame to start
        # after it, if frames are still unacknowledged then, is the oldest of them. (The frame
        # going out while the NAK arrives was decided before it; without the replay head
        # registers, so was the next one if the NAK came in the cycle before it started.)
        # Ghost: the cycles since a data frame with each sequence number last started. The
        # header comes mid-frame, so what a frame is when it starts is read from the
        # transmitter (`start_seq`, `start_data`), and checked against its header on the wire
        # at the frame end.
        H = p.nak_holdoff
        start_seq, start_data = self.tx.start_seq, self.tx.start_data
        seq_at_start = Signal(S)
        data_at_start = Signal()
        with m.If(self.frame_start):
            m.d.sync += [seq_at_start.eq(start_seq), data_at_start.eq(start_data)]
        m.d.comb += [
            Assert(~self.frame_end | ((header.data == data_at_start)
                                      & (~data_at_start | (seq == seq_at_start)))),
            # The header's data bit agrees with the trailer, and its own CRC is right.
            Assert(~self.frame_end | (header.data == self.is_data)),
            Assert(~self.frame_end | (header.check == header_crc(
                header.as_value()[:p.header_field_bits], p.header_crc_width))),
        ]
        ages = []
        for number in range(1 << S):
            age = Signal(range(H + 1), init=H, name=f"g_age_{number}")
            with m.If(self.frame_start & start_data & (start_seq == number)):
                m.d.sync += age.eq(0)
            with m.Elif(age != H):
                m.d.sync += age.eq(age + 1)
            ages.append(age)
        base_age = Array(ages)[self.g_base]
        base_starting = self.frame_start & start_data & (start_seq == self.g_base)
        progress = (self.peer_ack + 1)[:S] != self.g_base
        rewind_due = Signal()        # a NAK asked for a replay; no frame has started since
        quiet = (base_age == H) & ~base_starting
        nak_now = Signal()
        m.d.comb += nak_now.eq(self.peer_header_valid & self.peer_nak & (progress | quiet))
        due_at_start = Signal()      # ... and this frame is the first to start after it
        # Without the replay head registers, a replay is decided a cycle ahead (its first beat
        # is read then): a NAK in the cycle before a frame starts, or an ACK then that moves
        # the oldest unacknowledged frame, leaves the replay to the frame after it, so only a
        # NAK before that, with no ACK progress since, makes this frame due.
        decided_due = rewind_due
        if not p.replay_head_registers:
            decided_due = Signal()
            base_last = Signal(S)
            m.d.sync += [decided_due.eq(rewind_due & ~self.frame_start),
                         base_last.eq(self.g_base)]
            decided_due = decided_due & (self.g_base == base_last)
        with m.If(self.frame_start):
            m.d.sync += due_at_start.eq(decided_due & (self.unacked != 0))
        with m.If(nak_now & (self.unacked != 0)):
            m.d.sync += rewind_due.eq(1)
        with m.Elif(self.frame_start):
            m.d.sync += rewind_due.eq(0)
        m.d.comb += Assert(~(self.frame_end & due_at_start)
                           | (self.is_data & (seq == start_base)))

        # Replays are exact: remember the watched frame when it is new.
        # `watch` is free but constant: any value, the same in every cycle.
        watch, watch_last, past = self.watch, Signal(S), Signal()
        m.d.sync += [watch_last.eq(watch), past.eq(1)]
        m.d.comb += Assume(~past | (watch == watch_last))
        w_vc = Signal.like(header.vc)
        w_count = Signal.like(trailer.count)
        w_slots = Signal.like(self.slot_bits)
        watched = self.frame_end & self.is_data & (seq == watch)
        with m.If(watched & self.is_new):
            m.d.sync += [w_vc.eq(header.vc), w_count.eq(trailer.count),
                         w_slots.eq(self.slot_bits)]
        m.d.comb += Assert(~(watched & ~self.is_new)
                           | ((header.vc == w_vc) & (trailer.count == w_count)
                              & (self.slot_bits == w_slots)))


class TransmitterCreditProperties(TransmitterEnvironment):
    """Per VC credits of a transmitter, for all time (k-induction).

    With a peer that returns no more flits than it was sent: the transmitter's credits plus
    the flits the peer holds are always ``rx_credits`` (credits are neither created nor
    lost), so they never exceed ``rx_credits`` (overflow) nor wrap below zero (underflow).
    The transmitter's copy of the peer's totals is the one the peer last sent, and its
    registered ``has_credit`` flags match the counts.
    """

    def properties(self, m):
        p = self.params
        for vc, (held, last) in enumerate(self.g_held):
            credits = self.tx.status.credits[vc]
            m.d.comb += [
                Assert(credits + held == p.rx_credits),
                Assert(credits <= p.rx_credits),
                Assert(self.tx.last_totals[vc] == last),
                Assert(self.tx.has_credit[vc] == (credits != 0)),
            ]
        # A new frame decided a cycle ahead still has its credit when it starts: nothing is
        # taken in the cycle before a frame's first beat.
        m.d.comb += [Assert(~(self.tx.first & self.tx.early_new)
                            | self.tx.has_credit.bit_select(self.tx.early_vc, 1)),
                     Assert(self.tx.position_ok)]
        m.d.comb += Assert(self.tx.status.outstanding <= p.replay_frames)


class ReceiverCreditProperties(wiring.Component):
    """A :class:`LinkReceiver` fed arbitrary beats; its credit totals, for all time.

    Per VC, with ghost counts of the flits committed (frames accepted) and delivered (taken by
    the consumer): the buffer and the output registers hold exactly committed − delivered
    flits, the buffer never more than its depth, and the cumulative credit total the receiver
    returns is delivered modulo ``2**credit_bits``. So it returns a credit for every flit its
    consumer took and for no other (a credit never runs ahead of the data, none is lost).
    Together with the transmitter's credit proof (a transmitter never has more than
    ``rx_credits`` flits unreturned) this bounds what a trailer has to report below the
    counter's modulus.
    """

    def __init__(self, params: LinkParams = SMALL_LINK, receiver_class=LinkReceiver):
        self.params, self.receiver_class = params, receiver_class
        super().__init__({
            "beat_valid": In(1), "beat": In(params.beat_width), "o_ready": In(params.vcs),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        wide = p.credit_bits + max(2, p.rx_buffer_depth.bit_length())
        m.submodules.receiver = receiver = self.receiver_class(p)
        m.d.comb += [receiver.beats.valid.eq(self.beat_valid),
                     receiver.beats.payload.eq(self.beat)]
        for vc, buffer in enumerate(receiver.buffers):
            committed = Signal(wide, name=f"g_committed_{vc}")
            delivered = Signal(wide, name=f"g_delivered_{vc}")
            with m.If(buffer.settle & buffer.commit):
                m.d.sync += committed.eq(committed + buffer.keep)
            with m.If(receiver.o[vc].valid & receiver.o[vc].ready):
                m.d.sync += delivered.eq(delivered + 1)
            m.d.comb += [
                receiver.o[vc].ready.eq(self.o_ready[vc]),
                Assert((committed - delivered)[:wide] == buffer.level + receiver.held[vc]),
                Assert(buffer.level + buffer.pending <= p.rx_buffer_depth),
                Assert(receiver.credit_totals[vc] == delivered[:p.credit_bits]),
            ]
        return m


def mutant(module, class_name: str, old: str, new: str) -> type:
    """``module.class_name`` rebuilt from its source with ``old`` replaced by ``new`` once.

    A broken block for the must-fail checks: each property is shown to catch a realistic bug
    in the real code. Fails if ``old`` does not occur exactly once (the code has moved on).
    """
    import importlib.util
    import inspect
    source = inspect.getsource(module)
    if source.count(old) != 1:
        raise ValueError(f"mutation target occurs {source.count(old)} times in "
                         f"{module.__name__}, not once: {old!r}")
    name = f"{module.__name__}_mutant"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mutated = importlib.util.module_from_spec(spec)
    mutated.__package__ = module.__package__
    exec(compile(source.replace(old, new), f"<mutant of {module.__name__}>", "exec"),
         mutated.__dict__)
    return getattr(mutated, class_name)
