"""The package config: dies, their meshes, tiles, die-to-die links and NoC parameters.

One declarative object, :class:`Package`, describes a package (design §1); every top level
is elaborated from it. It is made of frozen dataclasses, loads from and saves to TOML
(:meth:`Package.from_toml`, :meth:`Package.to_toml`; the format is in docs/package.md), and
is validated when built, with a message that says what is wrong:

- a die number or mesh that the flit format's destination fields cannot address;
- a tile outside its die's mesh, on a local port the routers lack, or two tiles on one port;
- a link to a die that does not exist, an endpoint that is not on the mesh edge, a router
  port that already carries a link, a die linked to itself, two links between one pair;
- dies that no chain of links joins;
- a layout whose cross-die routes can deadlock (:mod:`.deadlock`; the message names the
  cycle of the channel-dependency graph).

Shipped configs are package data (``configs/*.toml``): ``Package.named("default")``.
"""

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

from ..link.frame import LinkParams
from ..noc.flit import Direction, FlitFormat
from ..noc.mesh import MeshParams
from ..noc.route import MeshGeometry
from . import deadlock, routing

__all__ = ["NocConfig", "Die", "Tile", "Endpoint", "DieLink", "Package", "TILE_KINDS",
           "PHY_KINDS", "shipped", "dump_toml"]

TILE_KINDS = ("host_bridge", "memory", "npu", "traffic", "counters")
PHY_KINDS = ("interposer", "ddr")


