"""Reference model of the NoC (imports no RTL): flit encoding, XY routes, traffic, scoreboard.

Flit bits, LSB first (the same as ``chipknit.rtl.noc.flit``; a test compares the two):
``head`` (1), ``tail`` (1), ``vc`` (``vc_bits``), ``data`` (``data_width``). A head flit's
data is ``dest`` = ``{port, x, y, die}`` then the head payload. On a router-to-router link
the flit is followed by its lookahead route (``route_bits``).

Test convention (not hardware): a head payload carries the packet's source id in its low
``SRC_BITS`` and a sequence number above, so the scoreboard knows where a packet came from.

:class:`PacketScoreboard` checks that every packet arrives exactly once, intact, at the
right place, and in order per (source, destination, VC); it fails at the first mismatch, in
words.
"""

import random
from collections import defaultdict, deque
from dataclasses import dataclass, field

__all__ = ["NocFormat", "Flit", "Dest", "EAST", "WEST", "NORTH", "SOUTH", "DIRECTION_DELTAS",
           "Gateway", "Geometry", "PackageModel", "has_cycle", "xy_route", "hops", "Packet",
           "make_packet", "PacketScoreboard", "traffic_destination", "PATTERNS", "SRC_BITS"]

EAST, WEST, NORTH, SOUTH = 0, 1, 2, 3
DIRECTION_DELTAS = {EAST: (1, 0), WEST: (-1, 0), NORTH: (0, 1), SOUTH: (0, -1)}
OPPOSITE = {EAST: WEST, WEST: EAST, NORTH: SOUTH, SOUTH: NORTH}
SRC_BITS = 8


@dataclass(frozen=True)
class Dest:
    x: int
    y: int
    port: int = 0
    die: int = 0


@dataclass(frozen=True)
class Flit:
    head: bool
    tail: bool
    vc: int
    data: int


@dataclass(frozen=True)
class NocFormat:
    data_width: int = 32
    vcs: int = 2
    die_bits: int = 2
    x_bits: int = 3
    y_bits: int = 3
    port_bits: int = 1

    @property
    def vc_bits(self) -> int:
        return max(1, (self.vcs - 1).bit_length())

    @property
    def dest_width(self) -> int:
        return self.port_bits + self.x_bits + self.y_bits + self.die_bits

    @property
    def payload_width(self) -> int:
        """Bits of a head flit's payload."""
        return self.data_width - self.dest_width

    @property
    def width(self) -> int:
        return 2 + self.vc_bits + self.data_width

    def encode_dest(self, dest: Dest) -> int:
        fields = ((dest.port, self.port_bits), (dest.x, self.x_bits), (dest.y, self.y_bits),
                  (dest.die, self.die_bits))
        value, shift = 0, 0
        for field_value, bits in fields:
            if not 0 <= field_value < 1 << bits:
                raise ValueError(f"{field_value} does not fit {bits} destination bits")
            value |= field_value << shift
            shift += bits
        return value

    def decode_dest(self, data: int) -> Dest:
        port = data & ((1 << self.port_bits) - 1)
        data >>= self.port_bits
        x = data & ((1 << self.x_bits) - 1)
        data >>= self.x_bits
        y = data & ((1 << self.y_bits) - 1)
        data >>= self.y_bits
        die = data & ((1 << self.die_bits) - 1)
        return Dest(x=x, y=y, port=port, die=die)

    def head_data(self, dest: Dest, payload: int) -> int:
        if not 0 <= payload < 1 << self.payload_width:
            raise ValueError(f"head payload {payload:#x} does not fit {self.payload_width} bits")
        return self.encode_dest(dest) | payload << self.dest_width

    def head_payload(self, data: int) -> int:
        return data >> self.dest_width

    def encode(self, flit: Flit) -> int:
        if not 0 <= flit.data < 1 << self.data_width:
            raise ValueError(f"flit data {flit.data:#x} does not fit {self.data_width} bits")
        if not 0 <= flit.vc < self.vcs:
            raise ValueError(f"VC {flit.vc} is not one of {self.vcs}")
        return (int(flit.head) | int(flit.tail) << 1 | flit.vc << 2
                | flit.data << (2 + self.vc_bits))

    def decode(self, value: int) -> Flit:
        return Flit(head=bool(value & 1), tail=bool(value >> 1 & 1),
                    vc=value >> 2 & ((1 << self.vc_bits) - 1),
                    data=value >> (2 + self.vc_bits) & ((1 << self.data_width) - 1))

    def route_bits(self, ports: int) -> int:
        return max(1, (ports - 1).bit_length())

    def encode_link(self, flit: int, route: int) -> int:
        """A link payload: the encoded flit, then the lookahead route."""
        return flit | route << self.width

    def decode_link(self, value: int, ports: int) -> tuple[int, int]:
        """(encoded flit, route) from a link payload."""
        return (value & ((1 << self.width) - 1),
                value >> self.width & ((1 << self.route_bits(ports)) - 1))


