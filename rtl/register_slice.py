"""A stream register slice: cuts every combinational path between two blocks.

A :class:`RegisterSlice` sits on a ``lib.stream`` between a producer and a consumer that may
be far apart on the FPGA (a tile's network interface and its router). Everything it drives is
a register: ``o.valid`` and ``o.payload`` on the consumer's side, ``i.ready`` on the
producer's. So no path runs from one block, through the other, and back (as a handshake
``valid & ready`` does when both ends decide on it in the same cycle), and each path that
crosses the gap is one route long.

It holds two entries (the output register and a spare), so it moves one transfer every cycle
at any pattern of ``o.ready``, at one cycle of latency: a transfer taken at an edge is offered
from the next. When the consumer stalls, the spare takes the one transfer the producer was
still allowed (its ``i.ready`` was a register, decided a cycle earlier); ``i.ready`` drops
until the spare has moved to the output.

Reset empties both entries: what they held is lost, as in a router's buffers (a reset covers
the whole network, docs/noc.md).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice", "connect_through_slice"]


class RegisterSlice(wiring.Component):
    """A full-rate, two-entry stream register slice (one cycle of latency).

    Parameters
    ----------
    shape : shape-like
        The payload's shape (a ``lib.data`` layout or a plain width).

    Attributes
    ----------
    i : In(stream.Signature(shape))
        From the producer; ``i.ready`` is a register.
    o : Out(stream.Signature(shape))
        To the consumer; ``o.valid`` and ``o.payload`` are registers.
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        spare = Signal(self._shape, name="spare")
        spare_valid = Signal()
        # The output register takes a new value whenever it is empty or being taken.
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(~spare_valid)
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(spare_valid | self.i.valid),
                self.o.payload.eq(Mux(spare_valid, spare, self.i.payload)),
                spare_valid.eq(0),
            ]
        with m.Elif(self.i.valid & ~spare_valid):
            m.d.sync += spare_valid.eq(1)
        # The spare follows the input while it is empty (its enable is a register, so the
        # consumer's ``o.ready`` does not fan out to it).
        with m.If(~spare_valid):
            m.d.sync += spare.eq(self.i.payload)
        return m


def connect_through_slice(m, name: str, source, sink) -> RegisterSlice:
    """Connect the stream ``source`` to ``sink`` through a :class:`RegisterSlice` added to
    ``m`` as submodule ``name`` (one cycle more, full rate); returns the slice."""
    stage = m.submodules[name] = RegisterSlice(source.payload.shape())
    wiring.connect(m, source, stage.i)
    wiring.connect(m, stage.o, sink)
    return stage
