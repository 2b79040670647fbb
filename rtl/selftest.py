"""Board self-test: a PRBS stream pushed through a credit channel and checked.

The default bitstream until the package lands. It exercises the credit rule at speed with
a consumer that stalls in a pseudo-random pattern, so credits run out and come back all the
time, and it reports on LEDs: ``ok`` (words checked, no error of any kind), ``error``
(a mismatch, an overrun or a credit overflow was counted) and ``heartbeat``.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .credit import CreditParams
from .credit_loopback import CreditLoopback
from .prbs import PrbsChecker, PrbsGenerator, PrbsParams

__all__ = ["SelfTestParams", "CreditSelfTest"]


@dataclass(frozen=True)
class SelfTestParams:
    """Parameters of the credit-channel self-test.

    Parameters
    ----------
    credit : CreditParams
        The channel under test.
    latency : int
        Wire stages each way.
    stall : bool
        The consumer stalls on about half the cycles, in a PRBS-7 pattern.
    heartbeat_bits : int
        The heartbeat LED toggles every ``2**heartbeat_bits`` cycles.
    """
    credit: CreditParams = field(default_factory=CreditParams)
    latency: int = 2
    stall: bool = True
    heartbeat_bits: int = 24


class CreditSelfTest(wiring.Component):
    """PRBS generator → credit channel (with wire latency) → stalling PRBS checker.

    Members
    -------
    ok : Out(1)
        At least one word checked and no error counted.
    error : Out(1)
        A mismatch, overrun or credit overflow was counted (sticky until reset).
    heartbeat : Out(1)
        Toggles while the clock runs.
    words, errors : Out(32)
        Checker counters.
    """

    def __init__(self, params: SelfTestParams = SelfTestParams()):
        self.params = params
        super().__init__({
            "ok": Out(1),
            "error": Out(1),
            "heartbeat": Out(1),
            "words": Out(32),
            "errors": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        width = p.credit.payload_width
        m.submodules.generator = generator = PrbsGenerator(PrbsParams(width=width))
        m.submodules.channel = channel = CreditLoopback(p.credit, latency=p.latency)
        m.submodules.checker = checker = PrbsChecker(PrbsParams(width=width))
        # A PRBS-7 stall pattern independent of the data sequence.
        m.submodules.stall = stall = PrbsGenerator(PrbsParams(width=1, order=7, seed=0x5A))

        m.d.comb += generator.enable.eq(1)
        wiring.connect(m, generator.o, channel.i)
        consumer_ready = Signal()
        m.d.comb += [
            stall.enable.eq(1),
            stall.o.ready.eq(1),
            consumer_ready.eq(~(stall.o.payload[0] & p.stall)),
            checker.i.payload.eq(channel.o.payload),
            checker.i.valid.eq(channel.o.valid & consumer_ready),
            channel.o.ready.eq(consumer_ready),
        ]

        fault = Signal()
        m.d.comb += [
            fault.eq((checker.errors != 0) | (channel.overruns != 0)
                     | (channel.credit_overflows != 0)),
            self.error.eq(fault),
            self.ok.eq((checker.words != 0) & ~fault),
            self.words.eq(checker.words),
            self.errors.eq(checker.errors),
        ]
        beat = Signal(p.heartbeat_bits)
        m.d.sync += beat.eq(beat + 1)
        m.d.comb += self.heartbeat.eq(beat[-1])
        return m
