"""Two routers on two dies, joined by bridges and a real link: the seam of a cross-die NoC.

The test and benchmark top for :class:`~.link_bridge.LinkBridge`. Until cross-die routing
exists, the two routers form one 2×1 mesh split at the link: die 0 holds router ``(0, 0)``,
die 1 holds router ``(1, 0)``, and the east port of the one reaches the west port of the
other through a bridge, a link adapter, a channel with latency and bit errors
(:class:`~chipknit.rtl.link.pair.LinkPair`), an adapter and a bridge::

    tile 0 ─ router (0,0) ─E─ bridge 0 ─ adapter a ═╗
                                                   ║ channel: latency, bit errors
    tile 1 ─ router (1,0) ─W─ bridge 1 ─ adapter b ═╝

:class:`BridgedDieLink` is the same link as a ``die_link`` of
:class:`~.package_network.PackageNetwork` (``die_link=bridged_die_link(...)``): the real link
layer between two gateway routers of a package.

Reset: ``rst`` resets everything. ``die_reset`` bit ``d`` resets die ``d``'s router and bridge
*and the link* (both adapters and the channel): the link has no training yet, so its two
ends must start framing together. The other die's bridge sees ``peer_reset`` meanwhile.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Module, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..link.adapter import LinkAdapter
from ..link.frame import LinkParams
from ..link.pair import LinkPair
from ..link.receiver import ReceiverStatus
from ..link.transmitter import TransmitterStatus
from .flit import Direction, FlitFormat, LinkSignature
from .link_bridge import BridgeStatus, LinkBridge, LinkBridgeParams, link_flit_width
from .route import MeshGeometry, RouteComputer
from .router import Router, RouterParams

__all__ = ["CrossLinkParams", "CrossLinkPair", "BridgedDieLink", "bridged_die_link",
           "bridge_link_end"]


@dataclass(frozen=True)
class CrossLinkParams:
    """Parameters of :class:`CrossLinkPair`.

    Parameters
    ----------
    flit : FlitFormat
        NoC flit format of both routers.
    link : LinkParams
        The link between the bridges.
    depth : int
        Router input buffer entries per VC (and the bridges' buffers).
    latency : int
        Register stages of the channel, each way.
    counter_width : int
        Width of the routers' and bridges' counters.
    """
    flit: FlitFormat = field(default_factory=lambda: FlitFormat(data_width=30))
    link: LinkParams = field(default_factory=lambda: LinkParams(
        flit_width=32, frame_flits=4, rx_credits=8, replay_timeout=128))
    depth: int = 4
    latency: int = 2
    counter_width: int = 16

    def __post_init__(self):
        for die in range(2):
            self.router(die)
        self.bridge()
        if not isinstance(self.latency, int) or isinstance(self.latency, bool) \
                or self.latency < 0:
            raise ValueError(f"Latency must be a non-negative integer, not {self.latency!r}")

    @property
    def geometry(self) -> MeshGeometry:
        return MeshGeometry(columns=2, rows=1)

    def router(self, die: int) -> RouterParams:
        return RouterParams(flit=self.flit, geometry=self.geometry, x=die, y=0,
                            depth=self.depth, counter_width=self.counter_width)

    def bridge(self) -> LinkBridgeParams:
        return LinkBridgeParams(flit=self.flit, link=self.link, ports=self.geometry.ports,
                                depth=self.depth, counter_width=self.counter_width)


class CrossLinkPair(wiring.Component):
    """Router ``(0, 0)`` on die 0 and router ``(1, 0)`` on die 1, across a link.

    Members
    -------
    inject, eject : stream.Signature(flit.layout).array(2, vcs)
        Die ``d``'s router's local port, per VC (see ``Router.inject``/``eject``).
    error_threshold : In(32)
        Per beat and direction, the chance of one flipped bit is ``error_threshold / 2**32``.
    die_reset : In(2)
        Bit ``d``: reset die ``d`` (its router and bridge) and the link.
    bridge : Out(BridgeStatus).array(2)
        Each die's bridge counters.
    unroutable, malformed : Out(counter_width).array(2)
        Each router's injection error counters.
    tx_status, rx_status : Out.array(2)
        Each die's link adapter counters.
    bit_errors : Out(32).array(2)
        Bit errors injected into the beats die ``d`` received.
    noc_in_valid, noc_out_valid : Out(1).array(2)
    to_link_valid, from_link_valid : Out(1).array(2, vcs)
        Die ``d``'s bridge's ports' ``valid`` (from and into the router, to and from the
        link adapter, per VC), for latency probes.
    """

    def __init__(self, params: CrossLinkParams = CrossLinkParams()):
        if not isinstance(params, CrossLinkParams):
            raise TypeError(f"Expected CrossLinkParams, not {params!r}")
        self.params = params
        p = params
        flits = stream.Signature(p.flit.layout)
        super().__init__({
            "inject": In(flits).array(2, p.flit.vcs),
            "eject": Out(flits).array(2, p.flit.vcs),
            "error_threshold": In(32),
            "die_reset": In(2),
            "bridge": Out(BridgeStatus(p.bridge())).array(2),
            "unroutable": Out(p.counter_width).array(2),
            "malformed": Out(p.counter_width).array(2),
            "tx_status": Out(TransmitterStatus(p.link)).array(2),
            "rx_status": Out(ReceiverStatus(p.link)).array(2),
            "bit_errors": Out(32).array(2),
            "noc_in_valid": Out(1).array(2),
            "noc_out_valid": Out(1).array(2),
            "to_link_valid": Out(1).array(2, p.flit.vcs),
            "from_link_valid": Out(1).array(2, p.flit.vcs),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        link_reset = self.die_reset.any()
        pair = LinkPair(p.link, p.latency)
        m.submodules.link = ResetInserter(link_reset)(pair)
        m.d.comb += pair.error_threshold.eq(self.error_threshold)
        ends = ((pair.a_i, pair.a_o, pair.a_tx_status, pair.a_rx_status, pair.a_errors),
                (pair.b_i, pair.b_o, pair.b_tx_status, pair.b_rx_status, pair.b_errors))
        for die, (link_i, link_o, tx_status, rx_status, errors) in enumerate(ends):
            router = Router(p.router(die))
            bridge = LinkBridge(p.bridge(), lambda die=die: RouteComputer(
                p.flit, p.geometry, die, 0))
            m.submodules[f"router{die}"] = ResetInserter(self.die_reset[die])(router)
            m.submodules[f"bridge{die}"] = ResetInserter(self.die_reset[die])(bridge)
            port = Direction.EAST if die == 0 else Direction.WEST
            wiring.connect(m, router.link_out[port], bridge.noc_in)
            wiring.connect(m, bridge.noc_out, router.link_in[port])
            for vc in range(p.flit.vcs):
                wiring.connect(m, bridge.to_link[vc], link_i[vc])
                wiring.connect(m, link_o[vc], bridge.from_link[vc])
                wiring.connect(m, wiring.flipped(self.inject[die][vc]), router.inject[0][vc])
                wiring.connect(m, router.eject[0][vc], wiring.flipped(self.eject[die][vc]))
            wiring.connect(m, bridge.status, wiring.flipped(self.bridge[die]))
            wiring.connect(m, tx_status, wiring.flipped(self.tx_status[die]))
            wiring.connect(m, rx_status, wiring.flipped(self.rx_status[die]))
            m.d.comb += [
                bridge.peer_reset.eq(link_reset),
                self.unroutable[die].eq(router.unroutable),
                self.malformed[die].eq(router.malformed),
                self.bit_errors[die].eq(errors),
                self.noc_in_valid[die].eq(bridge.noc_in.valid),
                self.noc_out_valid[die].eq(bridge.noc_out.valid),
            ]
            for vc in range(p.flit.vcs):
                m.d.comb += [self.to_link_valid[die][vc].eq(bridge.to_link[vc].valid),
                             self.from_link_valid[die][vc].eq(bridge.from_link[vc].valid)]
        return m


class BridgedDieLink(wiring.Component):
    """Link ``index`` of a package as bridges and a real link (a ``die_link`` component).

    ``a_in``/``a_out``/``b_in``/``b_out`` are those of
    :class:`~.package_network.StandInDieLink`: the two gateway routers' edge ports. Each
    bridge routes for the gateway router it feeds (that die's ``RouteComputer``, gateways
    included). The link flit is the smallest multiple of ``beat_width`` that holds a NoC flit.

    Parameters
    ----------
    package : Package
    index : int
        Which of ``package.links``.
    latency : int
        Register stages of the channel, each way.
    link : mapping
        Further :class:`~chipknit.rtl.link.frame.LinkParams` fields (``beat_width``,
        ``frame_flits``, ...); ``flit_width`` and ``vcs`` follow the package's flit format.
    """

    def __init__(self, package, index: int, *, latency: int = 2, link: dict | None = None):
        # The bridges buffer what a router would: the package's depth per VC (inbound), its
        # edge depth outbound.
        self.package, self.index, self.latency = package, index, latency
        self.depth = package.noc.depth
        fmt = package.flit
        options = dict(link or {})
        beat_width = options.pop("beat_width", 16)
        self.link_params = LinkParams(flit_width=link_flit_width(fmt, beat_width), vcs=fmt.vcs,
                                      beat_width=beat_width, **options)
        ends = package.links[index]
        self.ends = ((ends.a, package.geometry(ends.a.die)),
                     (ends.b, package.geometry(ends.b.die)))
        members = {}
        for side, (_end, geometry) in zip("ab", self.ends, strict=True):
            members[f"{side}_in"] = In(LinkSignature(fmt, geometry.ports))
            members[f"{side}_out"] = Out(LinkSignature(fmt, geometry.ports))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        fmt = self.package.flit
        adapters = [LinkAdapter(self.link_params) for _ in "ab"]
        m.submodules.adapter_a, m.submodules.adapter_b = adapters
        # The lanes: ``latency`` register stages of beats each way, no errors (the
        # interposer model plugs in here once the package wires lanes).
        for src, dst, name in ((*adapters, "ab"), (*reversed(adapters), "ba")):
            valid, payload = src.tx.valid, src.tx.payload
            m.d.comb += src.tx.ready.eq(1)
            for stage in range(self.latency):
                next_valid = Signal(name=f"lane_{name}_valid_{stage}")
                next_payload = Signal(self.link_params.beat_width,
                                      name=f"lane_{name}_payload_{stage}")
                m.d.sync += [next_valid.eq(valid), next_payload.eq(payload)]
                valid, payload = next_valid, next_payload
            m.d.comb += [dst.rx.valid.eq(valid), dst.rx.payload.eq(payload)]
        for side, (end, geometry), adapter in zip("ab", self.ends, adapters, strict=True):
            params = LinkBridgeParams(flit=fmt, link=self.link_params, ports=geometry.ports,
                                      depth=self.depth,
                                      out_depth=self.package.noc.link_out_depth)
            bridge_link_end(m, f"bridge_{side}", getattr(self, f"{side}_in"),
                            getattr(self, f"{side}_out"), params, end, geometry, adapter)
        return m


def bridge_link_end(m, name: str, noc_in, noc_out, params: LinkBridgeParams, end, geometry,
                    link_end) -> LinkBridge:
    """Add ``name``, the :class:`LinkBridge` of one end of a die link, to ``m``: NoC side on
    ``noc_in`` (the gateway router's edge output, ``In(LinkSignature)`` of the caller) and
    ``noc_out`` (to its edge input), link side on ``link_end``'s per-VC ``i``/``o`` streams (a
    link adapter, or a trained link end); it routes what it receives as a flit entering the
    router at ``(end.x, end.y)`` of ``geometry``. Returns the bridge (its status and
    ``peer_reset`` are the caller's)."""
    fmt = params.flit
    bridge = m.submodules[name] = LinkBridge(
        params, lambda: RouteComputer(fmt, geometry, end.x, end.y))
    wiring.connect(m, wiring.flipped(noc_in), bridge.noc_in)
    wiring.connect(m, bridge.noc_out, wiring.flipped(noc_out))
    for vc in range(fmt.vcs):
        wiring.connect(m, bridge.to_link[vc], link_end.i[vc])
        wiring.connect(m, link_end.o[vc], bridge.from_link[vc])
    return bridge


def bridged_die_link(latency: int = 2, **link):
    """A ``die_link`` factory for :class:`~.package_network.PackageNetwork`:
    :class:`BridgedDieLink` with these options."""
    return lambda package, index: BridgedDieLink(package, index, latency=latency, link=link)
