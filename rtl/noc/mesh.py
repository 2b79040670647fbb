"""An X×Y mesh of routers with one stream interface per local port and VC.

Router ``(x, y)`` is node ``n = y * columns + x``. Its east link goes to ``(x + 1, y)``'s
west input and so on; the links on the mesh's edge are left unconnected (their inputs
idle, their credits never returned), and XY routing never uses them for a routable
destination, except the edge ports of the geometry's gateways
(``geometry.edge_ports``), which the mesh exposes as ``edge_in``/``edge_out`` for the
links to other dies.

With ``credit_registers`` each credit returned between two routers of the mesh goes through
a register: the credit loop takes 4 cycles instead of 3, so a VC still sends one flit a
cycle at ``depth >= 4``, and the flit path (2 cycles per hop) is unchanged. The sending
router's allocation then no longer starts from a wire that comes from its neighbour's
``pop`` registers, wherever the placer put them (a large design: docs/package.md).
With ``flit_registers`` each flit between two routers goes through a register too: 3 cycles
per hop, and the receiving router's allocation no longer starts from its neighbour's output
register. With both the credit loop takes 5 cycles: one flit a cycle per VC needs
``depth >= 5``.
With ``injection_registers`` every router takes an injected flit and its route into
registers before its buffer (:attr:`~.router.RouterParams.injection_register`): a cycle
more at injection, and no route computation between a tile's stream and the router's state.
With ``wire_requests=False`` a flit arriving from a neighbour asks the allocator from its
input's registers a cycle after it arrived (:attr:`~.router.RouterParams.wire_requests`):
a cycle more per hop, and the neighbour's output register only reaches the input buffer.
"""

from dataclasses import dataclass, field, replace

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import DIRECTIONS, FlitFormat, LinkSignature
from .route import MeshGeometry
from .router import Router, RouterParams

__all__ = ["MeshParams", "Mesh"]


@dataclass(frozen=True)
class MeshParams:
    """Parameters of a mesh.

    Parameters
    ----------
    flit : FlitFormat
        Flit format of every router.
    geometry : MeshGeometry
        Columns, rows, die number and local ports per router.
    depth : int
        Input buffer entries per VC in every router.
    counter_width : int
        Width of each router's error counters.
    edge_depth : int or None
        Credits per VC on the ports that leave the die (``RouterParams.edge_depth``).
    eject_depth : int or None
        Each tile port's ejection queue per VC (``RouterParams.eject_depth``).
    """
    flit: FlitFormat = field(default_factory=FlitFormat)
    geometry: MeshGeometry = field(default_factory=MeshGeometry)
    depth: int = 4
    counter_width: int = 16
    edge_depth: int | None = None
    eject_depth: int | None = None

    def __post_init__(self):
        # The router's checks say what is wrong; run them once for the corner router.
        self.router(0, 0)

    @property
    def nodes(self) -> int:
        return self.geometry.columns * self.geometry.rows

    def router(self, x: int, y: int) -> RouterParams:
        return RouterParams(flit=self.flit, geometry=self.geometry, x=x, y=y,
                            depth=self.depth, counter_width=self.counter_width,
                            edge_depth=self.edge_depth, eject_depth=self.eject_depth)


class Mesh(wiring.Component):
    """A mesh of :class:`~.router.Router`.

    Members
    -------
    inject : In(stream.Signature(flit.layout)).array(nodes, local_ports, vcs)
        Packets into node ``n``'s local port ``l`` on VC ``v`` (see ``Router.inject``).
    eject : Out(stream.Signature(flit.layout)).array(nodes, local_ports, vcs)
        Packets out of node ``n``'s local port ``l`` on VC ``v``.
    unroutable, malformed : Out(counter_width).array(nodes)
        Each router's injection error counters.
    edge_out : Out(LinkSignature(flit, ports)).array(len(geometry.edge_ports))
        Only with gateways: the link out of each gateway edge port, in the order of
        ``geometry.edge_ports``. Its lookahead route is 0 (don't care): the receiving
        side recomputes it.
    edge_in : In(LinkSignature(flit, ports)).array(len(geometry.edge_ports))
        Only with gateways: the link into each gateway edge port; ``payload.route`` must
        be this die's route from that router.

    Parameters
    ----------
    params : MeshParams
    credit_registers : bool
        A register on every credit returned between two routers of the mesh (module
        documentation). The edge ports' credits are the die link's business.
    flit_registers : bool
        A register on every flit between two routers of the mesh (3 cycles per hop).
    injection_registers : bool
        Routers with ``injection_register`` (a cycle more at injection).
    wire_requests : bool
        Routers with ``wire_requests`` (default); ``False`` costs a cycle per hop.
    """

    def __init__(self, params: MeshParams, *, credit_registers: bool = False,
                 flit_registers: bool = False, injection_registers: bool = False,
                 wire_requests: bool = True):
        if not isinstance(params, MeshParams):
            raise TypeError(f"Expected MeshParams, not {params!r}")
        self.params = params
        self.credit_registers = bool(credit_registers)
        self.flit_registers = bool(flit_registers)
        self.injection_registers = bool(injection_registers)
        self.wire_requests = bool(wire_requests)
        geometry, fmt = params.geometry, params.flit
        shape = (params.nodes, geometry.local_ports, fmt.vcs)
        members = {
            "inject": In(stream.Signature(fmt.layout)).array(*shape),
            "eject": Out(stream.Signature(fmt.layout)).array(*shape),
            "unroutable": Out(params.counter_width).array(params.nodes),
            "malformed": Out(params.counter_width).array(params.nodes),
        }
        edges = len(geometry.edge_ports)
        if edges:
            link = LinkSignature(fmt, geometry.ports)
            members["edge_out"] = Out(link).array(edges)
            members["edge_in"] = In(link).array(edges)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        columns, rows = p.geometry.columns, p.geometry.rows
        routers = {}
        for y in range(rows):
            for x in range(columns):
                node = y * columns + x
                router = routers[x, y] = m.submodules[f"router_{x}_{y}"] = Router(replace(
                    p.router(x, y), injection_register=self.injection_registers,
                    wire_requests=self.wire_requests))
                for local in range(p.geometry.local_ports):
                    for vc in range(p.flit.vcs):
                        wiring.connect(m, wiring.flipped(self.inject[node][local][vc]),
                                       router.inject[local][vc])
                        wiring.connect(m, router.eject[local][vc],
                                       wiring.flipped(self.eject[node][local][vc]))
                m.d.comb += [self.unroutable[node].eq(router.unroutable),
                             self.malformed[node].eq(router.malformed)]
        for index, (x, y, direction) in enumerate(p.geometry.edge_ports):
            wiring.connect(m, routers[x, y].link_out[direction],
                           wiring.flipped(self.edge_out[index]))
            wiring.connect(m, wiring.flipped(self.edge_in[index]),
                           routers[x, y].link_in[direction])
        for (x, y), router in routers.items():
            for direction in DIRECTIONS:
                dx, dy = direction.delta
                neighbour = routers.get((x + dx, y + dy))
                if neighbour is None:
                    continue
                sender, receiver = router.link_out[direction], neighbour.link_in[
                    direction.opposite]
                flits = m.d.sync if self.flit_registers else m.d.comb
                credits = m.d.sync if self.credit_registers else m.d.comb
                flits += [receiver.valid.eq(sender.valid), receiver.payload.eq(sender.payload)]
                credits += sender.credit.eq(receiver.credit)
        return m
