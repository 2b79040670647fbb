"""The NoC's flit format and the router-to-router channel.

A *packet* is one or more *flits* on one virtual channel (VC). Every flit carries two flags
and its VC beside ``data_width`` bits of data:

============  ==========================  =============================================
field         bits                        meaning
============  ==========================  =============================================
``head``      1                           first flit of a packet
``tail``      1                           last flit of a packet (a 1-flit packet has both)
``vc``        ``ceil(log2(vcs))``         virtual channel = message class; fixed for the
                                          whole trip (0: requests, 1: responses, …)
``data``      ``data_width``              head flit: :meth:`FlitFormat.head_layout`
                                          (destination, then payload); other flits: payload
============  ==========================  =============================================

A head flit's ``data`` holds the destination in its low bits:
``dest = {port, x, y, die}`` (LSB first, widths from :class:`FlitFormat`), then the head
payload. Fields are packed LSB first in the order listed (Amaranth ``StructLayout`` order);
``chipknit.tb.models.noc`` encodes the same bits without importing this module, and a test
checks that the two agree.

Between routers a flit travels with its *lookahead route*: the output port it takes at the
router it is entering, computed by the router it leaves (:class:`LinkSignature`).
"""

import enum
from dataclasses import dataclass

from amaranth.hdl import Shape
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FlitFormat", "Direction", "LinkSignature", "DIRECTIONS"]


class Direction(enum.IntEnum):
    """The four mesh ports of a router; local ports are numbered after them.

    ``x`` grows to the east, ``y`` grows to the north.
    """
    EAST = 0
    WEST = 1
    NORTH = 2
    SOUTH = 3

    @property
    def delta(self) -> tuple[int, int]:
        return {Direction.EAST: (1, 0), Direction.WEST: (-1, 0),
                Direction.NORTH: (0, 1), Direction.SOUTH: (0, -1)}[self]

    @property
    def opposite(self) -> "Direction":
        return {Direction.EAST: Direction.WEST, Direction.WEST: Direction.EAST,
                Direction.NORTH: Direction.SOUTH, Direction.SOUTH: Direction.NORTH}[self]


DIRECTIONS = tuple(Direction)


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class FlitFormat:
    """Field widths of a flit.

    Parameters
    ----------
    data_width : int
        Data bits per flit (the "flit width" of the design targets). A head flit spends
        ``dest_width`` of them on the destination.
    vcs : int
        Virtual channels, at least 2 (request and response classes).
    die_bits, x_bits, y_bits, port_bits : int
        Widths of the destination fields. ``port`` selects a local port of the destination
        router; with one local port it must be 0.
    """
    data_width: int = 32
    vcs: int = 2
    die_bits: int = 2
    x_bits: int = 3
    y_bits: int = 3
    port_bits: int = 1

    def __post_init__(self):
        _positive("Data width", self.data_width)
        if not isinstance(self.vcs, int) or isinstance(self.vcs, bool) or self.vcs < 2:
            raise ValueError(f"VCs must be an integer of at least 2 (request and response "
                             f"classes), not {self.vcs!r}")
        for name in ("die_bits", "x_bits", "y_bits", "port_bits"):
            _positive(name.replace("_", " ").capitalize(), getattr(self, name))
        if self.dest_width >= self.data_width:
            raise ValueError(f"Data width {self.data_width} leaves no head payload after the "
                             f"{self.dest_width}-bit destination")

    @property
    def vc_bits(self) -> int:
        return Shape.cast(range(self.vcs)).width

    @property
    def dest_width(self) -> int:
        return self.port_bits + self.x_bits + self.y_bits + self.die_bits

    @property
    def dest_layout(self) -> data.StructLayout:
        """``{port, x, y, die}``, LSB first."""
        return data.StructLayout({
            "port": self.port_bits, "x": self.x_bits, "y": self.y_bits, "die": self.die_bits})

    @property
    def head_layout(self) -> data.StructLayout:
        """How a head flit's ``data`` is laid out: destination, then payload."""
        return data.StructLayout({
            "dest": self.dest_layout, "payload": self.data_width - self.dest_width})

    @property
    def layout(self) -> data.StructLayout:
        """One flit: ``{head, tail, vc, data}``, LSB first."""
        return data.StructLayout({
            "head": 1, "tail": 1, "vc": self.vc_bits, "data": self.data_width})

    @property
    def width(self) -> int:
        return self.layout.size


class LinkSignature(wiring.Signature):
    """A router-to-router channel, seen from the sending router.

    Flow control is by credits, one counter per VC: the sender starts with ``depth`` credits
    per VC (the receiver's buffer entries for that VC), spends one per flit and gets one back
    per ``credit`` pulse. There is no ready. ``valid`` and ``payload`` leave a register, and
    ``credit`` is a register at the receiver, so no combinational path crosses the channel.

    Members
    -------
    valid : Out(1)
        A flit is on ``payload`` this cycle.
    payload : Out(link_layout)
        ``{flit, route}``: the flit and its lookahead route, the output port it takes at
        the receiving router.
    credit : In(vcs)
        Bit ``v``: one entry of VC ``v``'s buffer was freed at the receiver.
    """

    def __init__(self, fmt: FlitFormat, ports: int):
        self._fmt = fmt
        self._ports = ports
        super().__init__({
            "valid": Out(1),
            "payload": Out(self.link_layout(fmt, ports)),
            "credit": In(fmt.vcs),
        })

    @staticmethod
    def link_layout(fmt: FlitFormat, ports: int) -> data.StructLayout:
        return data.StructLayout({"flit": fmt.layout, "route": range(ports)})

    @property
    def fmt(self):
        return self._fmt

    @property
    def ports(self):
        return self._ports

    def __eq__(self, other):
        return (type(other) is type(self) and other.fmt == self.fmt
                and other.ports == self.ports)

    def __repr__(self):
        return f"LinkSignature({self.fmt!r}, ports={self.ports})"
