"""The whole package as one top level: every tile of the config behind its network
interfaces, the NoC of every die, the die links, the host bridge's byte streams outside.

:class:`PackageTop` is elaborated from a validated
:class:`~chipknit.rtl.package.config.Package` (design §1: no top is written by hand):

- the NoC is :class:`~chipknit.rtl.noc.package_network.PackageNetwork`, its die links made
  by the ``die_link`` factory (default :func:`package_die_link`: NoC↔link bridges, link
  adapters (the real link layer: framing, CRC, replay, credits) and the interposer model
  of the lanes, with bit errors at a run-time BER);
- each tile sits behind one network interface per local port it takes
  (:attr:`Tile.ports <chipknit.rtl.package.config.Tile.ports>`):

  ============  =====================================================================
  kind          what is elaborated
  ============  =====================================================================
  host_bridge   :class:`~chipknit.rtl.host.bridge.HostBridge` → ``InitiatorInterface``;
                its byte streams are the top's ``host_rx``/``host_tx``
  memory        ``TargetInterface`` → :class:`~chipknit.rtl.tiles.memory.MemoryTile`
  npu           ``TargetInterface`` → :class:`~chipknit.rtl.tiles.npu.NpuTile` window
                (``port``), its DMA → ``InitiatorInterface`` (``params.dma_port``)
  counters      ``TargetInterface`` → a :class:`~chipknit.rtl.registers.RegisterBank` of
                the die's link, NoC and interface counters (:meth:`PackageTop.registers`)
  ============  =====================================================================

  A ``traffic`` tile, or a second host bridge, is refused with a message. A local port no
  tile takes drains what reaches it (its requests time out at their initiator). Between
  each interface and its router port sits a register slice each way (``port_slices``), so
  no timing path runs from a tile through its router and back, and one on each stream
  between a tile and its interface; the same option registers the die-link ports and the
  credits between a die's routers, has a flit from a neighbouring router ask for its output
  from registers (3 cycles a hop), and registers each router's injected flits with their
  routes.
- every initiator has the same global address map (:func:`address_map`), derived from the
  config: memory tiles from 0, each at a multiple of the largest memory's size rounded up
  to a power of two; NPU register windows from ``0x4000_0000``, counter banks from
  ``0x5000_0000`` (die ``n`` at ``+ n * 0x1000``), ``WINDOW_SIZE`` bytes each. Anything
  else is a DECODE_ERROR.

One die or several, not the whole package (``dies``): what one FPGA holds when each die
is its own board. A link with one end on a built die is *cut*: its end is made by the
``link_end`` factory (default :func:`~.link_end.package_link_end`: bridge, adapter and
trainer) and its lanes are the top's ``link{i}_lanes_tx``/``link{i}_lanes_rx`` (a DDR PHY
on a board, an interposer in simulation); its counters (adapter, bridge, training) are in
that die's bank. The address map stays the whole package's.

The seam for in-FPGA links: ``die_link(package, index)`` returns the component of link
``index``; besides ``a_in``/``a_out``/``b_in``/``b_out`` (see ``PackageNetwork``) it may have
``error_threshold`` (``In(32)``, driven from ``link_error_threshold[index]``). A factory
whose ``link_counters`` attribute is true promises, per side ``a``/``b``,
``{side}_tx_status``, ``{side}_rx_status``, ``{side}_bridge`` and ``{side}_bit_errors``,
which become registers of that side's die's counters bank. A trained link pair plugs in
as another factory with the same members.
"""

import re
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..host.bridge import HostBridge, HostBridgeParams
from ..link.adapter import LinkAdapter
from ..link.frame import LinkParams
from ..link.interposer import Interposer, InterposerParams
from ..link.lanes import LaneParams
from ..link.receiver import ReceiverStatus
from ..link.transmitter import TransmitterStatus
from ..noc.cross_link import bridge_link_end
from ..noc.flit import LinkSignature
from ..noc.interface import (
    AddressMap,
    InitiatorInterface,
    InitiatorParams,
    Node,
    Region,
    TargetInterface,
    TargetParams,
)
from ..noc.link_bridge import BridgeStatus, LinkBridgeParams, link_flit_width
from ..noc.package_network import PackageNetwork
from ..noc.transaction import REQUEST_VC, RESPONSE_VC, TransactionParams
from ..npu.array import ArrayParams
from ..npu.commands import QueueParams
from ..npu.engine import EngineParams
from ..register_slice import connect_through_slice
from ..registers import Register, RegisterBank
from ..tiles.memory import MemoryParams, MemoryTile
from ..tiles.npu import NpuTile, NpuTileParams
from .config import Package
from .link_end import package_link_end

