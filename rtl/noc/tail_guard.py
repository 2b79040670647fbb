"""Hold back a packet's last flit until its next one arrives, so a cut packet ends in a real
flit marked as its tail.

A packet that arrives over a die link can be cut short: the link (or the die behind it)
resets, or a flit is lost and the next packet's head comes first. The router it enters must
still see the packet end, or the wormhole it holds stays wedged. Closing it with a made-up
tail flit would hand the receiver a beat it cannot tell from data (a read response cut just
before its last beat would end in a zero that looks like the data). This stage instead keeps
the newest flit of an open packet until the flit after it is there: if that flit continues
the packet, the held one leaves as it is; if the packet was cut (``cut``, or a head comes
next), the held one leaves marked as the tail. The packet then ends early, where a network
interface sees a short packet and answers with an error (docs/noc.md, *Network
interfaces*), never a value.

A tail, and a flit that is no part of a packet (a body flit with no head before it), leave
in the next cycle. The cost is one cycle per flit, and a packet's flit waits for the next
one, so a packet's tail leaves when it would have anyway, a cycle later.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TailGuard"]


class TailGuard(wiring.Component):
    """One VC's flits from a die link, held back one flit within a packet.

    Parameters
    ----------
    layout : StructLayout
        The flit layout; it must have ``head`` and ``tail`` bits.

    Members
    -------
    i : In(stream.Signature(layout))
        Flits from the link. Not taken while ``cut`` is high.
    o : Out(stream.Signature(layout))
        The same flits, in order; the last flit of a cut packet with ``tail`` set.
    cut : In(1)
        The link is down (or the die behind it in reset): the open packet's remaining flits
        will not come. Its held flit leaves as the tail (also after ``cut`` falls).
    truncated : Out(1)
        Pulse: a flit leaves ``o`` with a tail it did not have (a packet was cut).
    """

    def __init__(self, layout: data.StructLayout):
        if not {"head", "tail"} <= set(name for name, _ in layout):
            raise ValueError(f"The flit layout needs head and tail bits, not {layout!r}")
        self.layout = layout
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "cut": In(1),
            "truncated": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        held = Signal(self.layout)
        held_valid = Signal()
        in_packet = Signal()        # the held flit is a head or continues an open packet
        closing = Signal()          # its packet was cut while it waited: it leaves as tail
        arriving = self.i.valid & ~self.cut
        incoming = self.i.payload
        waiting = held_valid & in_packet & ~held.tail     # an open packet's newest flit
        force = waiting & (self.cut | closing | (arriving & incoming.head))
        leaves = Signal()
        m.d.comb += [
            self.o.valid.eq(held_valid & (~waiting | arriving | force)),
            self.o.payload.eq(held),
            self.o.payload.tail.eq(held.tail | force),
            leaves.eq(self.o.valid & self.o.ready),
            self.truncated.eq(leaves & force),
            # Every flit goes through the hold: taken when it is empty or leaving.
            self.i.ready.eq(~self.cut & (~held_valid | leaves)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                held.eq(incoming),
                held_valid.eq(1),
                # A head opens a packet; a flit after an open packet's flit that left as it
                # was continues it (after a tail or a cut it is outside any packet).
                in_packet.eq(incoming.head | (waiting & ~force)),
            ]
        with m.Elif(leaves):
            m.d.sync += held_valid.eq(0)
        with m.If(leaves):
            m.d.sync += closing.eq(0)
        with m.Elif(self.cut & waiting):
            m.d.sync += closing.eq(1)
        return m
