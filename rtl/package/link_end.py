"""One end of a package's die link on its own chip: what a die built alone (one FPGA per
die) puts at the gateway router of a link whose other end is elsewhere.

:class:`PackageLinkEnd` is a NoC↔link bridge (:class:`~chipknit.rtl.noc.link_bridge.
LinkBridge`) in front of a :class:`~chipknit.rtl.link.trained_pair.TrainedLinkEnd` (link
adapter and trainer), its lanes outside: a DDR PHY on a board's header pins, or an
interposer model in simulation. Unlike the package's in-FPGA link
(:class:`~chipknit.rtl.package.top.PackageDieLink`, whose two ends leave reset together),
the two ends here start whenever their chips do, so the link trains (deskew, lane test and
repair, frame alignment) and retrains when the other end restarts.

The lanes come from the board, not the package config: ``lanes`` physical lanes of which
``repair_lanes`` are spares, so the beat is ``(lanes - repair_lanes) × bits_per_lane`` bits
and the link flit the smallest whole number of beats that holds a NoC flit. Both ends must
be built with the same lanes (both boards use the same pin map).

The bridge sees ``peer_reset`` while the adapter is held in reset (a restart, or a link
reset when either end's adapter is fresh) and from a failed training attempt until the
link is next ``ACTIVE``: it ends a packet it was delivering to the router at its last flit
that came, marked as the tail, so no inbound wormhole stays wedged (``truncated``), and
takes nothing from the link.
A retrain that keeps the adapters does neither: outbound flits wait in the bridge (and
behind it in the router) and the adapters' replay carries on once the link is back. Once a
training attempt has failed (``ERROR``: the far chip is off, or too many lanes are dead),
and until the link is next ``ACTIVE``, the bridge also discards outbound packets whole
(counted per VC in ``discarded``), so traffic toward a die that is not there cannot back
up into this die's network. A packet the link was carrying when it failed loses the rest
of its flits at the sender and is ended at its last flit by the receiver's bridge (both
ends' training fails: the receiving end stops seeing data). The flits adapter resets lose are
bounded by ``lost_flits``; requests whose responses are lost, discarded or held too long
end at their initiator's timeout.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..link.frame import LinkParams
from ..link.lanes import LaneParams, LaneSignature
from ..link.receiver import ReceiverStatus
from ..link.trained_pair import TrainedLinkEnd
from ..link.training import TrainingParams, TrainingState, TrainingStatus
from ..link.transmitter import TransmitterStatus
from ..noc.cross_link import bridge_link_end
from ..noc.flit import LinkSignature
from ..noc.link_bridge import BridgeStatus, LinkBridgeParams, link_flit_width
from .config import Package

__all__ = ["PackageLinkEnd", "package_link_end", "cut_link_params"]


def cut_link_params(package: Package, lanes: LaneParams, repair_lanes: int = 2,
                    **options) -> TrainingParams:
    """The :class:`TrainingParams` (and its link) of a cut link of ``package`` on ``lanes``
    with ``repair_lanes`` spares; ``options`` are further ``LinkParams`` fields, or
    ``TrainingParams`` fields under the key ``training``."""
    if not isinstance(lanes, LaneParams):
        raise TypeError(f"Lanes must be a LaneParams, not {lanes!r}")
    if not isinstance(repair_lanes, int) or not 0 <= repair_lanes < lanes.lanes:
        raise ValueError(f"Repair lanes must be in [0, {lanes.lanes}), not {repair_lanes!r}")
    training = dict(options.pop("training", {}))
    beat_width = (lanes.lanes - repair_lanes) * lanes.bits_per_lane
    link = LinkParams(flit_width=link_flit_width(package.flit, beat_width),
                      vcs=package.flit.vcs, beat_width=beat_width, **options)
    return TrainingParams(link=link, lanes=lanes, **training)


class PackageLinkEnd(wiring.Component):
    """The end on die ``die`` of link ``index`` of ``package``: bridge + trained link end.

    Parameters
    ----------
    package : Package
    index : int
        Which of ``package.links``.
    die : int
        Which of its two ends (the die it is built on).
    params : TrainingParams
        The lanes, the link and its training (:func:`cut_link_params`); ``params.link`` must
        carry the package's flits on its VCs.

    Members
    -------
    noc_in : In(LinkSignature(flit, ports))
        From the gateway router's edge port (``PackageNetwork``'s ``link{i}_out``).
    noc_out : Out(LinkSignature(flit, ports))
        To the gateway router, with its lookahead route.
    lanes_tx : Out(LaneSignature(params.lanes))
    lanes_rx : In(LaneSignature(params.lanes))
    restart : In(1)
        Reset this end's link (it retrains; the other end follows).
    training : Out(TrainingStatus(params))
    tx_status, rx_status : Out
        The adapter's counters (they restart with the adapter).
    bridge : Out(BridgeStatus)
        The bridge's counters.
    lost_flits : Out(counter_width)
        Upper bound on the flits this end sent that adapter resets lost.
    """

    def __init__(self, package: Package, index: int, die: int, params: TrainingParams):
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        if not isinstance(params, TrainingParams):
            raise TypeError(f"Expected TrainingParams, not {params!r}")
        if not 0 <= index < len(package.links):
            raise ValueError(f"Package {package.name!r} has {len(package.links)} links, "
                             f"not a link {index}")
        link = package.links[index]
        ends = [end for end in (link.a, link.b) if end.die == die]
        if len(ends) != 1:
            raise ValueError(f"Link {index} ({link}) has no single end on die {die}")
        self.package, self.index, self.die, self.params = package, index, die, params
        self.end = ends[0]
        self.side = "a" if self.end is link.a else "b"
        self.geometry = package.geometry(die)
        self.bridge_params = LinkBridgeParams(flit=package.flit, link=params.link,
                                              ports=self.geometry.ports,
                                              depth=package.noc.depth,
                                              out_depth=package.noc.link_out_depth)
        fmt = package.flit
        super().__init__({
            "noc_in": In(LinkSignature(fmt, self.geometry.ports)),
            "noc_out": Out(LinkSignature(fmt, self.geometry.ports)),
            "lanes_tx": Out(LaneSignature(params.lanes)),
            "lanes_rx": In(LaneSignature(params.lanes)),
            "restart": In(1),
            "training": Out(TrainingStatus(params)),
            "tx_status": Out(TransmitterStatus(params.link)),
            "rx_status": Out(ReceiverStatus(params.link)),
            "bridge": Out(BridgeStatus(self.bridge_params)),
            "lost_flits": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = TrainedLinkEnd(self.params)
        bridge = bridge_link_end(m, "bridge", self.noc_in, self.noc_out, self.bridge_params,
                                 self.end, self.geometry, link)
        # From a failed training attempt until the link is next up: discard outbound, and
        # close any inbound packet left open (the far end does the same with ours).
        failed = Signal()
        with m.If(link.training.state == TrainingState.ERROR):
            m.d.sync += failed.eq(1)
        with m.Elif(link.training.state == TrainingState.ACTIVE):
            m.d.sync += failed.eq(0)
        m.d.comb += [bridge.peer_reset.eq(link.link_down | failed), bridge.discard.eq(failed),
                     link.restart.eq(self.restart), self.lost_flits.eq(link.lost_flits)]
        wiring.connect(m, link.lanes_tx, wiring.flipped(self.lanes_tx))
        wiring.connect(m, wiring.flipped(self.lanes_rx), link.lanes_rx)
        for name in ("training", "tx_status", "rx_status"):
            wiring.connect(m, getattr(link, name), wiring.flipped(getattr(self, name)))
        wiring.connect(m, bridge.status, wiring.flipped(self.bridge))
        return m


def package_link_end(lanes: LaneParams | None = None, repair_lanes: int = 2, **options):
    """A ``link_end`` factory for :class:`~chipknit.rtl.package.top.PackageTop`:
    ``factory(package, index, die)`` makes :class:`PackageLinkEnd` on ``lanes`` (default 18
    lanes of 1 bit: 16-bit beats, 2 spares) with ``repair_lanes`` spares and ``options``
    (see :func:`cut_link_params`)."""
    lanes = lanes or LaneParams(18, 1)

    def factory(package, index, die):
        params = cut_link_params(package, lanes, repair_lanes, **options)
        return PackageLinkEnd(package, index, die, params)
    factory.lanes, factory.repair_lanes = lanes, repair_lanes
    return factory