@dataclass(frozen=True)
class Gateway:
    """Packets for die ``die`` leave through router ``(x, y)``'s port ``direction``; that
    die's mesh is ``columns`` x ``rows`` with ``local_ports`` per router."""
    die: int
    x: int
    y: int
    direction: int
    columns: int
    rows: int
    local_ports: int = 1


@dataclass(frozen=True)
class Geometry:
    columns: int
    rows: int
    die: int = 0
    local_ports: int = 1
    gateways: tuple = ()

    @property
    def ports(self) -> int:
        return 4 + self.local_ports

    @property
    def nodes(self) -> int:
        return self.columns * self.rows

    def node(self, x: int, y: int) -> int:
        return y * self.columns + x

    def position(self, node: int) -> tuple[int, int]:
        return node % self.columns, node // self.columns

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows

    def gateway(self, die: int) -> Gateway | None:
        return next((g for g in self.gateways if g.die == die), None)

    def routable(self, dest: Dest) -> bool:
        if dest.die == self.die:
            return self.contains(dest.x, dest.y) and 0 <= dest.port < self.local_ports
        gateway = self.gateway(dest.die)
        return (gateway is not None and 0 <= dest.x < gateway.columns
                and 0 <= dest.y < gateway.rows and 0 <= dest.port < gateway.local_ports)


def xy_route(geometry: Geometry, x: int, y: int, dest: Dest) -> int | None:
    """The output port at router ``(x, y)`` for ``dest``; ``None`` if unroutable.

    A destination on another die is routed XY to the gateway toward its die, then out of
    the gateway's edge port."""
    if not geometry.routable(dest):
        return None
    if dest.die == geometry.die:
        tx, ty, final = dest.x, dest.y, 4 + dest.port
    else:
        gateway = geometry.gateway(dest.die)
        tx, ty, final = gateway.x, gateway.y, gateway.direction
    if tx > x:
        return EAST
    if tx < x:
        return WEST
    if ty > y:
        return NORTH
    if ty < y:
        return SOUTH
    return final


def lookahead_route(geometry: Geometry, x: int, y: int, port: int, dest: Dest) -> int:
    """The route the router at ``(x, y)`` sends with a flit leaving through ``port``: 0 for
    a local port or a port leaving the die (the die link's far side recomputes it)."""
    if port >= 4:
        return 0
    dx, dy = DIRECTION_DELTAS[port]
    if not geometry.contains(x + dx, y + dy):
        return 0
    return xy_route(geometry, x + dx, y + dy, dest)


