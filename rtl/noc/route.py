"""Dimension-order (XY) routing inside one die, and out of it through gateways.

A packet first travels along ``x`` until its column matches, then along ``y``, then leaves
through the local port its destination names. A route never turns from ``y`` back to ``x``,
so the channel-dependency graph of a mesh has no cycle and XY routing cannot deadlock
(docs/noc.md gives the argument).

A destination on another die is reached through a :class:`Gateway`: the router of this die
that owns the link toward it, and the mesh-edge port of that router which leaves the die.
The packet travels XY to the gateway router, then out of that edge port; the die at the
other end routes it on. Which gateway serves which die is decided for the whole package
(``chipknit.rtl.package``), which also checks that the resulting routes cannot deadlock.
Without gateways a router behaves exactly as in a single die.

A destination that does not exist — a die with no gateway, a column or row beyond the
destination die's mesh, a local port its router does not have — is *unroutable*: the route
computer says so, and the router drops and counts such a packet at injection.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .flit import Direction, FlitFormat

__all__ = ["Gateway", "MeshGeometry", "RouteComputer", "xy_target"]


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class Gateway:
    """Where packets for another die leave this one.

    Parameters
    ----------
    die : int
        The destination die.
    x, y : int
        The router of this die that owns the link the packets take.
    direction : Direction
        The port of that router that leaves the die (it must point off the mesh edge).
    columns, rows, local_ports : int
        The destination die's mesh, so that injection can refuse a destination that does
        not exist there (nothing downstream of the injecting router drops packets).
    """
    die: int
    x: int
    y: int
    direction: Direction
    columns: int = 1
    rows: int = 1
    local_ports: int = 1

    def __post_init__(self):
        if not isinstance(self.die, int) or isinstance(self.die, bool) or self.die < 0:
            raise ValueError(f"Gateway die must be a non-negative integer, not {self.die!r}")
        if not isinstance(self.direction, Direction):
            raise TypeError(f"Gateway direction must be a Direction, not {self.direction!r}")
        for name in ("columns", "rows", "local_ports"):
            _check_positive(f"Gateway {name.replace('_', ' ')}", getattr(self, name))


@dataclass(frozen=True)
class MeshGeometry:
    """The mesh a router sits in, as routing needs it.

    Parameters
    ----------
    columns, rows : int
        Mesh size; ``x`` in ``0..columns-1``, ``y`` in ``0..rows-1``.
    die : int
        This die's number.
    local_ports : int
        Local (tile) ports per router, numbered after the four mesh ports.
    gateways : tuple of Gateway
        One per other die that packets may address: the router and edge port they leave
        through. A die with no gateway is unroutable. Empty for a lone die.
    """
    columns: int = 4
    rows: int = 4
    die: int = 0
    local_ports: int = 1
    gateways: tuple = ()

    def __post_init__(self):
        for name in ("columns", "rows", "local_ports"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {value!r}")
        if not isinstance(self.die, int) or isinstance(self.die, bool) or self.die < 0:
            raise ValueError(f"Die must be a non-negative integer, not {self.die!r}")
        object.__setattr__(self, "gateways", tuple(self.gateways))
        seen = set()
        for gateway in self.gateways:
            if not isinstance(gateway, Gateway):
                raise TypeError(f"Gateways must be Gateway objects, not {gateway!r}")
            if gateway.die == self.die:
                raise ValueError(f"Die {self.die} has a gateway to itself")
            if gateway.die in seen:
                raise ValueError(f"Die {self.die} has two gateways to die {gateway.die}")
            seen.add(gateway.die)
            if not self.contains(gateway.x, gateway.y):
                raise ValueError(f"Gateway to die {gateway.die} at ({gateway.x}, {gateway.y}) "
                                 f"is outside the {self.columns}x{self.rows} mesh")
            if not self.on_edge(gateway.x, gateway.y, gateway.direction):
                raise ValueError(f"Gateway to die {gateway.die}: the {gateway.direction.name} "
                                 f"port of ({gateway.x}, {gateway.y}) leads to another router "
                                 f"of the die, not off the mesh edge")

    @property
    def ports(self) -> int:
        """Ports per router: four mesh ports, then the local ones."""
        return len(Direction) + self.local_ports

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows

    def on_edge(self, x: int, y: int, direction: Direction) -> bool:
        """The ``direction`` port of router ``(x, y)`` leaves the mesh."""
        dx, dy = direction.delta
        return self.contains(x, y) and not self.contains(x + dx, y + dy)

    def gateway(self, die: int) -> Gateway | None:
        return next((g for g in self.gateways if g.die == die), None)

    @property
    def edge_ports(self) -> tuple:
        """``(x, y, direction)`` of every router port a gateway uses, sorted, no repeats."""
        return tuple(sorted({(g.x, g.y, g.direction) for g in self.gateways}))

    def routable(self, die: int, x: int, y: int, port: int) -> bool:
        """A destination exists: on this die's mesh or on a die a gateway leads to."""
        if die == self.die:
            columns, rows, local_ports = self.columns, self.rows, self.local_ports
        elif (gateway := self.gateway(die)) is not None:
            columns, rows, local_ports = gateway.columns, gateway.rows, gateway.local_ports
        else:
            return False
        return 0 <= x < columns and 0 <= y < rows and 0 <= port < local_ports

    def route(self, x: int, y: int, die: int, dest_x: int, dest_y: int,
              port: int) -> int | None:
        """The output port router ``(x, y)`` takes toward a destination (what
        :class:`RouteComputer` computes), or ``None`` if it is unroutable."""
        if not self.routable(die, dest_x, dest_y, port):
            return None
        if die == self.die:
            target, final = (dest_x, dest_y), len(Direction) + port
        else:
            gateway = self.gateway(die)
            target, final = (gateway.x, gateway.y), int(gateway.direction)
        if target[0] > x:
            return Direction.EAST
        if target[0] < x:
            return Direction.WEST
        if target[1] > y:
            return Direction.NORTH
        if target[1] < y:
            return Direction.SOUTH
        return final

    def check_fits(self, fmt: FlitFormat) -> None:
        """Raise ``ValueError`` unless every router and local port is addressable."""
        meshes = [(self.columns, self.rows, self.local_ports)]
        meshes += [(g.columns, g.rows, g.local_ports) for g in self.gateways]
        dies = max([self.die, *(g.die for g in self.gateways)]) + 1
        for field, count in (("x_bits", max(c for c, _, _ in meshes)),
                             ("y_bits", max(r for _, r, _ in meshes)),
                             ("port_bits", max(p for _, _, p in meshes)),
                             ("die_bits", dies)):
            if count > 1 << getattr(fmt, field):
                raise ValueError(f"{count} values do not fit the flit format's "
                                 f"{field}={getattr(fmt, field)}")