__all__ = ["PackageDieLink", "package_die_link", "die_link_params", "PackageTop",
           "address_map", "MapEntry", "NPU_BASE", "COUNTERS_BASE", "WINDOW_SIZE",
           "SUPPORTED_KINDS"]

#: Base of the first NPU register window; NPU ``i`` (config order) at ``+ i * WINDOW_SIZE``.
NPU_BASE = 0x4000_0000
#: Base of die 0's counters bank; die ``n``'s at ``+ n * WINDOW_SIZE``.
COUNTERS_BASE = 0x5000_0000
#: Bytes of address space per NPU window and counters bank.
WINDOW_SIZE = 0x1000
#: Tile kinds :class:`PackageTop` elaborates.
SUPPORTED_KINDS = ("host_bridge", "memory", "npu", "counters")

_TILE_KEYS = {
    "host_bridge": ("baud", "buffer_beats", "frame_timeout", "bus_timeout", "counter_width"),
    "memory": ("words", "queue", "response_depth"),
    "npu": ("rows", "cols", "mac", "dsp_cells", "a_depth", "w_depth", "acc_depth", "qp_depth",
            "lanes", "depth", "in_flight", "outstanding", "staging", "status_depth",
            "dma_port"),
    "counters": (),
}


def _transaction(package: Package) -> TransactionParams:
    try:
        return TransactionParams(flit=package.flit, addr_width=package.noc.addr_width,
                                 length_bits=package.noc.length_bits,
                                 tag_bits=package.noc.tag_bits)
    except ValueError as error:
        raise ValueError(f"Package {package.name!r}: {error}") from None


@dataclass(frozen=True)
class MapEntry:
    """One region of the global address map: ``size`` bytes from ``base`` at ``node``."""
    name: str
    kind: str
    base: int
    size: int
    node: Node


def address_map(package: Package) -> tuple:
    """The global address map of ``package``: a :class:`MapEntry` per target (memory
    tiles, NPU windows, counters banks), in address order (module documentation)."""
    beat_bytes = package.flit.data_width // 8
    memories = [t for t in package.tiles if t.kind == "memory"]
    sizes = [t.params.get("words", 1024) * beat_bytes for t in memories]
    stride = 1 << (max(sizes, default=1) - 1).bit_length()
    entries = []
    for index, (tile, size) in enumerate(zip(memories, sizes, strict=True)):
        entries.append(MapEntry(tile.name, "memory", index * stride, size,
                                Node(tile.x, tile.y, tile.port, tile.die)))
    npus = [t for t in package.tiles if t.kind == "npu"]
    for index, tile in enumerate(npus):
        entries.append(MapEntry(tile.name, "npu", NPU_BASE + index * WINDOW_SIZE, WINDOW_SIZE,
                                Node(tile.x, tile.y, tile.port, tile.die)))
    for tile in package.tiles:
        if tile.kind == "counters":
            entries.append(MapEntry(tile.name, "counters",
                                    COUNTERS_BASE + tile.die * WINDOW_SIZE, WINDOW_SIZE,
                                    Node(tile.x, tile.y, tile.port, tile.die)))
    if memories and len(memories) * stride > NPU_BASE:
        raise ValueError(f"Package {package.name!r}: {len(memories)} memories of "
                         f"{stride} bytes do not fit below the NPU windows at {NPU_BASE:#x}")
    return tuple(sorted(entries, key=lambda e: e.base))


def die_link_params(package: Package, index: int, **link) -> LinkParams:
    """The :class:`LinkParams` of link ``index``: beats of ``lanes * bits_per_lane`` bits,
    the smallest link flit of whole beats that holds a NoC flit, the package's VCs, the
    config's frame, window, credit and counter sizes and output skid, and ``link``'s further
    fields (which win over the config's)."""
    ends = package.links[index]
    beat_width = ends.lanes * ends.bits_per_lane
    sizes = {name: getattr(ends, name) for name in ends.ADAPTER_SIZES + ends.ADAPTER_FLAGS}
    try:
        return LinkParams(flit_width=link_flit_width(package.flit, beat_width),
                          vcs=package.flit.vcs, beat_width=beat_width, **(sizes | link))
    except ValueError as error:
        raise ValueError(f"Package {package.name!r} link {index} ({ends}): {error}") from None