@dataclass
class PackageModel:
    """Cross-die routing of a package, from plain data (what ``chipknit.rtl.package`` builds
    from its config, computed here independently).

    ``dies``: ``{number: (columns, rows, local_ports)}``. ``links``: ``[((die, x, y,
    direction), (die, x, y, direction)), ...]``, both directions. Die-level paths are
    shortest, and among those the one whose die numbers are lexicographically smallest.
    """
    dies: dict
    links: list

    def __post_init__(self):
        self.ends = {}
        for a, b in self.links:
            self.ends[a] = b
            self.ends[b] = a
        self.adjacent = {die: set() for die in self.dies}
        for a, b in self.links:
            self.adjacent[a[0]].add(b[0])
            self.adjacent[b[0]].add(a[0])

    def _distance(self, src: int, dst: int) -> int | None:
        frontier, seen, steps = {src}, {src}, 0
        while frontier:
            if dst in frontier:
                return steps
            frontier = {n for die in frontier for n in self.adjacent[die]} - seen
            seen |= frontier
            steps += 1
        return None

    def die_path(self, src: int, dst: int) -> list[int]:
        """The lexicographically smallest of the shortest die sequences from src to dst (every
        walk of the shortest length is enumerated: packages are small)."""
        distance = self._distance(src, dst)
        paths = [[src]]
        for _ in range(distance):
            paths = [p + [n] for p in paths for n in self.adjacent[p[-1]]]
        return min(p for p in paths if p[-1] == dst)

    def geometry(self, die: int) -> Geometry:
        columns, rows, local_ports = self.dies[die]
        gateways = []
        for other, (o_columns, o_rows, o_ports) in sorted(self.dies.items()):
            if other == die or self._distance(die, other) is None:
                continue
            hop = self.die_path(die, other)[1]
            end = next(a for a, b in self.ends.items() if a[0] == die and b[0] == hop)
            gateways.append(Gateway(die=other, x=end[1], y=end[2], direction=end[3],
                                    columns=o_columns, rows=o_rows, local_ports=o_ports))
        return Geometry(columns, rows, die, local_ports, tuple(gateways))

    def route(self, src: tuple[int, int, int], dest: Dest) -> list[tuple] | None:
        """Router ports a packet leaves through from router ``src = (die, x, y)``:
        ``[(die, x, y, port), ...]``, the last one a local port; ``None`` if unroutable."""
        geometries = {die: self.geometry(die) for die in self.dies}
        die, x, y = src
        hops_taken = []
        while True:
            port = xy_route(geometries[die], x, y, dest)
            if port is None:
                return None
            hops_taken.append((die, x, y, port))
            if port >= 4:
                return hops_taken
            if len(hops_taken) > sum(c * r for c, r, _ in self.dies.values()):
                raise AssertionError(f"routing loop from {src} to {dest}: {hops_taken}")
            dx, dy = DIRECTION_DELTAS[port]
            if geometries[die].contains(x + dx, y + dy):
                x, y = x + dx, y + dy
            else:
                die, x, y, _ = self.ends[die, x, y, port]

    def dependency_graph(self, vcs: int) -> dict:
        """Channel-dependency graph: ``{(channel, vc): {(channel, vc)}}``; a channel is the
        port that drives it, ``(die, x, y, direction)``."""
        routers = [(die, x, y) for die, (columns, rows, _) in self.dies.items()
                   for x in range(columns) for y in range(rows)]
        graph = {}
        for src in routers:
            for die, x, y in routers:
                channels = [hop for hop in self.route(src, Dest(x=x, y=y, die=die))
                            if hop[3] < 4]
                for vc in range(vcs):
                    for one, two in zip(channels, channels[1:], strict=False):
                        graph.setdefault((one, vc), set()).add((two, vc))
        return graph


def has_cycle(graph: dict) -> bool:
    """Whether a directed graph ``{node: successors}`` has a cycle (Kahn's algorithm)."""
    nodes = set(graph) | {n for successors in graph.values() for n in successors}
    incoming = dict.fromkeys(nodes, 0)
    for successors in graph.values():
        for n in successors:
            incoming[n] += 1
    ready = [n for n in nodes if incoming[n] == 0]
    removed = 0
    while ready:
        node = ready.pop()
        removed += 1
        for n in graph.get(node, ()):
            incoming[n] -= 1
            if incoming[n] == 0:
                ready.append(n)
    return removed != len(nodes)


def hops(src: tuple[int, int], dst: tuple[int, int]) -> int:
    """Router-to-router links an XY route crosses."""
    return abs(src[0] - dst[0]) + abs(src[1] - dst[1])


@dataclass
class Packet:
    src: int
    dest: Dest
    vc: int
    flits: list[int]              # encoded flits
    created: int = 0              # cycle (benchmarks)
    seq: int = 0
    measured: bool = False        # created inside a benchmark's measurement window

    @property
    def key(self):
        return (self.src, self.dest, self.vc)


def make_packet(fmt: NocFormat, *, src: int, seq: int, dest: Dest, vc: int, length: int,
                rng: random.Random, created: int = 0) -> Packet:
    """A packet of ``length`` flits with random body data; the head names its source."""
    if length < 1:
        raise ValueError(f"a packet has at least one flit, not {length}")
    payload = (src & ((1 << SRC_BITS) - 1)) | (seq << SRC_BITS)
    payload &= (1 << fmt.payload_width) - 1
    flits = [fmt.encode(Flit(head=True, tail=length == 1, vc=vc,
                             data=fmt.head_data(dest, payload)))]
    for index in range(1, length):
        flits.append(fmt.encode(Flit(head=False, tail=index == length - 1, vc=vc,
                                     data=rng.getrandbits(fmt.data_width))))
    return Packet(src=src, dest=dest, vc=vc, flits=flits, created=created, seq=seq)


