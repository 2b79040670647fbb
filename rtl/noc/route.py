"""Dimension-order (XY) routing inside one die.

A packet first travels along ``x`` until its column matches, then along ``y``, then leaves
through the local port its destination names. A route never turns from ``y`` back to ``x``,
so the channel-dependency graph of a mesh has no cycle and XY routing cannot deadlock
(docs/noc.md gives the argument). A destination outside the die — another die, a column or
row beyond the mesh, a local port the router does not have — is *unroutable*: the route
computer says so, and the router drops and counts such a packet at injection.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .flit import Direction, FlitFormat

__all__ = ["MeshGeometry", "RouteComputer"]


@dataclass(frozen=True)
class MeshGeometry:
    """The mesh a router sits in, as routing needs it.

    Parameters
    ----------
    columns, rows : int
        Mesh size; ``x`` in ``0..columns-1``, ``y`` in ``0..rows-1``.
    die : int
        This die's number; a destination on another die is unroutable (for now).
    local_ports : int
        Local (tile) ports per router, numbered after the four mesh ports.
    """
    columns: int = 4
    rows: int = 4
    die: int = 0
    local_ports: int = 1

    def __post_init__(self):
        for name in ("columns", "rows", "local_ports"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {value!r}")
        if not isinstance(self.die, int) or isinstance(self.die, bool) or self.die < 0:
            raise ValueError(f"Die must be a non-negative integer, not {self.die!r}")

    @property
    def ports(self) -> int:
        """Ports per router: four mesh ports, then the local ones."""
        return len(Direction) + self.local_ports

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows

    def check_fits(self, fmt: FlitFormat) -> None:
        """Raise ``ValueError`` unless every router and local port is addressable."""
        for field, count in (("x_bits", self.columns), ("y_bits", self.rows),
                             ("port_bits", self.local_ports), ("die_bits", self.die + 1)):
            if count > 1 << getattr(fmt, field):
                raise ValueError(f"{count} values do not fit the flit format's "
                                 f"{field}={getattr(fmt, field)}")


class RouteComputer(wiring.Component):
    """XY route of a destination, seen from the router at ``(x, y)`` (combinational).

    Members
    -------
    dest : In(fmt.dest_layout)
        The destination field of a head flit.
    port : Out(range(geometry.ports))
        The output port to take: a :class:`Direction`, or ``4 + dest.port`` once there.
        Meaningless when ``routable`` is low.
    routable : Out(1)
        The destination is in this die's mesh and names a local port that exists.
    """

    def __init__(self, fmt: FlitFormat, geometry: MeshGeometry, x: int, y: int):
        geometry.check_fits(fmt)
        self.fmt, self.geometry, self.x, self.y = fmt, geometry, x, y
        super().__init__({
            "dest": In(fmt.dest_layout),
            "port": Out(range(geometry.ports)),
            "routable": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        geometry, dest, fmt = self.geometry, self.dest, self.fmt
        # Only the comparisons that can fail are built: a constant comparison is wasted logic
        # and a lint finding (CMPCONST).
        checks = [dest.die == geometry.die]
        for field, limit in (("x", geometry.columns), ("y", geometry.rows),
                             ("port", geometry.local_ports)):
            if limit < 1 << getattr(fmt, f"{field}_bits"):
                checks.append(getattr(dest, field) < limit)
        routable = checks[0]
        for check in checks[1:]:
            routable = routable & check
        m.d.comb += self.routable.eq(routable)

        x_max, y_max = (1 << fmt.x_bits) - 1, (1 << fmt.y_bits) - 1
        # Dimension order: x first, then y, then the local port. Directions that cannot
        # happen from this position (a comparison that is constant) are left out.
        choices = []
        if self.x < x_max:
            choices.append((dest.x > self.x, Direction.EAST))
        if self.x > 0:
            choices.append((dest.x < self.x, Direction.WEST))
        if self.y < y_max:
            choices.append((dest.y > self.y, Direction.NORTH))
        if self.y > 0:
            choices.append((dest.y < self.y, Direction.SOUTH))
        port = len(Direction) + dest.port
        for condition, direction in reversed(choices):
            port = Mux(condition, direction, port)
        m.d.comb += self.port.eq(port)
        return m
