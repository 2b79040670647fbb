"""Self-checking traffic: numbered flits and a checker that classifies what arrives.

For soaks and benchmarks that run far longer than a Python scoreboard can follow. Each flit
carries a sequence number and a check word computed from it and the stream's identity; the
checker recomputes both, so it can tell a lost flit (a gap), a duplicated one (a number it has
seen) and a corrupted one (a check that does not match) apart, and counts each.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .credit import SaturatingCounter

__all__ = ["SequenceGenerator", "SequenceChecker", "check_word"]


def check_word(number, stream_id: int, width: int):
    """The check word for flit ``number`` of stream ``stream_id`` (hardware or Python ints)."""
    def rotate(value, amount):
        amount %= width
        if isinstance(value, int):
            mask = (1 << width) - 1
            return ((value << amount) | (value >> (width - amount))) & mask
        return value.rotate_left(amount)
    salt = (0x9E3779B97F4A7C15 * (stream_id + 1)) & ((1 << width) - 1)
    return rotate(number, 7) ^ rotate(number, 13) ^ number ^ salt


def _split(width):
    number_width = min(32, width // 2)
    return number_width, width - number_width


class SequenceGenerator(wiring.Component):
    """Emits flits ``{number, check}`` with ``number`` counting up from 0.

    Members
    -------
    o : Out(stream.Signature(width))
        The flits: ``number`` in the low bits, its check word above.
    enable : In(1)
        Offer flits (``valid`` follows ``enable``; a flit offered stays until taken).
    sent : Out(32)
        Flits taken.
    """

    def __init__(self, width: int, stream_id: int = 0):
        if width < 8:
            raise ValueError(f"Width must be at least 8, not {width!r}")
        self.width, self.stream_id = width, stream_id
        super().__init__({"o": Out(stream.Signature(width)), "enable": In(1), "sent": Out(32)})

    def elaborate(self, platform):
        m = Module()
        number_width, check_width = _split(self.width)
        number = Signal(number_width)
        offering = Signal()
        m.d.comb += [
            self.o.valid.eq(offering | self.enable),
            self.o.payload.eq(Cat(number, check_word(
                Cat(number, number)[:check_width], self.stream_id, check_width))),
        ]
        with m.If(self.o.valid & ~self.o.ready):
            m.d.sync += offering.eq(1)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [number.eq(number + 1), offering.eq(0),
                         self.sent.eq(self.sent + 1)]
        return m


class SequenceChecker(wiring.Component):
    """Checks flits from a :class:`SequenceGenerator` of the same ``stream_id``.

    Members
    -------
    i : In(stream.Signature(width))
        Flits; always ready.
    received, lost, duplicated, corrupted : Out(32)
        Flits received; numbers never received intact (gaps: a corrupted flit's number
        counts here too, since it did not arrive); flits with a number already seen; flits
        whose check word is wrong. Saturating, except ``lost``.
    """

    def __init__(self, width: int, stream_id: int = 0):
        if width < 8:
            raise ValueError(f"Width must be at least 8, not {width!r}")
        self.width, self.stream_id = width, stream_id
        super().__init__({
            "i": In(stream.Signature(width)),
            "received": Out(32), "lost": Out(32), "duplicated": Out(32), "corrupted": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        number_width, check_width = _split(self.width)
        number = self.i.payload[:number_width]
        check = self.i.payload[number_width:]
        expected = Signal(number_width)
        take = Signal()
        good = Signal()
        m.d.comb += [
            self.i.ready.eq(1),
            take.eq(self.i.valid),
            good.eq(check == check_word(Cat(number, number)[:check_width], self.stream_id,
                                        check_width)),
        ]
        for name in ("received", "duplicated", "corrupted"):
            counter = SaturatingCounter(32)
            m.submodules[name] = counter
            m.d.comb += getattr(self, name).eq(counter.count)
        gap = Signal(number_width)
        ahead = Signal()
        behind = Signal()
        m.d.comb += [
            gap.eq(number - expected),
            ahead.eq(good & (gap != 0) & ~gap[-1]),
            behind.eq(good & gap[-1]),
            m.submodules.received.inc.eq(take),
            m.submodules.duplicated.inc.eq(take & behind),
            m.submodules.corrupted.inc.eq(take & ~good),
        ]
        with m.If(take & good & ~behind):
            m.d.sync += expected.eq(number + 1)
        with m.If(take & ahead):
            m.d.sync += self.lost.eq(self.lost + gap)
        return m