def xy_target(m, fmt: FlitFormat, geometry: MeshGeometry, dest):
    """The router a destination is routed to inside this die and the port it leaves by.

    ``(target_x, target_y, final)``: the destination's router and ``4 + dest.port`` for a
    destination on this die, or the gateway router toward the destination's die and the
    gateway's edge port. Adds the selection logic (only with gateways) to module ``m``.
    """
    if not geometry.gateways:
        return dest.x, dest.y, len(Direction) + dest.port
    target_x = Signal(fmt.x_bits)
    target_y = Signal(fmt.y_bits)
    final = Signal(range(geometry.ports))
    with m.Switch(dest.die):
        for gateway in geometry.gateways:
            with m.Case(gateway.die):
                m.d.comb += [target_x.eq(gateway.x), target_y.eq(gateway.y),
                             final.eq(gateway.direction)]
        with m.Default():
            m.d.comb += [target_x.eq(dest.x), target_y.eq(dest.y),
                         final.eq(len(Direction) + dest.port)]
    return target_x, target_y, final


class RouteComputer(wiring.Component):
    """XY route of a destination, seen from the router at ``(x, y)`` (combinational).

    A destination on this die is routed XY to its router, then out of the local port
    ``dest.port``; a destination on another die XY to the gateway router toward that die,
    then out of the gateway's edge port.

    Members
    -------
    dest : In(fmt.dest_layout)
        The destination field of a head flit.
    port : Out(range(geometry.ports))
        The output port to take: a :class:`Direction`, or ``4 + dest.port`` once there.
        Meaningless when ``routable`` is low.
    routable : Out(1)
        The destination exists: on this die's mesh with a local port that exists, or on a
        die a gateway leads to, inside that die's mesh.
    """

    def __init__(self, fmt: FlitFormat, geometry: MeshGeometry, x: int, y: int):
        geometry.check_fits(fmt)
        self.fmt, self.geometry, self.x, self.y = fmt, geometry, x, y
        super().__init__({
            "dest": In(fmt.dest_layout),
            "port": Out(range(geometry.ports)),
            "routable": Out(1),
        })

    def _exists(self, die, columns, rows, local_ports):
        """``dest`` names die ``die`` and a router and port of its mesh."""
        dest, fmt = self.dest, self.fmt
        # Only the comparisons that can fail are built: a constant comparison is wasted logic
        # and a lint finding (CMPCONST).
        result = dest.die == die
        for field, limit in (("x", columns), ("y", rows), ("port", local_ports)):
            if limit < 1 << getattr(fmt, f"{field}_bits"):
                result = result & (getattr(dest, field) < limit)
        return result

    def elaborate(self, platform):
        m = Module()
        geometry, dest, fmt = self.geometry, self.dest, self.fmt
        routable = self._exists(geometry.die, geometry.columns, geometry.rows,
                                geometry.local_ports)
        for gateway in geometry.gateways:
            routable = routable | self._exists(gateway.die, gateway.columns, gateway.rows,
                                               gateway.local_ports)
        m.d.comb += self.routable.eq(routable)

        target_x, target_y, final = xy_target(m, fmt, geometry, dest)

        x_max, y_max = (1 << fmt.x_bits) - 1, (1 << fmt.y_bits) - 1
        # Dimension order: x first, then y, then the final port. Directions that cannot
        # happen from this position (a comparison that is constant) are left out.
        choices = []
        if self.x < x_max:
            choices.append((target_x > self.x, Direction.EAST))
        if self.x > 0:
            choices.append((target_x < self.x, Direction.WEST))
        if self.y < y_max:
            choices.append((target_y > self.y, Direction.NORTH))
        if self.y > 0:
            choices.append((target_y < self.y, Direction.SOUTH))
        port = final
        for condition, direction in reversed(choices):
            port = Mux(condition, direction, port)
        m.d.comb += self.port.eq(port)
        return m
