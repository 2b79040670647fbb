"""The NoC of a whole package: one mesh per die, die links between the gateway routers.

:class:`PackageNetwork` is elaborated from a validated
:class:`~chipknit.rtl.package.config.Package` (which has checked the cross-die routes for
deadlock). Each die is a :class:`~.mesh.Mesh` whose routers know their gateways; each
:class:`~chipknit.rtl.package.config.DieLink` joins the edge ports of two gateway routers
through a component made by the ``die_link`` factory::

    die a  router.link_out[dir] ──► a_in  ┐            ┌ b_out ──► router.link_in[dir]  die b
           router.link_in[dir]  ◄── a_out ┘  die link  └ b_in  ◄── router.link_out[dir]

The seam: ``die_link(package, index)`` returns any component with those four members
(``a_in``/``b_in``: ``In(LinkSignature)`` of that die's routers; ``a_out``/``b_out``:
``Out(LinkSignature)``). It must be credit-correct (the sending router holds credits for the
receiving router's buffers) and must give every flit it hands a router the lookahead route
of that router (``payload.route``): the sending router sets it to 0 (don't care) on a port
that leaves the die. The default, :class:`StandInDieLink`, is a register pipeline with a
route computer at its far end; the real link layer (link adapters and NoC↔link bridges)
plugs in here.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .flit import FlitFormat, LinkSignature
from .mesh import Mesh
from .route import MeshGeometry, RouteComputer

__all__ = ["LinkRegister", "LinkPipe", "StandInDieLink", "PackageNetwork"]


class LinkRegister(wiring.Component):
    """One register stage on a router-to-router channel: flits forward, credits back.

    ``valid`` and ``payload`` (the flit and its lookahead route, unchanged) go through one
    register from ``i`` to ``o``; credit pulses go back through one register from ``o`` to
    ``i``. Nothing is buffered, so the sender's credits stay exactly the receiver's free
    entries, a cycle later each way. Put next to a router's edge port, it keeps a far
    sender's registers (a die link's bridge) off the router's allocation paths.

    Members
    -------
    i : In(LinkSignature(fmt, ports))
    o : Out(LinkSignature(fmt, ports))
    """

    def __init__(self, fmt: FlitFormat, ports: int):
        self.fmt = fmt
        super().__init__({"i": In(LinkSignature(fmt, ports)),
                          "o": Out(LinkSignature(fmt, ports))})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload),
                     self.i.credit.eq(self.o.credit)]
        return m


class LinkPipe(wiring.Component):
    """One direction of a stand-in die link: ``latency`` register stages each way.

    Flits (``valid`` and the flit) go through ``latency`` registers from ``i`` to ``o``;
    credit pulses go back through ``latency`` registers from ``o`` to ``i``. Nothing is
    buffered, so the credits the sender holds stay exactly those of the receiving router's
    buffers. The lookahead route for the receiving router (``geometry``, ``x``, ``y``) is
    computed before the last stage and registered with it; it is meaningless for a body flit,
    which the router does not read it for.

    Members
    -------
    i : In(LinkSignature(fmt, ports_in))
        From the sending router's edge port (its ``route`` is ignored).
    o : Out(LinkSignature(fmt, geometry.ports))
        To the receiving router's edge port.
    """

    def __init__(self, fmt: FlitFormat, ports_in: int, geometry: MeshGeometry, x: int, y: int,
                 latency: int = 1):
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"Latency must be a positive integer, not {latency!r}")
        self.fmt, self.geometry, self.x, self.y, self.latency = fmt, geometry, x, y, latency
        super().__init__({
            "i": In(LinkSignature(fmt, ports_in)),
            "o": Out(LinkSignature(fmt, geometry.ports)),
        })

    def elaborate(self, platform):
        m = Module()
        fmt = self.fmt
        m.submodules.route = route = RouteComputer(fmt, self.geometry, self.x, self.y)
        valid, flit = self.i.valid, self.i.payload.flit
        for stage in range(self.latency):
            if stage == self.latency - 1:
                m.d.comb += route.dest.eq(fmt.head_layout(flit.data).dest)
                m.d.sync += self.o.payload.route.eq(route.port)
            next_valid = Signal(name=f"valid_{stage}")
            next_flit = Signal(fmt.layout, name=f"flit_{stage}")
            m.d.sync += [next_valid.eq(valid), next_flit.eq(flit)]
            valid, flit = next_valid, next_flit
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.flit.eq(flit)]
        credit = self.o.credit
        for stage in range(self.latency):
            delayed = Signal(fmt.vcs, name=f"credit_{stage}")
            m.d.sync += delayed.eq(credit)
            credit = delayed
        m.d.comb += self.i.credit.eq(credit)
        return m


class StandInDieLink(wiring.Component):
    """A die link as two :class:`LinkPipe` (the stand-in until the link layer plugs in).

    Parameters
    ----------
    package : Package
    index : int
        Which of ``package.links``.
    latency : int
        Register stages each way (flits and credits).

    Members
    -------
    a_in, a_out, b_in, b_out
        See the module documentation.
    """

    def __init__(self, package, index: int, latency: int = 1):
        self.package, self.index, self.latency = package, index, latency
        link = package.links[index]
        fmt = package.flit
        self.geometry_a = package.geometry(link.a.die)
        self.geometry_b = package.geometry(link.b.die)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"Latency must be a positive integer, not {latency!r}")
        ports_a, ports_b = self.geometry_a.ports, self.geometry_b.ports
        super().__init__({
            "a_in": In(LinkSignature(fmt, ports_a)),
            "a_out": Out(LinkSignature(fmt, ports_a)),
            "b_in": In(LinkSignature(fmt, ports_b)),
            "b_out": Out(LinkSignature(fmt, ports_b)),
        })

    def elaborate(self, platform):
        m = Module()
        link, fmt = self.package.links[self.index], self.package.flit
        m.submodules.a_to_b = a_to_b = LinkPipe(fmt, self.geometry_a.ports, self.geometry_b,
                                                link.b.x, link.b.y, self.latency)
        m.submodules.b_to_a = b_to_a = LinkPipe(fmt, self.geometry_b.ports, self.geometry_a,
                                                link.a.x, link.a.y, self.latency)
        wiring.connect(m, wiring.flipped(self.a_in), a_to_b.i)
        wiring.connect(m, a_to_b.o, wiring.flipped(self.b_out))
        wiring.connect(m, wiring.flipped(self.b_in), b_to_a.i)
        wiring.connect(m, b_to_a.o, wiring.flipped(self.a_out))
        return m


def stand_in_die_link(latency: int = 1):
    """A ``die_link`` factory for :class:`PackageNetwork`: :class:`StandInDieLink`."""
    return lambda package, index: StandInDieLink(package, index, latency)


class PackageNetwork(wiring.Component):
    """The NoC of a package: a mesh per die, die links between gateway routers.

    Parameters
    ----------
    package : Package
        A validated package (``chipknit.rtl.package.config``).
    die_link : callable, optional
        ``die_link(package, index)`` makes the component of link ``index`` (module
        documentation); default :class:`StandInDieLink` with ``link_latency``.
    link_latency : int
        Register stages each way of the default stand-in link.
    dies : iterable of int, optional
        Build only these dies (default all): what one FPGA of a package split across boards
        holds. A link between two of them is a ``die_link``; a link with one end among them
        is *cut*: its gateway router's edge port becomes ``link{i}_out``/``link{i}_in``, for
        the caller's link end; a link with neither end among them is left out.
    edge_registers : bool
        A :class:`LinkRegister` at each gateway router's edge port, both directions (a
        cycle more each way for flits and credits): the die link's ends, which the placer
        may put far from the router, then reach no router logic in the same cycle.
    credit_registers : bool
        Each die's :class:`Mesh` with ``credit_registers``: a register on every credit
        returned between two of its routers (the credit loop takes 4 cycles, still one
        flit a cycle per VC at ``depth >= 4``).
    flit_registers : bool
        Each die's :class:`Mesh` with ``flit_registers``: a register on every flit between
        two of its routers (3 cycles per hop; with ``credit_registers`` one flit a cycle per
        VC needs ``depth >= 5``).
    injection_registers : bool
        Each die's :class:`Mesh` with ``injection_registers``: routers take an injected
        flit and its route into registers before the buffer (a cycle more at injection).
    wire_requests : bool
        Each die's :class:`Mesh` with ``wire_requests`` (default); ``False``: a flit from a
        neighbour asks the allocator from its input's registers, a cycle more per hop.

    Members
    -------
    die{n}_inject : In(stream.Signature(flit.layout)).array(nodes, local_ports, vcs)
        Die ``n``'s :attr:`Mesh.inject` (node ``y * columns + x``, local port, VC).
    die{n}_eject : Out(stream.Signature(flit.layout)).array(nodes, local_ports, vcs)
    die{n}_unroutable, die{n}_malformed : Out(counter_width).array(nodes)
        Each router's injection error counters (a destination on a die that does not
        exist, or outside its die's mesh, is unroutable where it is injected).
    link{i}_out : Out(LinkSignature(flit, ports))
        Cut link ``i``: what its gateway router sends across (as a die link's ``a_in``).
    link{i}_in : In(LinkSignature(flit, ports))
        Cut link ``i``: what comes back into that router (the die link must give each flit
        the router's lookahead route, as a die link's ``a_out``).
    """

    def __init__(self, package, *, die_link=None, link_latency: int = 1, dies=None,
                 edge_registers: bool = False, credit_registers: bool = False,
                 flit_registers: bool = False, injection_registers: bool = False,
                 wire_requests: bool = True):
        from ..package.config import Package  # the package layer builds on the NoC
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        self.package = package
        self.die_link = die_link or stand_in_die_link(link_latency)
        self.dies = package.die_set(dies)
        self.edge_registers = bool(edge_registers)
        self.credit_registers = bool(credit_registers)
        self.flit_registers = bool(flit_registers)
        self.injection_registers = bool(injection_registers)
        self.wire_requests = bool(wire_requests)
        self.mesh_params = {die.number: package.mesh_params(die.number)
                            for die in package.dies if die.number in self.dies}
        fmt, members = package.flit, {}
        for number, params in self.mesh_params.items():
            shape = (params.nodes, params.geometry.local_ports, fmt.vcs)
            members[f"die{number}_inject"] = In(stream.Signature(fmt.layout)).array(*shape)
            members[f"die{number}_eject"] = Out(stream.Signature(fmt.layout)).array(*shape)
            members[f"die{number}_unroutable"] = Out(params.counter_width).array(params.nodes)
            members[f"die{number}_malformed"] = Out(params.counter_width).array(params.nodes)
        for index, end in self.cut_links().items():
            ports = package.geometry(end.die).ports
            members[f"link{index}_out"] = Out(LinkSignature(fmt, ports))
            members[f"link{index}_in"] = In(LinkSignature(fmt, ports))
        super().__init__(members)

    def cut_links(self) -> dict:
        """``index -> Endpoint``: the links with exactly one end on a built die, and that
        end."""
        return self.package.cut_links(self.dies)

    def elaborate(self, platform):
        m = Module()
        meshes = {}
        for number, params in self.mesh_params.items():
            mesh = meshes[number] = m.submodules[f"die{number}"] = Mesh(
                params, credit_registers=self.credit_registers,
                flit_registers=self.flit_registers,
                injection_registers=self.injection_registers,
                wire_requests=self.wire_requests)
            for node in range(params.nodes):
                for local in range(params.geometry.local_ports):
                    for vc in range(params.flit.vcs):
                        wiring.connect(m, wiring.flipped(
                            getattr(self, f"die{number}_inject")[node][local][vc]),
                            mesh.inject[node][local][vc])
                        wiring.connect(m, mesh.eject[node][local][vc], wiring.flipped(
                            getattr(self, f"die{number}_eject")[node][local][vc]))
                m.d.comb += [
                    getattr(self, f"die{number}_unroutable")[node].eq(mesh.unroutable[node]),
                    getattr(self, f"die{number}_malformed")[node].eq(mesh.malformed[node]),
                ]
        def edge(end):
            mesh = meshes[end.die]
            index = mesh.params.geometry.edge_ports.index((end.x, end.y, end.direction))
            if not self.edge_registers:
                return mesh.edge_out[index], mesh.edge_in[index]
            ports = mesh.params.geometry.ports
            name = f"die{end.die}_{end.x}_{end.y}_{end.direction.name.lower()}"
            out = m.submodules[f"{name}_out_register"] = LinkRegister(self.package.flit, ports)
            into = m.submodules[f"{name}_in_register"] = LinkRegister(self.package.flit, ports)
            wiring.connect(m, mesh.edge_out[index], out.i)
            wiring.connect(m, into.o, mesh.edge_in[index])
            return out.o, into.i

        cut = self.cut_links()
        for index, link in enumerate(self.package.links):
            if index in cut:
                edge_out, edge_in = edge(cut[index])
                wiring.connect(m, edge_out, wiring.flipped(getattr(self, f"link{index}_out")))
                wiring.connect(m, wiring.flipped(getattr(self, f"link{index}_in")), edge_in)
                continue
            if link.a.die not in self.dies:
                continue
            component = m.submodules[f"link{index}"] = self.die_link(self.package, index)
            for end, side in ((link.a, "a"), (link.b, "b")):
                edge_out, edge_in = edge(end)
                wiring.connect(m, edge_out, getattr(component, f"{side}_in"))
                wiring.connect(m, getattr(component, f"{side}_out"), edge_in)
        return m
