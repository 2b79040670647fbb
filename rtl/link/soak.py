"""A link soak: both ends of a :class:`LinkPair` driven by self-checking traffic.

Every VC of both directions has a :class:`~chipknit.rtl.traffic.SequenceGenerator` at its
source and a :class:`~chipknit.rtl.traffic.SequenceChecker` at its sink, so a run of any
length ends with exact counts of flits delivered, lost, duplicated and corrupted, without a
testbench following each flit. Used by ``chipknit bench link`` and, on a board, as a link
self-test.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..traffic import SequenceChecker, SequenceGenerator
from .frame import LinkParams
from .pair import LinkPair
from .receiver import ReceiverStatus
from .transmitter import TransmitterStatus

__all__ = ["LinkSoak", "STREAM_COUNTERS"]

STREAM_COUNTERS = ("sent", "received", "lost", "duplicated", "corrupted")


class LinkSoak(wiring.Component):
    """Traffic generators and checkers around a link pair.

    Members
    -------
    enable : In(1)
        Generators offer flits (saturating load) while high.
    sink_ready : In(1)
        Checkers' consumers take flits while high (low to exert backpressure).
    error_threshold, tx_ready : In
        As for :class:`LinkPair`.
    stream_<a|b>_<vc>_<counter> : Out(32)
        Per direction (``a`` = flits sent by end A) and VC: sent, received, lost,
        duplicated, corrupted.
    a_tx_status, a_rx_status, b_tx_status, b_rx_status, a_errors, b_errors : Out
        As for :class:`LinkPair`.
    """

    def __init__(self, params: LinkParams = LinkParams(), latency: int = 2):
        self.params, self.latency = params, latency
        ports = {
            "enable": In(1),
            "sink_ready": In(1, init=1),
            "error_threshold": In(32),
            "tx_ready": In(1, init=1),
            "a_tx_status": Out(TransmitterStatus(params)),
            "a_rx_status": Out(ReceiverStatus(params)),
            "b_tx_status": Out(TransmitterStatus(params)),
            "b_rx_status": Out(ReceiverStatus(params)),
            "a_errors": Out(32),
            "b_errors": Out(32),
        }
        for end in ("a", "b"):
            for vc in range(params.vcs):
                for counter in STREAM_COUNTERS:
                    ports[f"stream_{end}_{vc}_{counter}"] = Out(32)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.pair = pair = LinkPair(p, latency=self.latency)
        m.d.comb += [pair.error_threshold.eq(self.error_threshold),
                     pair.tx_ready.eq(self.tx_ready),
                     self.a_errors.eq(pair.a_errors), self.b_errors.eq(pair.b_errors)]
        for name in ("a_tx_status", "a_rx_status", "b_tx_status", "b_rx_status"):
            wiring.connect(m, getattr(pair, name), wiring.flipped(getattr(self, name)))
        for end, sink_end in (("a", "b"), ("b", "a")):
            for vc in range(p.vcs):
                stream_id = vc * 2 + (end == "b")
                generator = SequenceGenerator(p.flit_width, stream_id)
                checker = SequenceChecker(p.flit_width, stream_id)
                m.submodules[f"generator_{end}_{vc}"] = generator
                m.submodules[f"checker_{end}_{vc}"] = checker
                source = getattr(pair, f"{end}_i")[vc]
                sink = getattr(pair, f"{sink_end}_o")[vc]
                wiring.connect(m, generator.o, source)
                m.d.comb += [
                    generator.enable.eq(self.enable),
                    checker.i.valid.eq(sink.valid & self.sink_ready),
                    checker.i.payload.eq(sink.payload),
                    sink.ready.eq(self.sink_ready),
                    getattr(self, f"stream_{end}_{vc}_sent").eq(generator.sent),
                ]
                for counter in STREAM_COUNTERS[1:]:
                    m.d.comb += getattr(self, f"stream_{end}_{vc}_{counter}").eq(
                        getattr(checker, counter))
        return m