class PackageDieLink(wiring.Component):
    """Link ``index`` of a package: a NoC↔link bridge and a link adapter at each gateway
    router, the lanes between them through an :class:`~chipknit.rtl.link.interposer.
    Interposer` each way (bit errors at a run-time BER; no skew, so no training needed).

    The beat is the config's ``lanes * bits_per_lane`` bits; the link flit the smallest
    multiple of it that holds a NoC flit (``link_flit_width``). Both adapters leave reset
    together (no training yet).

    Parameters
    ----------
    package : Package
    index : int
    latency : int
        Cycles a beat takes across the interposer, each way (at least 1: its output
        register).
    seed : int
        Seeds the interposers' error LFSRs (``seed`` for a → b, ``seed + 1`` for b → a).
    link : mapping
        Further :class:`~chipknit.rtl.link.frame.LinkParams` fields (``frame_flits``,
        ``rx_credits``, ``replay_timeout``, ...).

    Members
    -------
    a_in, a_out, b_in, b_out
        The gateway routers' edge ports (as :class:`StandInDieLink`'s).
    error_threshold : In(32)
        Bit error rate ``error_threshold / 2**32`` on every lane, both ways.
    a_tx_status, a_rx_status, b_tx_status, b_rx_status : Out
        Each end's link adapter counters.
    a_bridge, b_bridge : Out(BridgeStatus)
        Each end's bridge counters.
    a_bit_errors, b_bit_errors : Out(32)
        Bit errors the interposer put into the beats each end received.
    """

    def __init__(self, package: Package, index: int, *, latency: int = 2, seed: int = 1,
                 link: dict | None = None):
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"Latency must be a positive integer, not {latency!r}")
        self.package, self.index, self.latency, self.seed = package, index, latency, seed
        fmt = package.flit
        ends = package.links[index]
        self.lanes = LaneParams(ends.lanes, ends.bits_per_lane)
        self.link_params = die_link_params(package, index, **dict(link or {}))
        self.ends = ((ends.a, package.geometry(ends.a.die)),
                     (ends.b, package.geometry(ends.b.die)))
        # With the package's port slices, a slice after each VC's packet guard (a cycle
        # more inbound): the link receiver's output registers then wait only on the guard,
        # not on the bridge's arbiter. Without (small FPGAs), none. Both ends reset
        # together and nothing cuts the link, so the config may leave out the guards
        # (``DieLink.tail_guards``).
        self.bridge_params = [LinkBridgeParams(flit=fmt, link=self.link_params,
                                               ports=geometry.ports, depth=package.noc.depth,
                                               out_depth=package.noc.link_out_depth,
                                               guard_slices=package.noc.port_slices,
                                               tail_guards=ends.tail_guards)
                              for _end, geometry in self.ends]
        members = {"error_threshold": In(32)}
        for side, (_end, geometry), bridge in zip("ab", self.ends, self.bridge_params,
                                                  strict=True):
            members[f"{side}_in"] = In(LinkSignature(fmt, geometry.ports))
            members[f"{side}_out"] = Out(LinkSignature(fmt, geometry.ports))
            members[f"{side}_tx_status"] = Out(TransmitterStatus(self.link_params))
            members[f"{side}_rx_status"] = Out(ReceiverStatus(self.link_params))
            members[f"{side}_bridge"] = Out(BridgeStatus(bridge))
            members[f"{side}_bit_errors"] = Out(32)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        adapters = {side: LinkAdapter(self.link_params) for side in "ab"}
        for side, adapter in adapters.items():
            m.submodules[f"adapter_{side}"] = adapter
        for offset, (src, dst) in enumerate((("a", "b"), ("b", "a"))):
            wires = m.submodules[f"lanes_{src}{dst}"] = Interposer(InterposerParams(
                self.lanes, max_delay=self.latency - 1, seed=self.seed + offset))
            tx, rx = adapters[src].tx, adapters[dst].rx
            m.d.comb += [
                tx.ready.eq(1),
                wires.tx.data.eq(tx.payload),
                wires.tx.valid.eq(tx.valid.replicate(self.lanes.lanes)),
                wires.delay.eq(Cat(Const(self.latency - 1, wires.params.delay_bits)
                                   for _ in range(self.lanes.lanes))),
                wires.error_threshold.eq(self.error_threshold),
                rx.valid.eq(wires.rx.valid[0]),
                rx.payload.eq(wires.rx.data),
                getattr(self, f"{dst}_bit_errors").eq(wires.errors),
            ]
        for side, (end, geometry), params in zip("ab", self.ends, self.bridge_params,
                                                 strict=True):
            adapter = adapters[side]
            bridge = bridge_link_end(m, f"bridge_{side}", getattr(self, f"{side}_in"),
                                     getattr(self, f"{side}_out"), params, end, geometry,
                                     adapter)
            m.d.comb += bridge.peer_reset.eq(0)
            wiring.connect(m, bridge.status, wiring.flipped(getattr(self, f"{side}_bridge")))
            wiring.connect(m, adapter.tx_status,
                           wiring.flipped(getattr(self, f"{side}_tx_status")))
            wiring.connect(m, adapter.rx_status,
                           wiring.flipped(getattr(self, f"{side}_rx_status")))
        return m


