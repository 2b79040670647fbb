"""Lane map: carries link beats over the lanes that work.

A beat of ``beat_width`` bits is cut into ``slots = beat_width / bits_per_lane`` *slots* of
``bits_per_lane`` bits. Slot ``j`` travels on the ``j``-th usable lane (lanes numbered by
wire, i.e. by transmitter lane), so the map is fixed by one bit per lane, the *usable mask*,
and both ends derive the same map from it:

- ``FULL``: at least ``slots`` usable lanes. One beat per cycle on the first ``slots`` of
  them; the rest (the repair lanes, or lanes past a dead one) idle. With ``lanes = slots +
  repair`` this maps out up to ``repair`` dead lanes anywhere at full rate.
- ``HALF``: at least ``slots / 2`` usable lanes. One beat per two cycles: the low half of
  the beat on the first ``slots / 2`` usable lanes, then the high half; the transmitter's
  ``ready`` is high every other cycle.
- ``NONE``: fewer: the link cannot run.

:class:`LaneMapper` turns a mask into the per-slot lane select (receiver) and per-lane slot
rank (transmitter), one lane per cycle, into registers (so the datapaths below are plain
multiplexers with registered selects). :class:`TxGearbox` and :class:`RxGearbox` are those
datapaths.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LaneMode", "LaneMapper", "TxGearbox", "RxGearbox"]


class LaneMode(enum.Enum, shape=2):
    """How beats use the lanes."""
    NONE = 0   #: too few usable lanes: the link cannot run
    HALF = 1   #: half the slots per cycle, one beat per two cycles
    FULL = 2   #: every slot each cycle, one beat per cycle


def _check(lanes, slots):
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"Lanes must be a positive integer, not {lanes!r}")
    if not isinstance(slots, int) or slots < 2 or slots % 2:
        raise ValueError(f"Slots must be an even integer of at least 2, not {slots!r}")
    if lanes < slots:
        raise ValueError(f"Lanes ({lanes}) must be at least the slots of a beat ({slots})")


class LaneMapper(wiring.Component):
    """Computes the lane map of a usable-lane mask, one lane per cycle.

    Members
    -------
    mask : In(lanes)
        Usable lanes (by wire). Sampled while ``busy``; hold it from ``start`` to done.
    start : In(1)
        Begin computing (restarts a computation in progress).
    busy : Out(1)
        Computing; the outputs are valid when it is low (``lanes + 1`` cycles after start).
    mode : Out(LaneMode)
    select : Out(ArrayLayout(range(lanes), slots))
        Slot ``j`` is carried by lane ``select[j]`` (meaningful for the slots in use).
    rank : Out(ArrayLayout(range(slots + 1), lanes))
        Lane ``i`` carries slot ``rank[i]``; ``rank[i] >= slots in use`` means idle.
    """

    def __init__(self, lanes: int, slots: int):
        _check(lanes, slots)
        self.lanes, self.slots = lanes, slots
        super().__init__({
            "mask": In(lanes),
            "start": In(1),
            "busy": Out(1),
            "mode": Out(LaneMode),
            "select": Out(data.ArrayLayout(range(lanes), slots)),
            "rank": Out(data.ArrayLayout(range(slots + 1), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        n, s = self.lanes, self.slots
        lane = Signal(range(n + 1))
        count = Signal(range(n + 1))
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), lane.eq(0), count.eq(0)]
        with m.Elif(self.busy):
            with m.If(lane == n):
                m.d.sync += self.busy.eq(0)
                with m.If(count >= s):
                    m.d.sync += self.mode.eq(LaneMode.FULL)
                with m.Elif(count >= s // 2):
                    m.d.sync += self.mode.eq(LaneMode.HALF)
                with m.Else():
                    m.d.sync += self.mode.eq(LaneMode.NONE)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
                usable = self.mask.bit_select(lane[:max(1, (n - 1).bit_length())], 1)
                with m.If(usable):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count < s):
                        m.d.sync += self.select[count[:max(1, (s - 1).bit_length())]].eq(lane)
                for i in range(n):
                    with m.If(lane == i):
                        m.d.sync += self.rank[i].eq(Mux(usable & (count < s), count, s))
        return m


class TxGearbox(wiring.Component):
    """Spreads beats over the usable lanes (combinational; the caller registers the lanes).

    Members
    -------
    beats : In(stream.Signature(slots * bits_per_lane))
        Beats to send. ``ready`` only while ``enable``: every cycle in ``FULL`` mode, every
        other cycle (the first of each pair, starting with the first enabled cycle) in
        ``HALF`` mode. The beat is taken whole when ``ready``; its high half is held.
    enable : In(1)
        Send this cycle; low resets the half-width phase.
    mode : In(LaneMode)
    rank : In(ArrayLayout(range(slots + 1), lanes))
        From the :class:`LaneMapper` of the *receiver's* usable mask.
    data : Out(lanes * bits_per_lane)
        The lanes' data; idle lanes carry zeros.
    phase : Out(1)
        High half of a beat is on the lanes (``HALF`` mode).
    """

    def __init__(self, lanes: int, slots: int, bits_per_lane: int = 1):
        _check(lanes, slots)
        self.lanes, self.slots, self.bits = lanes, slots, bits_per_lane
        super().__init__({
            "beats": In(stream.Signature(slots * bits_per_lane)),
            "enable": In(1),
            "mode": In(LaneMode),
            "rank": In(data.ArrayLayout(range(slots + 1), lanes)),
            "data": Out(lanes * bits_per_lane),
            "phase": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, s, b = self.lanes, self.slots, self.bits
        half = self.mode == LaneMode.HALF
        held = Signal(s * b)
        m.d.comb += self.beats.ready.eq(self.enable & ~self.phase)
        with m.If(self.enable & half):
            m.d.sync += self.phase.eq(~self.phase)
        with m.Else():
            m.d.sync += self.phase.eq(0)
        with m.If(self.beats.valid & self.beats.ready):
            m.d.sync += held.eq(self.beats.payload)
        source = Mux(self.phase, held, self.beats.payload)
        in_use = Mux(half, s // 2, s)
        lanes = []
        for i in range(n):
            rank = self.rank[i]
            slot = Signal(range(s), name=f"slot_{i}")
            m.d.comb += slot.eq(rank + Mux(self.phase, s // 2, 0))
            word = Signal(b, name=f"lane_{i}")
            with m.If((rank < in_use) & self.enable):
                m.d.comb += word.eq(source.word_select(slot, b))
            lanes.append(word)
        m.d.comb += self.data.eq(Cat(*lanes))
        return m


class RxGearbox(wiring.Component):
    """Reassembles beats from the usable lanes (combinational).

    Members
    -------
    data : In(lanes * bits_per_lane)
        Deskewed lanes, by wire (reversal undone).
    enable : In(1)
        The lanes carry beat data this cycle; low resets the half-width phase.
    mode : In(LaneMode)
    select : In(ArrayLayout(range(lanes), slots))
        From the :class:`LaneMapper` of this receiver's usable mask.
    beats : Out(stream.Signature(slots * bits_per_lane))
        Reassembled beats; ``valid`` every enabled cycle in ``FULL`` mode, every second one
        in ``HALF`` mode. ``ready`` is ignored (the link receiver always takes beats).
    phase : Out(1)
        The low half of a beat has been taken (``HALF`` mode).
    """

    def __init__(self, lanes: int, slots: int, bits_per_lane: int = 1):
        _check(lanes, slots)
        self.lanes, self.slots, self.bits = lanes, slots, bits_per_lane
        super().__init__({
            "data": In(lanes * bits_per_lane),
            "enable": In(1),
            "mode": In(LaneMode),
            "select": In(data.ArrayLayout(range(lanes), slots)),
            "beats": Out(stream.Signature(slots * bits_per_lane)),
            "phase": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, s, b = self.lanes, self.slots, self.bits
        half = self.mode == LaneMode.HALF
        words = []
        for j in range(s):
            word = Signal(b, name=f"slot_{j}")
            select = self.select[j]
            with m.Switch(select):
                for i in range(n - 1):
                    with m.Case(i):
                        m.d.comb += word.eq(self.data[i * b:(i + 1) * b])
                with m.Default():
                    m.d.comb += word.eq(self.data[(n - 1) * b:])
            words.append(word)
        low = Signal(s // 2 * b)
        with m.If(self.enable & half):
            m.d.sync += self.phase.eq(~self.phase)
            with m.If(~self.phase):
                m.d.sync += low.eq(Cat(*words[:s // 2]))
        with m.Else():
            m.d.sync += self.phase.eq(0)
        m.d.comb += [
            self.beats.valid.eq(self.enable & (~half | self.phase)),
            self.beats.payload.eq(Mux(half, Cat(low, *words[:s // 2]), Cat(*words))),
        ]
        return m
