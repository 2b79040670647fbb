"""Credit-based flow control between a sender and a receiver buffer.

A credit channel carries flits from a :class:`CreditSender` to a :class:`CreditReceiver`
over a path that may take several cycles each way (a die-to-die link, a router-to-router
wire with pipeline registers). The sender may only send while it holds credits; it starts
with one credit per receiver buffer entry and gets one back each time the receiver's
consumer takes a flit. This is how the NoC routers and the link layer's per-VC flow control
keep a buffer from ever overflowing without a combinational ready path across the wire.

Both ends of a channel belong to one reset: if only one end is reset, the credit count and
the buffer occupancy disagree. That is a fault, and each end detects its half of it:

- the receiver counts a flit that arrives while its buffer is full (``overruns``) and drops
  it — the flit is *reported*, not silently lost;
- the sender counts a credit returned while it already holds every credit
  (``credit_overflows``) and ignores it, so it can never send more than the buffer holds.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CreditParams", "CreditSignature", "CreditSender", "CreditReceiver",
           "SaturatingCounter", "add_event_counters"]


@dataclass(frozen=True)
class CreditParams:
    """Parameters of one credit channel.

    Parameters
    ----------
    payload_width : int
        Bits per flit.
    depth : int
        Receiver buffer entries; also the number of credits the sender starts with. To keep
        the channel at one flit per cycle it must cover the round trip (see ``docs/``).
    counter_width : int
        Width of the saturating error counters.
    """
    payload_width: int = 32
    depth: int = 4
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.payload_width, int) or self.payload_width < 1:
            raise ValueError(
                f"Payload width must be a positive integer, not {self.payload_width!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"Depth must be a positive integer, not {self.depth!r}")
        if not isinstance(self.counter_width, int) or self.counter_width < 1:
            raise ValueError(
                f"Counter width must be a positive integer, not {self.counter_width!r}")


class CreditSignature(wiring.Signature):
    """The wires of a credit channel, seen from the sender.

    Members
    -------
    valid : Out(1)
        A flit is on ``payload`` this cycle. There is no ready: the sender only sends
        while it holds a credit, so the receiver always has room.
    payload : Out(shape)
        The flit.
    credit : In(1)
        One buffer entry was freed at the receiver; one pulse returns one credit.
    """

    def __init__(self, payload_shape):
        self._payload_shape = Shape.cast(payload_shape)
        super().__init__({
            "valid": Out(1),
            "payload": Out(payload_shape),
            "credit": In(1),
        })

    @property
    def payload_shape(self):
        return self._payload_shape

    def __eq__(self, other):
        return type(other) is type(self) and other.payload_shape == self.payload_shape

    def __repr__(self):
        return f"CreditSignature({self.payload_shape!r})"


class SaturatingCounter(wiring.Component):
    """An event counter that stops at its maximum instead of wrapping.

    Parameters
    ----------
    width : int
    registered : bool
        Register ``inc`` before counting: ``count`` shows an event a cycle later, and the
        logic that decides the event ends at a flip-flop instead of running on into the
        counter's carry chain (status counters of fast blocks: the link, the host bridge).

    Members
    -------
    inc : In(1)
        Count one event this cycle.
    count : Out(width)
        Events seen since reset (up to the cycle before, if ``registered``), saturating at
        ``2**width - 1``.
    """

    def __init__(self, width, *, registered=False):
        self.registered = registered
        super().__init__({"inc": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        inc = self.inc
        if self.registered:
            inc = Signal()
            m.d.sync += inc.eq(self.inc)
        with m.If(inc & (self.count != (1 << len(self.count)) - 1)):
            m.d.sync += self.count.eq(self.count + 1)
        return m


def add_event_counters(m: Module, outputs, names, width: int) -> dict:
    """Give each output ``outputs.<name>`` a :class:`SaturatingCounter` of ``width`` bits,
    its events registered (the counts lag a cycle; no event logic reaches a carry chain).

    Returns ``{name: inc}``: drive ``inc`` high for one count per cycle.
    """
    increments = {}
    for name in names:
        counter = SaturatingCounter(width, registered=True)
        m.submodules[f"count_{name}"] = counter
        m.d.comb += getattr(outputs, name).eq(counter.count)
        increments[name] = counter.inc
    return increments


class CreditSender(wiring.Component):
    """Sends a stream over a credit channel.

    The flit and ``valid`` leave through registers, so the wire side has no combinational
    path back to the stream side. ``i.ready`` depends only on the credit count, never on
    ``i.valid``.

    Members
    -------
    i : In(stream.Signature(payload_width))
        Flits to send.
    o : Out(CreditSignature(payload_width))
        The channel.
    credits : Out(range(depth + 1))
        Credits held now.
    credit_overflows : Out(counter_width)
        Credits returned while every credit was already held (a protocol fault); ignored.
    """

    def __init__(self, params: CreditParams):
        self.params = params
        super().__init__({
            "i": In(stream.Signature(params.payload_width)),
            "o": Out(CreditSignature(params.payload_width)),
            "credits": Out(range(params.depth + 1), init=params.depth),
            "credit_overflows": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.params.depth
        m.submodules.overflows = overflows = SaturatingCounter(self.params.counter_width)

        send = Signal()
        m.d.comb += [
            self.i.ready.eq(self.credits != 0),
            send.eq(self.i.valid & self.i.ready),
        ]
        m.d.sync += self.o.valid.eq(send)
        with m.If(send):
            m.d.sync += self.o.payload.eq(self.i.payload)

        overflow = Signal()
        m.d.comb += overflow.eq(self.o.credit & ~send & (self.credits == depth))
        with m.If(send & ~self.o.credit):
            m.d.sync += self.credits.eq(self.credits - 1)
        with m.Elif(self.o.credit & ~send & ~overflow):
            m.d.sync += self.credits.eq(self.credits + 1)
        m.d.comb += [
            overflows.inc.eq(overflow),
            self.credit_overflows.eq(overflows.count),
        ]
        return m


class CreditReceiver(wiring.Component):
    """Buffers a credit channel and hands its flits on as a stream.

    A credit goes back (registered) in the cycle after the consumer takes a flit.

    The buffer is a :class:`~amaranth.lib.fifo.SyncFIFO`, whose ``w_rdy`` is exactly
    ``level < depth``: the credit rule needs the buffer to take ``depth`` flits whatever their
    timing. (``SyncFIFOBuffered`` does not: at depth 2 it refuses a flit that arrives the
    cycle after another reached it empty, because its inner FIFO is still full while the
    first flit moves to the output register — our testbench caught that as a lost flit.)

    Members
    -------
    i : In(CreditSignature(payload_width))
        The channel.
    o : Out(stream.Signature(payload_width))
        Received flits, in order.
    level : Out(range(depth + 1))
        Flits buffered now.
    overruns : Out(counter_width)
        Flits that arrived with the buffer full (the sender broke the credit rule); dropped.
    """

    def __init__(self, params: CreditParams):
        self.params = params
        super().__init__({
            "i": In(CreditSignature(params.payload_width)),
            "o": Out(stream.Signature(params.payload_width)),
            "level": Out(range(params.depth + 1)),
            "overruns": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = fifo.SyncFIFO(
            width=self.params.payload_width, depth=self.params.depth)
        m.submodules.overruns = overruns = SaturatingCounter(self.params.counter_width)

        m.d.comb += [
            buffer.w_data.eq(self.i.payload),
            buffer.w_en.eq(self.i.valid),
            overruns.inc.eq(self.i.valid & ~buffer.w_rdy),
            self.overruns.eq(overruns.count),
            self.o.payload.eq(buffer.r_data),
            self.o.valid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.o.ready),
            self.level.eq(buffer.level),
        ]
        m.d.sync += self.i.credit.eq(self.o.valid & self.o.ready)
        return m
