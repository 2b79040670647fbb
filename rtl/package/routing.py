"""Cross-die routing derived from a package: die-level paths, gateways, whole routes.

Die-level paths are shortest paths over the die links; among shortest paths the one whose
sequence of die numbers is lexicographically smallest is taken. Hop by hop that is: from die
``d`` toward die ``t``, go to the lowest-numbered neighbour of ``d`` that is one link closer
to ``t``. The rule is consistent (the path from that neighbour on is its own smallest
path), so each die needs only a table "destination die → gateway" (:func:`gateways`).

Inside a die a packet travels XY to its destination, or to the gateway router toward the
destination's die and out of its edge port (:class:`~chipknit.rtl.noc.route.MeshGeometry`).
:func:`route` walks a whole route across the package with the same function the route
computers implement; the deadlock check (:mod:`.deadlock`) is built on it.

Everything here takes a :class:`~.config.Package` whose dies, links and tiles are already
checked (``Package`` calls these during its own validation, after the simpler checks).
"""

from collections import deque

from ..noc.flit import DIRECTIONS, Direction
from ..noc.route import Gateway, MeshGeometry

__all__ = ["Channel", "die_distances", "next_die", "die_path", "gateways", "geometry",
           "route", "describe_channel"]

# A channel is named by the port that drives it: (die, x, y, direction). It is a link
# between two routers of one die, or a die link when that port leaves the die.
Channel = tuple


def _neighbours(package) -> dict[int, list[int]]:
    found = {die.number: [] for die in package.dies}
    for link in package.links:
        found[link.a.die].append(link.b.die)
        found[link.b.die].append(link.a.die)
    return {die: sorted(set(others)) for die, others in found.items()}


def die_distances(package) -> dict[int, dict[int, int]]:
    """Links crossed between every pair of dies (breadth first); unreachable pairs absent."""
    neighbours = _neighbours(package)
    distances = {}
    for start in neighbours:
        seen = {start: 0}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for other in neighbours[here]:
                if other not in seen:
                    seen[other] = seen[here] + 1
                    queue.append(other)
        distances[start] = seen
    return distances


def next_die(package, here: int, dest: int, distances=None) -> int:
    """The die a packet on die ``here`` for die ``dest`` crosses to next."""
    distances = distances or die_distances(package)
    want = distances[here][dest] - 1
    return min(n for n in _neighbours(package)[here] if distances[n].get(dest) == want)


def die_path(package, src: int, dest: int) -> list[int]:
    """Dies a packet from die ``src`` to die ``dest`` visits, both included."""
    distances = die_distances(package)
    path = [src]
    while path[-1] != dest:
        path.append(next_die(package, path[-1], dest, distances))
    return path


def _link_between(package, one: int, other: int):
    """The endpoint on die ``one`` of the link joining it to die ``other``."""
    for link in package.links:
        if (link.a.die, link.b.die) == (one, other):
            return link.a
        if (link.b.die, link.a.die) == (one, other):
            return link.b
    raise ValueError(f"No link joins dies {one} and {other}")


def gateways(package, die: int) -> tuple[Gateway, ...]:
    """Die ``die``'s routing table: for every other die, where packets for it leave."""
    distances = die_distances(package)
    table = []
    for other in package.dies:
        if other.number == die or other.number not in distances[die]:
            continue
        end = _link_between(package, die, next_die(package, die, other.number, distances))
        table.append(Gateway(die=other.number, x=end.x, y=end.y, direction=end.direction,
                             columns=other.columns, rows=other.rows,
                             local_ports=other.local_ports))
    return tuple(table)


def geometry(package, die: int) -> MeshGeometry:
    """The :class:`MeshGeometry` of die ``die``'s routers, gateways included."""
    spec = package.die(die)
    return MeshGeometry(columns=spec.columns, rows=spec.rows, die=spec.number,
                        local_ports=spec.local_ports, gateways=gateways(package, die))


def route(package, src: tuple[int, int, int], dest: tuple[int, int, int, int],
          geometries=None) -> list[Channel] | None:
    """Channels a packet takes from router ``src = (die, x, y)`` to ``dest = (die, x, y,
    port)``, in order; ``None`` if the destination is unroutable (dropped at injection)."""
    geometries = geometries or {d.number: geometry(package, d.number) for d in package.dies}
    ends = {}
    for link in package.links:
        ends[link.a.die, link.a.x, link.a.y, link.a.direction] = (link.b.die, link.b.x, link.b.y)
        ends[link.b.die, link.b.x, link.b.y, link.b.direction] = (link.a.die, link.a.x, link.a.y)
    die, x, y = src
    channels = []
    limit = sum(g.columns * g.rows for g in geometries.values()) + 1
    for _ in range(limit):
        port = geometries[die].route(x, y, *dest)
        if port is None:
            return None
        if port >= len(DIRECTIONS):
            return channels
        direction = Direction(port)
        channels.append((die, x, y, direction))
        dx, dy = direction.delta
        if geometries[die].contains(x + dx, y + dy):
            x, y = x + dx, y + dy
        else:
            die, x, y = ends[die, x, y, direction]
    raise AssertionError(f"Route from {src} to {dest} visits more than {limit} routers")


def describe_channel(package, channel: Channel) -> str:
    """``die 0 (1, 0)->(1, 1)`` inside a die; ``die 0 (1, 1) east->die 1 (0, 1)`` for a die
    link."""
    die, x, y, direction = channel
    dx, dy = direction.delta
    spec = package.die(die)
    if 0 <= x + dx < spec.columns and 0 <= y + dy < spec.rows:
        return f"die {die} ({x}, {y})->({x + dx}, {y + dy})"
    for link in package.links:
        for near, far in ((link.a, link.b), (link.b, link.a)):
            if (near.die, near.x, near.y, near.direction) == channel:
                return (f"die {die} ({x}, {y}) {direction.name.lower()}->die {far.die} "
                        f"({far.x}, {far.y})")
    return f"die {die} ({x}, {y}) {direction.name.lower()}"