@dataclass
class PacketScoreboard:
    """Exactly once, intact, in order per (source, destination, VC).

    ``expect(packet)`` when a packet is offered to the network; ``observe(where, flit)`` for
    every flit that leaves it at ``where`` (any hashable naming the exit, e.g. a node and
    local port). Flits are reassembled per (exit, VC): a packet must come out contiguous on
    its VC. ``route_check(where, packet)`` may add a check that the exit is right.
    """
    fmt: NocFormat
    name: str = "network"
    route_check: object = None
    expected: dict = field(default_factory=lambda: defaultdict(deque))
    partial: dict = field(default_factory=dict)
    delivered: list = field(default_factory=list)  # (packet, exit) in arrival order
    matched: int = 0
    flits: int = 0

    def expect(self, packet: Packet) -> None:
        self.expected[packet.key].append(packet)

    def outstanding(self) -> int:
        return sum(len(queue) for queue in self.expected.values())

    def observe(self, where, flit_value: int) -> Packet | None:
        """Take one flit; returns the packet it completes, if any."""
        flit = self.fmt.decode(flit_value)
        self.flits += 1
        slot = (where, flit.vc)
        if slot not in self.partial:
            if not flit.head:
                self._fail(f"at {where} VC {flit.vc}: flit {flit_value:#x} is not a head flit "
                           f"but no packet is open there")
            self.partial[slot] = []
        elif flit.head:
            self._fail(f"at {where} VC {flit.vc}: a head flit {flit_value:#x} inside an open "
                       f"packet (packets interleaved on one VC)")
        self.partial[slot].append(flit_value)
        if not flit.tail:
            return None
        flits = self.partial.pop(slot)
        head = self.fmt.decode(flits[0])
        dest = self.fmt.decode_dest(head.data)
        src = self.fmt.head_payload(head.data) & ((1 << SRC_BITS) - 1)
        queue = self.expected.get((src, dest, flit.vc))
        if not queue:
            self._fail(f"at {where}: a packet from {src} to {dest} on VC {flit.vc} came out "
                       f"but none was pending (duplicate or invented): {[hex(f) for f in flits]}")
        packet = queue[0]
        if packet.flits != flits:
            self._fail(f"at {where}: packet from {src} to {dest} on VC {flit.vc} differs from "
                       f"the oldest pending one (seq {packet.seq}; reordered, lost or "
                       f"corrupted):\n  got  {[hex(f) for f in flits]}\n  want "
                       f"{[hex(f) for f in packet.flits]}")
        if self.route_check is not None:
            self.route_check(where, packet)
        queue.popleft()
        self.matched += 1
        self.delivered.append((packet, where))
        return packet

    def drain_check(self) -> None:
        """At the end: nothing pending, nothing half-delivered."""
        if self.partial:
            slot, flits = next(iter(self.partial.items()))
            self._fail(f"{len(self.partial)} packet(s) half delivered, e.g. at {slot}: "
                       f"{[hex(f) for f in flits]}")
        missing = self.outstanding()
        if missing:
            key, queue = next((k, q) for k, q in self.expected.items() if q)
            self._fail(f"{missing} packet(s) never came out, e.g. from {key[0]} to {key[1]} on "
                       f"VC {key[2]} (seq {queue[0].seq})")

    def _fail(self, message: str):
        raise AssertionError(f"{self.name}: {message}")


def traffic_destination(pattern: str, geometry: Geometry, src: int, rng: random.Random) -> int:
    """Destination node of a packet from ``src`` under a BookSim-style traffic pattern.

    ``uniform`` includes ``src`` itself (1/N of packets); ``transpose`` sends ``(x, y)`` to
    ``(y, x)`` (diagonal nodes to themselves; needs a square mesh); ``hotspot`` sends 20 %
    of packets to the centre node and the rest uniformly.
    """
    nodes = geometry.nodes
    if pattern == "uniform":
        return rng.randrange(nodes)
    if pattern == "transpose":
        if geometry.columns != geometry.rows:
            raise ValueError("transpose needs a square mesh")
        x, y = geometry.position(src)
        return geometry.node(y, x)
    if pattern == "hotspot":
        if rng.random() < 0.2:
            return geometry.node(geometry.columns // 2, geometry.rows // 2)
        return rng.randrange(nodes)
    raise ValueError(f"unknown traffic pattern {pattern!r}; there are {', '.join(PATTERNS)}")


PATTERNS = ("uniform", "transpose", "hotspot")
