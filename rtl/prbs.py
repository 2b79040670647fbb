"""Pseudo-random bit sequence generator and checker (ITU-T O.150 PRBS patterns).

Lane tests and self-tests send a PRBS and check it at the far end: the checker knows the
sequence, so it needs no copy of what was sent. Both produce or consume ``width`` bits per
cycle, the LFSR stepped ``width`` times per cycle as an XOR network built at elaboration.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .credit import SaturatingCounter

__all__ = ["PrbsParams", "PrbsGenerator", "PrbsChecker", "PRBS_TAPS"]

# Polynomial taps (1-based bit positions of x^n terms) of the standard patterns.
PRBS_TAPS = {7: (7, 6), 9: (9, 5), 15: (15, 14), 23: (23, 18), 31: (31, 28)}


@dataclass(frozen=True)
class PrbsParams:
    """Parameters of a PRBS generator or checker.

    Parameters
    ----------
    width : int
        Bits per word (per cycle).
    order : int
        The pattern: PRBS-7, -9, -15, -23 or -31.
    seed : int
        Non-zero initial LFSR state.
    counter_width : int
        Width of the saturating word and error counters.
    """
    width: int = 32
    order: int = 31
    seed: int = 1
    counter_width: int = 32

    def __post_init__(self):
        if self.order not in PRBS_TAPS:
            raise ValueError(f"PRBS order must be one of {sorted(PRBS_TAPS)}, not {self.order!r}")
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"Width must be a positive integer, not {self.width!r}")
        if not 0 < self.seed < (1 << self.order):
            raise ValueError(f"Seed must be non-zero and fit in {self.order} bits, "
                             f"not {self.seed!r}")


def _step_bits(state, order, count):
    """Advance a Fibonacci LFSR ``count`` times; return (bits out, new state).

    ``state`` is a list of ``order`` Amaranth values; bit ``i`` holds the term ``x^(i+1)``.
    Output bits come first-out at index 0.
    """
    tap_a, tap_b = PRBS_TAPS[order]
    state = list(state)
    out = []
    for _ in range(count):
        new = state[tap_a - 1] ^ state[tap_b - 1]
        out.append(new)
        state = [new] + state[:-1]
    return out, state


class PrbsGenerator(wiring.Component):
    """Emits the PRBS as a stream of ``width``-bit words.

    Members
    -------
    o : Out(stream.Signature(width))
        The sequence; ``valid`` is held while ``enable`` is high.
    enable : In(1)
        Produce words.
    """

    def __init__(self, params: PrbsParams = PrbsParams()):
        self.params = params
        super().__init__({
            "o": Out(stream.Signature(params.width)),
            "enable": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        state = Signal(p.order, init=p.seed)
        bits, next_state = _step_bits(list(state), p.order, p.width)
        word = Signal(p.width)
        advanced = Signal(p.order)
        m.d.comb += [word.eq(Cat(*bits)), advanced.eq(Cat(*next_state))]
        m.d.comb += self.o.valid.eq(self.enable)
        m.d.comb += self.o.payload.eq(word)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += state.eq(advanced)
        return m


class PrbsChecker(wiring.Component):
    """Checks a stream against the PRBS it should carry.

    The checker runs its own copy of the LFSR from the same seed, so a lost, duplicated
    or corrupted word shows up as a mismatch.

    Members
    -------
    i : In(stream.Signature(width))
        Words to check; always ready.
    words : Out(counter_width)
        Words checked.
    errors : Out(counter_width)
        Words that did not match.
    """

    def __init__(self, params: PrbsParams = PrbsParams()):
        self.params = params
        super().__init__({
            "i": In(stream.Signature(params.width)),
            "words": Out(params.counter_width),
            "errors": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.word_count = words = SaturatingCounter(p.counter_width)
        m.submodules.error_count = errors = SaturatingCounter(p.counter_width)
        state = Signal(p.order, init=p.seed)
        bits, next_state = _step_bits(list(state), p.order, p.width)
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(1),
            take.eq(self.i.valid),
            words.inc.eq(take),
            errors.inc.eq(take & (self.i.payload != Cat(*bits))),
            self.words.eq(words.count),
            self.errors.eq(errors.count),
        ]
        with m.If(take):
            m.d.sync += state.eq(Cat(*next_state))
        return m

