"""A credit channel with a wire of configurable latency and fault injection in between.

This is the smallest complete credit-flow system: :class:`~chipknit.rtl.credit.CreditSender`,
``latency`` register stages each way (the wire, a link, a pipelined route), and
:class:`~chipknit.rtl.credit.CreditReceiver`. Testbenches and benchmarks use it to check the
credit rule end to end; the board self-test uses it as its device under test.
"""

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .credit import CreditParams, CreditReceiver, CreditSender, SaturatingCounter

__all__ = ["CreditLoopback"]


class CreditLoopback(wiring.Component):
    """Sender, wire and receiver of one credit channel.

    Parameters
    ----------
    params : CreditParams
    latency : int
        Register stages on the wire, each way (0 = sender and receiver side by side).

    Members
    -------
    i : In(stream.Signature(payload_width))
        Flits in.
    o : Out(stream.Signature(payload_width))
        The same flits out, in order.
    drop_credit : In(1)
        Fault: a pulse arms the wire to lose the next credit that passes on the return path
        (pulses add up, to 15 pending).
    dropped_credits : Out(counter_width)
        Credits the wire has lost so far.
    extra_credit : In(1)
        Fault: put a spurious credit on the return wire this cycle.
    sender_reset, receiver_reset : In(1)
        Fault: reset only one end (synchronously); the wire keeps what is in flight.
    credits, level, credit_overflows, overruns : Out
        The status of both ends (see :class:`CreditSender`, :class:`CreditReceiver`).
    """

    def __init__(self, params: CreditParams = CreditParams(), latency: int = 1):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"Latency must be a non-negative integer, not {latency!r}")
        self.params = params
        self.latency = latency
        super().__init__({
            "i": In(stream.Signature(params.payload_width)),
            "o": Out(stream.Signature(params.payload_width)),
            "drop_credit": In(1),
            "dropped_credits": Out(params.counter_width),
            "extra_credit": In(1),
            "sender_reset": In(1),
            "receiver_reset": In(1),
            "credits": Out(range(params.depth + 1)),
            "level": Out(range(params.depth + 1)),
            "credit_overflows": Out(params.counter_width),
            "overruns": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        sender = CreditSender(self.params)
        receiver = CreditReceiver(self.params)
        m.submodules.sender = ResetInserter(self.sender_reset)(sender)
        m.submodules.receiver = ResetInserter(self.receiver_reset)(receiver)
        wiring.connect(m, wiring.flipped(self.i), sender.i)
        wiring.connect(m, receiver.o, wiring.flipped(self.o))

        # The wire: `latency` stages forward (valid, payload) and back (credit).
        valid, payload = sender.o.valid, sender.o.payload
        credit = receiver.i.credit
        for stage in range(self.latency):
            next_valid = Signal(name=f"wire_valid_{stage}")
            next_payload = Signal.like(payload, name=f"wire_payload_{stage}")
            next_credit = Signal(name=f"wire_credit_{stage}")
            m.d.sync += [
                next_valid.eq(valid),
                next_payload.eq(payload),
                next_credit.eq(credit),
            ]
            valid, payload, credit = next_valid, next_payload, next_credit
        # Armed credit loss: each `drop_credit` pulse eats the next credit on the wire.
        m.submodules.dropped = dropped = SaturatingCounter(self.params.counter_width)
        pending_drops = Signal(4)
        drop = Signal()
        m.d.comb += drop.eq(credit & (pending_drops != 0))
        with m.If(self.drop_credit & ~drop & (pending_drops != 15)):
            m.d.sync += pending_drops.eq(pending_drops + 1)
        with m.Elif(drop & ~self.drop_credit):
            m.d.sync += pending_drops.eq(pending_drops - 1)
        m.d.comb += [
            dropped.inc.eq(drop),
            self.dropped_credits.eq(dropped.count),
            receiver.i.valid.eq(valid),
            receiver.i.payload.eq(payload),
            sender.o.credit.eq((credit & ~drop) | self.extra_credit),
            self.credits.eq(sender.credits),
            self.level.eq(receiver.level),
            self.credit_overflows.eq(sender.credit_overflows),
            self.overruns.eq(receiver.overruns),
        ]
        return m
