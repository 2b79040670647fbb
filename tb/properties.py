"""Formal property wrappers: each puts a block under proof with free inputs and asserts its
invariants. Run by :func:`chipknit.tb.formal.check` (see ``tests/test_formal.py``).

The free inputs are top-level ports, so the solver may drive them arbitrarily every cycle
(including ``rst``); ``Assume`` restricts them only where the block's protocol says so.
"""

from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from chipknit.rtl.credit import CreditParams, CreditReceiver, CreditSender
from chipknit.rtl.link.commit_fifo import CommitFifo

__all__ = ["CreditChannelProperties", "CommitFifoProperties"]


class CreditChannelProperties(wiring.Component):
    """Sender, ``latency`` wire stages each way, receiver; any traffic, any consumer.

    Proves, for all time: the sender never holds more than ``depth`` credits; every credit
    is somewhere (held, a flit on the wire, a buffered flit, or a credit on its way back), so
    credits are neither created nor lost; and the receiver never gets a flit it has no room
    for (no overrun).
    """

    def __init__(self, params: CreditParams = CreditParams(payload_width=2, depth=3),
                 latency: int = 1, sender_class=CreditSender):
        self.params, self.latency, self.sender_class = params, latency, sender_class
        super().__init__({
            "i_valid": In(1),
            "i_payload": In(params.payload_width),
            "o_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.sender = sender = self.sender_class(p)
        m.submodules.receiver = receiver = CreditReceiver(p)
        m.d.comb += [
            sender.i.valid.eq(self.i_valid),
            sender.i.payload.eq(self.i_payload),
            receiver.o.ready.eq(self.o_ready),
        ]
        valid, payload, credit = sender.o.valid, sender.o.payload, receiver.i.credit
        in_flight = []
        for stage in range(self.latency):
            v, d, c = Signal(name=f"v{stage}"), Signal.like(payload, name=f"d{stage}"), \
                Signal(name=f"c{stage}")
            m.d.sync += [v.eq(valid), d.eq(payload), c.eq(credit)]
            in_flight += [v, c]
            valid, payload, credit = v, d, c
        m.d.comb += [
            receiver.i.valid.eq(valid),
            receiver.i.payload.eq(payload),
            sender.o.credit.eq(credit),
        ]
        # Everything the loop holds, counted in credits.
        held = (sender.credits + sender.o.valid + receiver.i.credit + receiver.level
                + sum(in_flight))
        m.d.comb += [
            Assert(sender.credits <= p.depth),
            Assert(held == p.depth),
            Assert(~(receiver.i.valid & (receiver.level == p.depth))),
            Assert(receiver.overruns == 0),
            Assert(sender.credit_overflows == 0),
        ]
        return m


class CommitFifoProperties(wiring.Component):
    """A :class:`CommitFifo` under any legal use.

    Assumes the documented protocol (``keep`` at most the pending entries, no write in a
    settle cycle) and proves: committed plus tentative entries never exceed the depth, the
    reader sees an entry only when one is committed, and a settle leaves nothing pending.
    """

    def __init__(self, depth: int = 5, max_keep: int = 3):
        self.depth, self.max_keep = depth, max_keep
        super().__init__({
            "w_en": In(1), "w_data": In(2), "settle": In(1),
            "keep": In(range(max_keep + 1)), "r_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = CommitFifo(2, self.depth, self.max_keep)
        m.d.comb += [
            fifo.w_en.eq(self.w_en), fifo.w_data.eq(self.w_data), fifo.settle.eq(self.settle),
            fifo.keep.eq(self.keep), fifo.r.ready.eq(self.r_ready),
            Assume(~(self.settle & self.w_en)),
            Assume(~self.settle | (self.keep <= fifo.pending)),
            Assert(fifo.level + fifo.pending <= self.depth),
            Assert(fifo.r.valid == (fifo.level != 0)),
            Assert(fifo.w_rdy == (fifo.level + fifo.pending < self.depth)),
            Assert(fifo.used == fifo.level + fifo.pending),
            Assert(fifo.pointers_ok),
        ]
        settled = Signal()
        m.d.sync += settled.eq(self.settle)
        m.d.comb += Assert(~settled | (fifo.pending == 0))
        return m


class LinkReceiverProperties(wiring.Component):
    """A :class:`LinkReceiver` fed arbitrary beats (any data, any timing, any corruption).

    Proves, for all time: a VC buffer commits flits only in the cycle a frame passed its CRC
    (so a flit from a frame whose CRC failed is never delivered), and never commits more than
    the frame's slots.
    """

    def __init__(self, params=None):
        from chipknit.rtl.link.frame import LinkParams
        self.params = params or LinkParams(flit_width=16, vcs=2, beat_width=16, frame_flits=2,
                                           seq_bits=3, replay_frames=2, rx_credits=2)
        super().__init__({
            "beat_valid": In(1), "beat": In(self.params.beat_width),
            "o_ready": In(self.params.vcs),
        })

    def elaborate(self, platform):
        from chipknit.rtl.link.receiver import LinkReceiver
        m = Module()
        p = self.params
        m.submodules.receiver = receiver = LinkReceiver(p)
        m.d.comb += [receiver.beats.valid.eq(self.beat_valid),
                     receiver.beats.payload.eq(self.beat)]
        for vc, buffer in enumerate(receiver.buffers):
            m.d.comb += [
                receiver.o[vc].ready.eq(self.o_ready[vc]),
                Assert(~(buffer.settle & buffer.commit & (buffer.keep != 0))
                       | receiver.frame_ok),
                Assert(~(buffer.settle & buffer.commit) | (buffer.keep <= p.frame_flits)),
            ]
        return m