def _integer(what, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer of at least {minimum}")
        raise ValueError(f"{what} must be {kind}, not {value!r}")


def _name(what, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")


@dataclass(frozen=True)
class NocConfig:
    """NoC parameters shared by every die.

    Parameters
    ----------
    data_width, vcs, die_bits, x_bits, y_bits, port_bits : int
        The flit format (:class:`~chipknit.rtl.noc.flit.FlitFormat`).
    depth : int
        Router input buffer entries per VC.
    edge_depth : int
        Flits per VC the die links' bridges buffer outbound, which are the credits a
        gateway router starts with on its port to the link (``RouterParams.edge_depth``);
        0 (default): ``depth``. 1 is enough where the link is slow.
    eject_depth : int
        Entries per VC of each router's ejection queue to a tile
        (``RouterParams.eject_depth``); 0 (default): ``depth``.
    response_timeout : int
        Cycles an initiator interface waits for a response (it must cover a die crossing
        with replays); its timers are as wide as this needs.
    target_depth : int
        Requests in flight per target interface.
    counter_width : int
        Width of the routers' error counters.
    addr_width, length_bits, tag_bits : int
        The network interfaces' transactions
        (:class:`~chipknit.rtl.noc.transaction.TransactionParams`): byte address bits,
        burst length bits (at most ``2**length_bits`` beats) and tag bits (requests in
        flight per initiator). Narrow flits need a narrow shape: a request's head flit
        carries ``{write, masked, tag, length, src}`` after the destination.
    port_slices : bool
        Register every handshake between a tile, its interface and its router, and between
        routers (:class:`~chipknit.rtl.package.top.PackageTop`'s ``port_slices``): for
        Fmax on large packages; a hop then takes 3 cycles and one flit a cycle per VC needs
        ``depth`` >= 5. ``false`` for small FPGAs.
    """
    data_width: int = 32
    vcs: int = 2
    die_bits: int = 2
    x_bits: int = 3
    y_bits: int = 3
    port_bits: int = 1
    depth: int = 4
    edge_depth: int = 0
    eject_depth: int = 0
    response_timeout: int = 8192
    target_depth: int = 4
    counter_width: int = 16
    addr_width: int = 32
    length_bits: int = 8
    tag_bits: int = 4
    port_slices: bool = True

    def __post_init__(self):
        self.flit  # noqa: B018 -- FlitFormat checks its fields and says what is wrong
        _integer("NoC depth", self.depth, 2)
        _integer("NoC response timeout", self.response_timeout, 4)
        _integer("NoC target depth", self.target_depth, 1)
        for name in ("edge_depth", "eject_depth"):
            what = f"NoC {name.replace('_', ' ')}"
            _integer(what, getattr(self, name), 0)
            if getattr(self, name) > self.depth:
                raise ValueError(f"{what} ({getattr(self, name)}) must be at most the depth "
                                 f"({self.depth})")
        _integer("NoC counter width", self.counter_width, 1)
        _integer("NoC address width", self.addr_width, 1)
        _integer("NoC length bits", self.length_bits, 1)
        _integer("NoC tag bits", self.tag_bits, 1)
        if not isinstance(self.port_slices, bool):
            raise ValueError(f"NoC port_slices must be true or false, not "
                             f"{self.port_slices!r}")

    @property
    def link_out_depth(self) -> int | None:
        """The bridges' outbound flits per VC, ``None`` for ``depth``."""
        return self.edge_depth or None

    @property
    def flit(self) -> FlitFormat:
        return FlitFormat(data_width=self.data_width, vcs=self.vcs, die_bits=self.die_bits,
                          x_bits=self.x_bits, y_bits=self.y_bits, port_bits=self.port_bits)


@dataclass(frozen=True)
class Die:
    """One die: its number (the ``die`` field of a destination) and its router mesh.

    Parameters
    ----------
    name : str
    number : int
    columns, rows : int
        Mesh size.
    local_ports : int
        Tile ports per router.
    """
    name: str
    number: int
    columns: int = 2
    rows: int = 2
    local_ports: int = 1

    def __post_init__(self):
        _name("Die name", self.name)
        _integer(f"Die {self.name!r} number", self.number, 0)
        for what in ("columns", "rows", "local_ports"):
            _integer(f"Die {self.name!r} {what.replace('_', ' ')}", getattr(self, what), 1)

    def contains(self, x: int, y: int) -> bool:
        return 0 <= x < self.columns and 0 <= y < self.rows


@dataclass(frozen=True)
class Tile:
    """A tile on a router's local port.

    Parameters
    ----------
    name : str
    kind : str
        One of :data:`TILE_KINDS`. ``counters`` is the die's register bank of link and NoC
        counters (``chipknit.rtl.package.top``).
    die, x, y, port : int
        Where it sits: die number, router position, local port of that router.
    params : dict
        Kind-specific parameters (scalars or lists of scalars), passed to the tile. An
        ``npu`` tile has a register window (a target) on ``port`` and a DMA (an initiator)
        on ``params.dma_port`` (default ``port + 1``). With ``dma_port`` equal to ``port``
        the two share that port: the window takes the requests (VC 0) and sends the
        responses (VC 1), the DMA the other way round, each on streams of its own.
    """
    name: str
    kind: str
    die: int
    x: int
    y: int
    port: int = 0
    params: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        _name("Tile name", self.name)
        if self.kind not in TILE_KINDS:
            raise ValueError(f"Tile {self.name!r} has kind {self.kind!r}; the kinds are "
                             f"{', '.join(TILE_KINDS)}")
        for what in ("die", "x", "y", "port"):
            _integer(f"Tile {self.name!r} {what}", getattr(self, what), 0)
        if not isinstance(self.params, dict):
            raise ValueError(f"Tile {self.name!r} params must be a table, not "
                             f"{self.params!r}")
        if self.kind == "npu":
            _integer(f"Tile {self.name!r} dma_port", self.ports[1], 0)

    @property
    def ports(self) -> tuple:
        """The local ports of its router the tile takes: an NPU tile's window, then its
        DMA (``params.dma_port``, default ``port + 1``; the same port when they share it);
        one port for any other kind."""
        if self.kind == "npu":
            return (self.port, self.params.get("dma_port", self.port + 1))
        return (self.port,)


@dataclass(frozen=True)
class Endpoint:
    """One end of a die link: the router that owns it and its port that leaves the die.

    ``direction`` may be given as a name (``"east"``) and is kept as a
    :class:`~chipknit.rtl.noc.flit.Direction`.
    """
    die: int
    x: int
    y: int
    direction: Direction

    def __post_init__(self):
        for what in ("die", "x", "y"):
            _integer(f"Link endpoint {what}", getattr(self, what), 0)
        direction = self.direction
        if isinstance(direction, str):
            try:
                direction = Direction[direction.upper()]
            except KeyError:
                raise ValueError(f"Link endpoint direction must be one of east, west, north, "
                                 f"south, not {self.direction!r}") from None
        if not isinstance(direction, Direction):
            raise ValueError(f"Link endpoint direction must be a Direction or its name, not "
                             f"{self.direction!r}")
        object.__setattr__(self, "direction", direction)

    def __str__(self):
        return f"die {self.die} ({self.x}, {self.y}) {self.direction.name.lower()}"


@dataclass(frozen=True)
class DieLink:
    """A die-to-die link: both directions between two routers' edge ports.

    Parameters
    ----------
    a, b : Endpoint
    lanes : int
        Data lanes each way.
    bits_per_lane : int
        Bits per lane per core cycle (2 for a DDR pin).
    phy : str
        One of :data:`PHY_KINDS`: ``interposer`` (inside one FPGA or in simulation) or
        ``ddr`` (pins between boards).
    frame_flits, replay_frames, rx_credits, counter_width : int
        The link adapters' :class:`~chipknit.rtl.link.frame.LinkParams` (defaults: its
        own): flit slots per frame, the go-back-N window in frames, receive buffer flits
        per VC, and the width of the adapters' counters.
    output_skid : bool
        The receivers' two output registers per VC (``LinkParams.output_skid``, default
        true); false saves about 120 iCE40 logic cells per end on small, slow links.
    replay_head_registers : bool
        The transmitters' registers for each replay slot's first two beats
        (``LinkParams.replay_head_registers``, default true); false reads them from the
        replay buffer instead, for frames whose beats 1 and 2 are not both flit slots.
    tail_guards : bool
        The NoC↔link bridges' packet guards on the link when it is inside one FPGA
        (``LinkBridgeParams.tail_guards``, default true); false saves a flit register per VC
        and end, and a cycle per flit, where nothing can cut a packet short (both ends reset
        together). A link cut between boards (one die per board) always keeps them.
    """
    a: Endpoint
    b: Endpoint
    lanes: int = 16
    bits_per_lane: int = 1
    phy: str = "interposer"
    #: The fields that size the link adapters (``LinkParams`` fields of the same names).
    ADAPTER_SIZES = ("frame_flits", "replay_frames", "rx_credits", "counter_width")
    #: The link adapters' switches (``LinkParams`` fields of the same names).
    ADAPTER_FLAGS = ("output_skid", "replay_head_registers")

    frame_flits: int = LinkParams.frame_flits
    replay_frames: int = LinkParams.replay_frames
    rx_credits: int = LinkParams.rx_credits
    counter_width: int = LinkParams.counter_width
    output_skid: bool = LinkParams.output_skid
    replay_head_registers: bool = LinkParams.replay_head_registers
    tail_guards: bool = True

    def __post_init__(self):
        for end in ("a", "b"):
            value = getattr(self, end)
            if isinstance(value, dict):
                object.__setattr__(self, end, Endpoint(**value))
            elif not isinstance(value, Endpoint):
                raise ValueError(f"Link endpoint {end} must be an Endpoint, not {value!r}")
        _integer("Link lanes", self.lanes, 1)
        _integer("Link bits per lane", self.bits_per_lane, 1)
        for what in self.ADAPTER_SIZES:
            _integer(f"Link {what.replace('_', ' ')}", getattr(self, what), 1)
        for what in self.ADAPTER_FLAGS + ("tail_guards",):
            if not isinstance(getattr(self, what), bool):
                raise ValueError(f"Link {what} must be true or false, not "
                                 f"{getattr(self, what)!r}")
        if self.phy not in PHY_KINDS:
            raise ValueError(f"Link PHY must be one of {', '.join(PHY_KINDS)}, not "
                             f"{self.phy!r}")

    def __str__(self):
        return f"{self.a} <-> {self.b}"


@dataclass(frozen=True)
class Package:
    """A package: dies, tiles, die links and NoC parameters, validated (module docstring).

    Parameters
    ----------
    name : str
    dies : tuple of Die
    tiles : tuple of Tile
    links : tuple of DieLink
    noc : NocConfig
    description : str
    """
    name: str
    dies: tuple
    tiles: tuple = ()
    links: tuple = ()
    noc: NocConfig = field(default_factory=NocConfig)
    description: str = ""

    def __post_init__(self):
        for what in ("dies", "tiles", "links"):
            object.__setattr__(self, what, tuple(getattr(self, what)))
        self._validate()

    # ---- queries ----------------------------------------------------------------------------

    def die(self, number: int) -> Die:
        for die in self.dies:
            if die.number == number:
                return die
        raise KeyError(f"Package {self.name!r} has no die {number}")

    @property
    def flit(self) -> FlitFormat:
        return self.noc.flit

    def die_set(self, dies=None) -> frozenset:
        """``dies`` (default all) as a set of die numbers, checked: what a top that builds
        some of the dies builds."""
        numbers = [die.number for die in self.dies]
        chosen = frozenset(numbers if dies is None else dies)
        if not chosen or not chosen <= set(numbers):
            raise ValueError(f"Package {self.name!r} has dies "
                             f"{', '.join(map(str, numbers))}, not {sorted(chosen)}")
        return chosen

    def cut_links(self, dies) -> dict:
        """``index -> Endpoint``: the links with exactly one end on a die of ``dies``, and
        that end (a top building only ``dies`` must end those links itself)."""
        cut = {}
        for index, link in enumerate(self.links):
            inside = [end for end in (link.a, link.b) if end.die in dies]
            if len(inside) == 1:
                cut[index] = inside[0]
        return cut

    def geometry(self, die: int) -> MeshGeometry:
        """Die ``die``'s routing: its mesh and its gateway to every other die."""
        return routing.geometry(self, die)

    def mesh_params(self, die: int) -> MeshParams:
        return MeshParams(flit=self.flit, geometry=self.geometry(die), depth=self.noc.depth,
                          counter_width=self.noc.counter_width,
                          edge_depth=self.noc.link_out_depth,
                          eject_depth=self.noc.eject_depth or None)

    def die_path(self, src: int, dest: int) -> list[int]:
        return routing.die_path(self, src, dest)

    def route(self, src, dest):
        """Channels from router ``src = (die, x, y)`` to ``dest = (die, x, y, port)``."""
        return routing.route(self, src, dest)

    def with_tile_params(self, tile: str, **params) -> "Package":
        """This package with ``params`` merged into the params of the tile named ``tile``,
        or of every tile of that kind (``"npu"``), validated again like any package.
        Raises ``KeyError`` when no tile has that name or kind."""
        if not any(tile in (t.name, t.kind) for t in self.tiles):
            raise KeyError(f"Package {self.name!r} has no tile named or of kind {tile!r}")
        return replace(self, tiles=tuple(
            replace(t, params={**t.params, **params}) if tile in (t.name, t.kind) else t
            for t in self.tiles))

    # ---- validation -------------------------------------------------------------------------

    def _validate(self):
        _name("Package name", self.name)
        if not isinstance(self.noc, NocConfig):
            raise ValueError(f"Package {self.name!r}: noc must be a NocConfig, not "
                             f"{self.noc!r}")
        for what, kind in (("dies", Die), ("tiles", Tile), ("links", DieLink)):
            for item in getattr(self, what):
                if not isinstance(item, kind):
                    raise ValueError(f"Package {self.name!r}: {what} must be {kind.__name__} "
                                     f"objects, not {item!r}")
        if not self.dies:
            raise ValueError(f"Package {self.name!r} has no dies")
        self._validate_dies()
        self._validate_tiles()
        self._validate_links()
        self._validate_reachable()
        deadlock.check_deadlock_free(self)

    def _die_list(self):
        return ", ".join(str(d.number) for d in self.dies)

    def _validate_dies(self):
        fmt, seen, names = self.flit, {}, {}
        for die in self.dies:
            if die.number in seen:
                raise ValueError(f"Dies {seen[die.number]!r} and {die.name!r} both have "
                                 f"number {die.number}")
            if die.name in names:
                raise ValueError(f"Two dies are named {die.name!r}")
            seen[die.number], names[die.name] = die.name, die
            if die.number >= 1 << fmt.die_bits:
                raise ValueError(f"Die {die.number} ({die.name!r}) does not fit the flit "
                                 f"format's die_bits={fmt.die_bits} (dies 0 to "
                                 f"{(1 << fmt.die_bits) - 1})")
            for what, count, bits in (("columns", die.columns, "x_bits"),
                                      ("rows", die.rows, "y_bits"),
                                      ("local ports", die.local_ports, "port_bits")):
                width = getattr(fmt, bits)
                if count > 1 << width:
                    raise ValueError(f"Die {die.number} ({die.name!r}) has {count} {what}; "
                                     f"the flit format's {bits}={width} addresses at most "
                                     f"{1 << width}")

    def _has_die(self, number):
        return any(d.number == number for d in self.dies)

    def _validate_tiles(self):
        names, ports = set(), {}
        for tile in self.tiles:
            if tile.name in names:
                raise ValueError(f"Two tiles are named {tile.name!r}")
            names.add(tile.name)
            if not self._has_die(tile.die):
                raise ValueError(f"Tile {tile.name!r} is on die {tile.die}, which does not "
                                 f"exist (dies: {self._die_list()})")
            die = self.die(tile.die)
            if not die.contains(tile.x, tile.y):
                raise ValueError(f"Tile {tile.name!r} at ({tile.x}, {tile.y}) is outside die "
                                 f"{die.number}'s {die.columns}x{die.rows} mesh")
            for port in dict.fromkeys(tile.ports):
                if port >= die.local_ports:
                    raise ValueError(f"Tile {tile.name!r} is on local port {port}, but die "
                                     f"{die.number}'s routers have {die.local_ports} local "
                                     f"port(s)")
                where = (tile.die, tile.x, tile.y, port)
                if where in ports:
                    raise ValueError(f"Tiles {ports[where]!r} and {tile.name!r} are both on "
                                     f"die {tile.die} router ({tile.x}, {tile.y}) local port "
                                     f"{port}")
                ports[where] = tile.name

    def _validate_links(self):
        used, pairs = {}, {}
        for index, link in enumerate(self.links):
            for end in (link.a, link.b):
                if not self._has_die(end.die):
                    raise ValueError(f"Link {index} ({link}) goes to die {end.die}, which does "
                                     f"not exist (dies: {self._die_list()})")
                die = self.die(end.die)
                if not die.contains(end.x, end.y):
                    raise ValueError(f"Link {index} ({link}): router ({end.x}, {end.y}) is "
                                     f"outside die {die.number}'s {die.columns}x{die.rows} "
                                     f"mesh")
                dx, dy = end.direction.delta
                if die.contains(end.x + dx, end.y + dy):
                    raise ValueError(f"Link {index} ({link}): the {end.direction.name.lower()} "
                                     f"port of die {die.number} router ({end.x}, {end.y}) is "
                                     f"not on the mesh edge (it leads to router "
                                     f"({end.x + dx}, {end.y + dy}))")
                port = (end.die, end.x, end.y, end.direction)
                if port in used:
                    raise ValueError(f"Link {index} ({link}): {end} already carries link "
                                     f"{used[port]}")
                used[port] = index
            if link.a.die == link.b.die:
                raise ValueError(f"Link {index} ({link}) joins die {link.a.die} to itself")
            pair = frozenset((link.a.die, link.b.die))
            if pair in pairs:
                raise ValueError(f"Links {pairs[pair]} and {index} both join dies "
                                 f"{link.a.die} and {link.b.die}; routing uses one link per "
                                 f"pair of dies")
            pairs[pair] = index

    def _validate_reachable(self):
        distances = routing.die_distances(self)
        first = self.dies[0]
        for die in self.dies[1:]:
            if die.number not in distances[first.number]:
                raise ValueError(f"Dies {first.number} ({first.name!r}) and {die.number} "
                                 f"({die.name!r}) cannot reach each other: no chain of links "
                                 f"joins them")

    # ---- TOML -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, table: dict) -> "Package":
        """From the TOML structure (docs/package.md)."""
        table = dict(table)
        _known(table, ("name", "description", "noc", "dies", "tiles", "links"), "the package")
        noc = table.get("noc", {})
        _known(noc, [f.name for f in fields(NocConfig)], "[noc]")
        dies = []
        for index, entry in enumerate(table.get("dies", [])):
            _known(entry, [f.name for f in fields(Die)], f"[[dies]] entry {index}")
            dies.append(Die(**entry))
        tiles = []
        for index, entry in enumerate(table.get("tiles", [])):
            _known(entry, [f.name for f in fields(Tile)], f"[[tiles]] entry {index}")
            tiles.append(Tile(**entry))
        links = []
        for index, entry in enumerate(table.get("links", [])):
            _known(entry, [f.name for f in fields(DieLink)], f"[[links]] entry {index}")
            for end in ("a", "b"):
                if end not in entry:
                    raise ValueError(f"[[links]] entry {index} has no endpoint {end!r}")
                _known(entry[end], [f.name for f in fields(Endpoint)],
                       f"[[links]] entry {index} endpoint {end}")
            links.append(DieLink(**entry))
        if "name" not in table:
            raise ValueError("The package has no name")
        return cls(name=table["name"], description=table.get("description", ""),
                   noc=NocConfig(**noc), dies=dies, tiles=tiles, links=links)

    @classmethod
    def loads(cls, text: str) -> "Package":
        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def from_toml(cls, path) -> "Package":
        with open(path, "rb") as file:
            return cls.from_dict(tomllib.load(file))

    @classmethod
    def named(cls, name: str) -> "Package":
        """A shipped config (``rtl/package/configs/<name>.toml``)."""
        path = resources.files(__package__) / "configs" / f"{name}.toml"
        if not path.is_file():
            raise ValueError(f"No shipped package {name!r}; there are {', '.join(shipped())}")
        return cls.loads(path.read_text())

    @classmethod
    def load(cls, spec: "Package | str") -> "Package":
        """``spec`` itself if it is a package, else the TOML file at that path (a name
        ending in ``.toml`` or containing a ``/``), else the shipped config of that name."""
        if isinstance(spec, Package):
            return spec
        if str(spec).endswith(".toml") or "/" in str(spec):
            return cls.from_toml(spec)
        return cls.named(spec)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "noc": {f.name: getattr(self.noc, f.name) for f in fields(NocConfig)},
            "dies": [{f.name: getattr(d, f.name) for f in fields(Die)} for d in self.dies],
            "tiles": [{f.name: getattr(t, f.name) for f in fields(Tile)} for t in self.tiles],
            "links": [{f.name: (_endpoint_dict(getattr(l, f.name)) if f.name in ("a", "b")
                                else getattr(l, f.name)) for f in fields(DieLink)}
                      for l in self.links],
        }

    def to_toml(self) -> str:
        """TOML text that :meth:`loads` reads back to an equal package."""
        return dump_toml(self.to_dict())


def dump_toml(table: dict) -> str:
    """TOML text of a package table (:meth:`Package.to_dict`'s structure), unvalidated."""
    lines = [f"name = {_toml_value(table['name'])}"]
    if "description" in table:
        lines.append(f"description = {_toml_value(table['description'])}")
    lines += ["", "[noc]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in table.get("noc", {}).items()]
    for section in ("dies", "tiles", "links"):
        for entry in table.get(section, []):
            lines += ["", f"[[{section}]]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _endpoint_dict(end: Endpoint) -> dict:
    return {"die": end.die, "x": end.x, "y": end.y, "direction": end.direction.name.lower()}


def _known(table, keys, where):
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, not {table!r}")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise ValueError(f"Unknown key(s) {', '.join(map(repr, unknown))} in {where}; "
                         f"expected {', '.join(keys)}")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"Cannot write {value!r} to TOML")


def shipped() -> list[str]:
    """Names of the shipped configs."""
    folder = resources.files(__package__) / "configs"
    return sorted(Path(entry.name).stem for entry in folder.iterdir()
                  if entry.name.endswith(".toml"))