def package_die_link(latency: int = 2, seed: int = 1, **link):
    """A ``die_link`` factory: :class:`PackageDieLink` with these options (link ``i`` seeds
    its interposers with ``seed + 2 * i``). Its ``link_counters`` attribute tells
    :class:`PackageTop` that the links have the counters its banks read."""
    def factory(package, index):
        return PackageDieLink(package, index, latency=latency, seed=seed + 2 * index,
                              link=link)
    factory.link_counters = True
    return factory


def _ident(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


class PackageTop(wiring.Component):
    """A whole package: tiles, network interfaces, NoC, die links (module documentation).

    Parameters
    ----------
    package : Package
    die_link : callable, optional
        ``die_link(package, index)`` (module documentation); default
        :func:`package_die_link` ``()``.
    timeout : int, optional
        The initiator interfaces' response timeout, in cycles (it must cover a die crossing
        with replays). Default: the config's ``noc.response_timeout``.
    target_depth : int, optional
        Requests in flight per target interface. Default: the config's
        ``noc.target_depth``.
    dies : iterable of int, optional
        Build only these dies (default all; module documentation).
    link_end : callable, optional
        ``link_end(package, index, die)`` makes the end on die ``die`` of cut link
        ``index`` (default :func:`~.link_end.package_link_end` ``()``).
    port_slices : bool, optional
        Default: the config's ``noc.port_slices``. A
        :class:`~chipknit.rtl.register_slice.RegisterSlice` each way between every
        network interface and its router port and on each stream between a tile and its
        interface, a :class:`~chipknit.rtl.noc.package_network.LinkRegister` each way
        at every gateway router's die-link port, a register on every credit between two
        routers of a die, routers that ask their allocator for a flit from a neighbour
        from the input's registers (``wire_requests=False``), and each injected flit with
        its route registered at its router (default). The handshakes that the placer may
        stretch across the FPGA (a tile or a link end and its router, neighbouring routers)
        then reach no logic beyond a buffer write in the same cycle, at one cycle more each
        way: a hop inside a die takes 3 cycles, and one flit a cycle per VC needs the
        package's NoC ``depth`` >= 5 (the shipped packages have 8). ``False`` connects them
        directly, with wire requests.

    Members
    -------
    host_rx : In(stream.Signature(8))
        Bytes from the host into the host bridge (present when the package has one).
    host_tx : Out(stream.Signature(8))
        Bytes from the bridge to the host.
    host_framing_errors, host_overruns : In(counter_width)
        The byte transport's own receive error counters (a UART's), which the host bridge
        reports as its transport counters (the host bridge's ``counter_width``); 0 when
        undriven (a lossless transport).
    link_error_threshold : In(32).array(links)
        Each die link's ``error_threshold`` (0: no errors).
    link_bit_errors, link_replayed_frames : Out(32).array(links)
        Bit errors injected into each die link and data frames its adapters sent again,
        both ways added (saturating; 0 for a link cut at this top's edge); with a
        ``die_link`` that has counters (the default). For testbenches of packages without
        a counters bank; a board leaves them unused.
    link{i}_lanes_tx : Out(LaneSignature), link{i}_lanes_rx : In(LaneSignature)
        Cut link ``i``'s lanes.
    link{i}_restart : In(1)
        Restart cut link ``i``'s end (it retrains).
    link{i}_training : Out(TrainingStatus)
        Cut link ``i``'s training status.
    """

    def __init__(self, package: Package, *, die_link=None, timeout: int | None = None,
                 target_depth: int | None = None, dies=None, link_end=None,
                 port_slices: bool | None = None):
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        self.package = package
        self.port_slices = package.noc.port_slices if port_slices is None else bool(port_slices)
        self.die_link = die_link or package_die_link()
        self.timeout = package.noc.response_timeout if timeout is None else timeout
        self.target_depth = package.noc.target_depth if target_depth is None else target_depth
        self.transaction = _transaction(package)
        self.map = address_map(package)
        self.dies = package.die_set(dies)
        self.tiles = [tile for tile in package.tiles if tile.die in self.dies]
        self.tile_params = {tile.name: self._tile_params(tile) for tile in package.tiles}
        self.link_end = link_end or package_link_end()
        self.cut = {index: self.link_end(package, index, end.die)
                    for index, end in package.cut_links(self.dies).items()}
        hosts = [t for t in self.tiles if t.kind == "host_bridge"]
        if len(hosts) > 1:
            raise ValueError(f"Package {package.name!r} has {len(hosts)} host bridges "
                             f"({', '.join(t.name for t in hosts)}); PackageTop supports one")
        self.host = hosts[0] if hosts else None
        # Whether the links have the counters the banks read (a factory says so).
        self.link_counters = bool(getattr(self.die_link, "link_counters", False))
        InitiatorParams(transaction=self.transaction, address_map=self._address_map(),
                        timeout=self.timeout)   # validates the map against the transactions
        members = {"link_error_threshold": In(32).array(max(1, len(package.links)))}
        if self.link_counters and package.links:
            for name in ("link_bit_errors", "link_replayed_frames"):
                members[name] = Out(32).array(len(package.links))
        if self.host is not None:
            members["host_rx"] = In(stream.Signature(8))
            members["host_tx"] = Out(stream.Signature(8))
            width = self.tile_params[self.host.name].counter_width
            members["host_framing_errors"] = In(width)
            members["host_overruns"] = In(width)
        for index, end in self.cut.items():
            for name in ("lanes_tx", "lanes_rx", "restart", "training"):
                members[f"link{index}_{name}"] = end.signature.members[name]
        super().__init__(members)

    # ---- configuration ------------------------------------------------------------------

    def _tile_params(self, tile):
        if tile.kind not in SUPPORTED_KINDS:
            raise ValueError(f"Tile {tile.name!r} has kind {tile.kind!r}, which PackageTop "
                             f"does not build (it builds {', '.join(SUPPORTED_KINDS)})")
        unknown = sorted(set(tile.params) - set(_TILE_KEYS[tile.kind]))
        if unknown:
            raise ValueError(f"Tile {tile.name!r} ({tile.kind}) has unknown param(s) "
                             f"{', '.join(map(repr, unknown))}; expected "
                             f"{', '.join(_TILE_KEYS[tile.kind]) or 'none'}")
        p, t = tile.params, self.transaction
        if tile.kind == "memory":
            return MemoryParams(t, words=p.get("words", 1024), queue=p.get("queue", 2),
                                response_depth=p.get("response_depth", 4))
        if tile.kind == "host_bridge":
            return HostBridgeParams(t, buffer_beats=p.get("buffer_beats", 64),
                                    frame_timeout=p.get("frame_timeout",
                                                        HostBridgeParams.frame_timeout),
                                    bus_timeout=p.get("bus_timeout",
                                                      HostBridgeParams.bus_timeout),
                                    counter_width=p.get("counter_width", 16))
        if tile.kind == "npu":
            if t.data_width != 32:
                raise ValueError(f"Tile {tile.name!r}: the NPU register window needs 32-bit "
                                 f"NoC data, not {t.data_width}")
            array = ArrayParams(rows=p.get("rows", 4), cols=p.get("cols", 4),
                                mac=p.get("mac", "infer"), dsp_cells=p.get("dsp_cells", 0))
            engine = EngineParams(array=array, a_depth=p.get("a_depth", 256),
                                  w_depth=p.get("w_depth", 256),
                                  acc_depth=p.get("acc_depth", 64),
                                  qp_depth=p.get("qp_depth", 16),
                                  requant_lanes=p.get("lanes", 1))
            queue = QueueParams(engine, depth=p.get("depth", 8),
                                in_flight=p.get("in_flight", 8), transaction=t,
                                outstanding=p.get("outstanding", 8))
            return NpuTileParams(queue, staging=p.get("staging", 4),
                                 status_depth=p.get("status_depth", 8))
        return None

    def _address_map(self) -> AddressMap:
        return AddressMap(tuple(Region(e.base, e.size, e.node) for e in self.map))

    def region(self, name: str) -> MapEntry:
        """The address map entry of tile ``name`` (or of ``counters`` tile of a die)."""
        for entry in self.map:
            if entry.name == name:
                return entry
        raise KeyError(f"No region named {name!r}; there are "
                       f"{', '.join(e.name for e in self.map)}")

    def registers(self, die: int) -> list[Register]:
        """The counters bank of die ``die``, in address order (register ``i`` at byte
        ``4 * i`` of its window)."""
        if die not in self.dies:
            raise ValueError(f"Die {die} is not built here (dies {sorted(self.dies)})")
        return [register for register, _source in self._counter_sources(die, None)]

    def counter_map(self) -> dict[str, int]:
        """``name -> address`` of every counter of every counters bank (for
        ``Host(counter_map=...)``); names are ``die{n}.{register}``."""
        result = {}
        for entry in self.map:
            if entry.kind == "counters" and entry.node.die in self.dies:
                die = entry.node.die
                for index, register in enumerate(self.registers(die)):
                    result[f"die{die}.{register.name}"] = entry.base + 4 * index
        return result

    def _counter_sources(self, die, sources):
        """``(Register, signal)`` pairs of die ``die``; ``sources`` holds the elaborated
        signals (``None``: registers only)."""
        package = self.package
        geometry = package.geometry(die)
        out = [(Register("cycles", 32, description="clock cycles since reset"),
                sources and sources["cycles"])]

        def add(name, width, description, key):
            out.append((Register(_ident(name), width, description=description),
                        sources and sources[key]))

        for node in range(geometry.columns * geometry.rows):
            x, y = node % geometry.columns, node // geometry.columns
            for what in ("unroutable", "malformed"):
                add(f"router{x}{y}_{what}", package.noc.counter_width,
                    f"router ({x}, {y}) injected packets dropped as {what}",
                    ("router", node, what))
        for index, link in enumerate(package.links):
            for side, end in (("a", link.a), ("b", link.b)):
                cut = index in self.cut
                if end.die != die or not (cut or self.link_counters):
                    continue
                for status, names in (("tx_status", ("frames", "data_frames", "flits",
                                                     "replayed_frames", "naks", "timeouts")),
                                      ("rx_status", ("frames_ok", "data_frames", "flits",
                                                     "crc_errors", "duplicates",
                                                     "out_of_order", "protocol_errors"))):
                    for name in names:
                        add(f"link{index}_{status[:2]}_{name}", 32,
                            f"link {index} ({end}) {status[:2]} {name}",
                            ("link", index, side, status, name))
                if cut:
                    width = self.cut[index].params.counter_width
                    for name, bits, what in (
                            ("state", 3, "training state (0 reset, 1 detect, 2 test, "
                                         "3 config, 4 active, 5 drain, 6 error)"),
                            ("lane_map", self.cut[index].params.lanes.lanes,
                             "usable receive lanes, one bit per wire"),
                            ("mode", 7, "lane modes and last failure: receive [1:0] and "
                                        "transmit [3:2] (0 none, 1 half, 2 full width), "
                                        "cause [5:4] (0 none, 1 skew, 2 lanes, 3 "
                                        "timeout), lanes reversed [6]"),
                            ("retrains", width, "times the link left ACTIVE"),
                            ("training_errors", width, "times training failed"),
                            ("link_resets", width, "adapter resets this end asked for"),
                            ("lost_flits", width, "upper bound on flits adapter resets "
                                                  "lost")):
                        add(f"link{index}_{name}", bits, f"link {index} ({end}): {what}",
                            ("link", index, side, "training", name))
                else:
                    add(f"link{index}_bit_errors", 32,
                        f"link {index}: bit errors injected into the beats {end} received",
                        ("link", index, side, "bit_errors", None))
                for name in ("flits_out", "flits_in", "malformed", "unroutable",
                             "truncated", "discarded"):
                    for vc in range(package.flit.vcs):
                        add(f"link{index}_vc{vc}_{name}", 16,
                            f"link {index} bridge, VC {vc}: {name}",
                            ("link", index, side, "bridge", (name, vc)))
        for tile in self.tiles:
            if tile.die != die or tile.kind == "counters":
                continue
            name = _ident(tile.name)
            if tile.kind in ("host_bridge", "npu"):
                for what in InitiatorInterface.COUNTERS:
                    add(f"{name}_ni_{what}", 16, f"{tile.name}'s initiator interface: {what}",
                        ("initiator", tile.name, what))
            if tile.kind in ("memory", "npu"):
                for what in TargetInterface.COUNTERS:
                    add(f"{name}_ti_{what}", 16, f"{tile.name}'s target interface: {what}",
                        ("target", tile.name, what))
            if tile.kind == "memory":
                add(f"{name}_errors", 16, f"{tile.name}: refused requests",
                    ("tile", tile.name, "errors"))
            if tile.kind == "npu":
                for what in ("window_errors", "discarded"):
                    add(f"{name}_{what}", 16, f"{tile.name}: {what}",
                        ("tile", tile.name, what))
        return out

    # ---- elaboration --------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        package, t = self.package, self.transaction
        sources = {}
        links = {index: self.die_link(package, index)
                 for index, link in enumerate(package.links)
                 if index not in self.cut and link.a.die in self.dies}
        if self.link_counters:
            for index, link in links.items():
                missing = [f"{side}_{name}" for side in "ab" for name in (
                    "tx_status", "rx_status", "bridge", "bit_errors")
                    if f"{side}_{name}" not in link.signature.members]
                if missing:
                    raise ValueError(f"Die link {index} lacks {', '.join(missing)}, which "
                                     f"its factory's link_counters promised")
        m.submodules.network = network = PackageNetwork(
            package, die_link=lambda _package, index: links[index], dies=self.dies,
            edge_registers=self.port_slices, credit_registers=self.port_slices,
            injection_registers=self.port_slices, wire_requests=not self.port_slices)
        for index, end in self.cut.items():
            m.submodules[f"link{index}_end"] = end
            wiring.connect(m, getattr(network, f"link{index}_out"), end.noc_in)
            wiring.connect(m, end.noc_out, getattr(network, f"link{index}_in"))
            wiring.connect(m, end.lanes_tx, wiring.flipped(getattr(self, f"link{index}_lanes_tx")))
            wiring.connect(m, wiring.flipped(getattr(self, f"link{index}_lanes_rx")), end.lanes_rx)
            wiring.connect(m, end.training, wiring.flipped(getattr(self, f"link{index}_training")))
            m.d.comb += end.restart.eq(getattr(self, f"link{index}_restart"))
            side = end.side
            for status in ("tx_status", "rx_status"):
                group = getattr(end, status)
                for name in group.signature.members:
                    if name not in ("credits", "outstanding"):
                        sources[("link", index, side, status, name)] = getattr(group, name)
            for name in ("state", "lane_map", "retrains", "training_errors", "link_resets"):
                sources[("link", index, side, "training", name)] = getattr(end.training, name)
            sources[("link", index, side, "training", "lost_flits")] = end.lost_flits
            training = end.training
            sources[("link", index, side, "training", "mode")] = Cat(
                training.rx_mode, training.tx_mode, training.cause, training.reversed)
            for name in end.bridge.signature.members:
                for vc in range(package.flit.vcs):
                    sources[("link", index, side, "bridge", (name, vc))] = getattr(
                        end.bridge, name)[vc]
        for index, link in links.items():
            if "error_threshold" in link.signature.members:
                m.d.comb += link.error_threshold.eq(self.link_error_threshold[index])
            if self.link_counters:
                for name, (a, b) in (
                        ("link_bit_errors", (link.a_bit_errors, link.b_bit_errors)),
                        ("link_replayed_frames", (link.a_tx_status.replayed_frames,
                                                  link.b_tx_status.replayed_frames))):
                    total = Signal(33, name=f"link{index}_{name[5:]}_total")
                    m.d.comb += [total.eq(a + b),
                                 getattr(self, name)[index].eq(
                                     Mux(total[32], (1 << 32) - 1, total))]

        address_map = self._address_map()
        taken = set()
        every_vc = frozenset(range(package.flit.vcs))

        def port(tile, local):
            die = package.die(tile.die)
            node = tile.y * die.columns + tile.x
            taken.add((tile.die, node, local))
            return (getattr(network, f"die{tile.die}_inject")[node][local],
                    getattr(network, f"die{tile.die}_eject")[node][local])

        def stream(name, source, sink):
            """``source`` -> ``sink``, through a RegisterSlice ``name`` with port_slices."""
            if not self.port_slices:
                wiring.connect(m, source, sink)
                return
            connect_through_slice(m, name, source, sink)

        def bus(name, initiator, target):
            """An ``initiator`` -> ``target`` memory-mapped bus, a slice on each stream.

            A tile's request fields fed its interface's decode (a sum and compares, from the
            host bridge's state) and a target interface's beat parse fed the memory's RAM
            enables: each was the default package's critical path at 100 MHz in turn.
            Requests stay many in flight, so only latency is added, no rate lost."""
            for what, source, sink in (("request", initiator, target),
                                       ("wdata", initiator, target),
                                       ("response", target, initiator)):
                stream(f"{name}_{what}_slice", getattr(source, what), getattr(sink, what))

        def attach(interface, name, tile, local, vcs=None):
            # Both handshakes through registers: no path from the interface's packet logic
            # through the router's buffer state and back (the default package's critical
            # path at ede8b41 ran NI -> router -> NI).
            # ``vcs``: (inject VCs, eject VCs) the interface takes when it shares the port;
            # its other streams stay idle (it drives their valid and ready itself).
            inject, eject = port(tile, local)
            inject_vcs, eject_vcs = vcs or (every_vc, every_vc)
            for vc in sorted(inject_vcs):
                stream(f"{name}_inject{vc}_slice", interface.inject[vc], inject[vc])
            for vc in sorted(eject_vcs):
                stream(f"{name}_eject{vc}_slice", eject[vc], interface.eject[vc])

        def initiator(tile, local, vcs=None):
            ni = m.submodules[f"{tile.name}_ni"] = InitiatorInterface(InitiatorParams(
                transaction=t, node=Node(tile.x, tile.y, local, tile.die),
                address_map=address_map, timeout=self.timeout))
            attach(ni, f"{tile.name}_ni", tile, local, vcs)
            for what in ni.COUNTERS:
                sources[("initiator", tile.name, what)] = getattr(ni, what)
            return ni

        def target(tile, local, vcs=None):
            ni = m.submodules[f"{tile.name}_ti"] = TargetInterface(TargetParams(
                transaction=t, depth=self.target_depth))
            attach(ni, f"{tile.name}_ti", tile, local, vcs)
            for what in ni.COUNTERS:
                sources[("target", tile.name, what)] = getattr(ni, what)
            return ni

        banks = {}
        for tile in self.tiles:
            params = self.tile_params[tile.name]
            if tile.kind == "host_bridge":
                bridge = m.submodules[tile.name] = HostBridge(params)
                ni = initiator(tile, tile.port)
                bus(f"{tile.name}_bus", bridge.bus, ni.bus)
                wiring.connect(m, wiring.flipped(self.host_rx), bridge.rx)
                wiring.connect(m, bridge.tx, wiring.flipped(self.host_tx))
                m.d.comb += [bridge.transport_errors.eq(self.host_framing_errors),
                             bridge.transport_overruns.eq(self.host_overruns)]
            elif tile.kind == "memory":
                memory = m.submodules[tile.name] = MemoryTile(params)
                bus(f"{tile.name}_bus", target(tile, tile.port).target, memory.bus)
                sources[("tile", tile.name, "errors")] = memory.errors
            elif tile.kind == "npu":
                npu = m.submodules[tile.name] = NpuTile(params)
                window_port, dma_port = tile.ports
                window_vcs = dma_vcs = None
                if window_port == dma_port:
                    # One port for both: the DMA's interface sends requests and takes
                    # responses, the window's takes requests (and any other VC, which it
                    # drains and counts) and sends responses. The router keeps each VC in
                    # buffers and eject queues of its own, so neither waits on the other.
                    dma_vcs = ({REQUEST_VC}, {RESPONSE_VC})
                    window_vcs = (every_vc - {REQUEST_VC}, every_vc - {RESPONSE_VC})
                bus(f"{tile.name}_control",
                    target(tile, window_port, window_vcs).target, npu.control)
                # The DMA's request fields, straight from its registers, were the critical
                # path into the interface's decode once the hops were registered.
                bus(f"{tile.name}_dma", npu.dma, initiator(tile, dma_port, dma_vcs).bus)
                for what in ("window_errors", "discarded"):
                    sources[("tile", tile.name, what)] = getattr(npu, what)
            elif tile.kind == "counters":
                banks[tile.die] = tile

        # Counters banks: every counter of the die, one register each.
        for die in package.dies:
            n = die.number
            if n not in self.dies:
                continue
            cycles = Signal(32, name=f"die{n}_cycles")
            m.d.sync += cycles.eq(cycles + 1)
            sources["cycles"] = cycles
            for node in range(die.columns * die.rows):
                for what in ("unroutable", "malformed"):
                    sources[("router", node, what)] = getattr(network, f"die{n}_{what}")[node]
            for index, link in links.items():
                for side in "ab":
                    if not self.link_counters:
                        continue
                    for status in ("tx_status", "rx_status"):
                        group = getattr(link, f"{side}_{status}")
                        for name in group.signature.members:
                            if name in ("credits", "outstanding"):
                                continue
                            sources[("link", index, side, status, name)] = getattr(group, name)
                    sources[("link", index, side, "bit_errors", None)] = getattr(
                        link, f"{side}_bit_errors")
                    bridge = getattr(link, f"{side}_bridge")
                    for name in bridge.signature.members:
                        for vc in range(package.flit.vcs):
                            sources[("link", index, side, "bridge", (name, vc))] = getattr(
                                bridge, name)[vc]
            if n not in banks:
                continue
            tile = banks[n]
            pairs = self._counter_sources(n, sources)
            bank = m.submodules[tile.name] = RegisterBank(t, [r for r, _ in pairs])
            bus(f"{tile.name}_bus", target(tile, tile.port).target, bank.bus)
            for register, signal in pairs:
                m.d.comb += getattr(bank.status, register.name).eq(signal)

        # Local ports no tile takes: nothing injected, anything that arrives drained.
        for die in package.dies:
            if die.number not in self.dies:
                continue
            for node in range(die.columns * die.rows):
                for local in range(die.local_ports):
                    if (die.number, node, local) in taken:
                        continue
                    inject = getattr(network, f"die{die.number}_inject")[node][local]
                    eject = getattr(network, f"die{die.number}_eject")[node][local]
                    for vc in range(package.flit.vcs):
                        m.d.comb += [inject[vc].valid.eq(0), eject[vc].ready.eq(1)]
        return m
