# amaranth: UnusedElaboratable=no
"""Formal property wrappers for the NoC's arbiters, switch allocator and router credits.

Run by :func:`chipknit.tb.formal.check` (see ``tests/test_formal_noc.py``). As in
:mod:`chipknit.tb.properties`, the free inputs are top-level ports that the solver drives
arbitrarily every cycle (``rst`` included); ``Assume`` restricts them only to what the
block's contract says its caller does.

- :class:`RoundRobinProperties`: the grant is one-hot among the requests (zero only when
  nobody asks), and a requester that keeps asking sees at most ``count - 1`` used grants go
  to others before its own.
- :class:`AllocatorProperties`: the :class:`~chipknit.rtl.noc.allocator.PreselectAllocator`
  grants a matching (an output to at most one input, an input at most one output and one
  VC), only to a VC that asks for that output and only over a connection that exists, and
  serves a VC that keeps asking for one output within ``bound`` cycles (round-robin
  fairness, stated as a bound on a ghost counter of the cycles it has waited).
- :class:`RouterCreditProperties`: a whole :class:`~chipknit.rtl.noc.router.Router` (a
  small flit format) between neighbours that keep the credit protocol: every output VC's
  credit counter plus the flits the downstream side holds is ``depth`` (so it never
  overflows nor underflows), every input VC's buffer holds exactly the flits sent to it
  and not yet credited back (so it never overflows), and the allocator's matching holds
  inside the router.

k-induction needs the state invariants (one-hot arbiter and pre-selection registers, an
arbiter's precedence registers equal to the order after its last grant) stated as
assertions too; they are part of each wrapper.
"""

from amaranth.hdl import Assert, Assume, Cat, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from chipknit.rtl.noc.allocator import PreselectAllocator, RoundRobin
from chipknit.rtl.noc.flit import DIRECTIONS, FlitFormat
from chipknit.rtl.noc.route import MeshGeometry
from chipknit.rtl.noc.router import Router, RouterParams

__all__ = ["RoundRobinProperties", "AllocatorProperties", "RouterCreditProperties",
           "SMALL_FLIT", "one_hot_or_zero", "one_hot", "state_invariants", "matching"]


def one_hot_or_zero(value):
    """At most one bit of ``value`` is set."""
    return (value & (value - 1)) == 0


def one_hot(value):
    """Exactly one bit of ``value`` is set."""
    return one_hot_or_zero(value) & value.any()


class RoundRobinProperties(wiring.Component):
    """A :class:`RoundRobin` with free requests and ``advance``.

    ``waited[k]`` (ghost) counts the grants used (``advance`` with a grant) that went to
    others while requester ``k`` kept asking; it restarts when ``k`` stops asking or is
    granted. Asserted: ``waited[k] < count``, with the arbiter's ``last`` one-hot.
    """

    def __init__(self, count: int = 4, arbiter_class=RoundRobin):
        self.count, self.arbiter_class = count, arbiter_class
        super().__init__({"requests": In(count), "advance": In(1)})

    def elaborate(self, platform):
        m = Module()
        count = self.count
        m.submodules.arbiter = arbiter = self.arbiter_class(count)
        m.d.comb += [arbiter.requests.eq(self.requests), arbiter.advance.eq(self.advance)]
        grant = arbiter.grant
        m.d.comb += [
            Assert(one_hot_or_zero(grant)),
            Assert((grant & ~self.requests) == 0),
            Assert(grant.any() == self.requests.any()),
            Assert(one_hot(arbiter.last)),
        ]
        priority_matches_last(m, arbiter)
        used = self.advance & self.requests.any()
        for k in range(count):
            waited = Signal(range(count + 1), name=f"waited{k}")
            with m.If(~self.requests[k] | grant[k]):
                m.d.sync += waited.eq(0)
            with m.Elif(used):
                m.d.sync += waited.eq(waited + 1)
            m.d.comb += Assert(waited < count)
            # Inductive strengthening: each grant to another moves ``last`` closer to k, so
            # waited + (cyclic distance from last to k) <= count.
            for q in range(count):
                distance = (k - q) % count or count
                m.d.comb += Assert(~arbiter.last[q] | (waited + distance <= count))
        return m


class AllocatorProperties(wiring.Component):
    """A :class:`PreselectAllocator` with free requests and flits.

    The caller's contract (assumed): a VC's request is one-hot over outputs or zero and
    only for an output connected to its input (``connections``); only a VC that has a flit
    (``present``) requests; and a VC whose request was not granted still has its flit in
    the next cycle and asks for the same output or, no longer eligible (no credit, output
    VC taken), for none. ``wait[i][v]`` (ghost) counts the
    cycles VC ``v`` of input ``i`` has asked for the same output without a grant; it
    restarts when the request changes or is granted. Asserted: ``wait < bound``.

    Parameters
    ----------
    inputs, vcs, outputs : int
    connections : optional, as for :class:`PreselectAllocator`
    bound : int
        The service bound, in cycles, that is asserted.
    allocator_class : type
        The allocator under proof (a broken one for the must-fail checks).
    """

    def __init__(self, inputs: int = 3, vcs: int = 2, outputs: int = 3, connections=None,
                 bound: int = 8, allocator_class=PreselectAllocator):
        self.inputs, self.vcs, self.outputs = inputs, vcs, outputs
        self.connections, self.bound, self.allocator_class = connections, bound, \
            allocator_class
        super().__init__({
            "requests": In(outputs).array(inputs, vcs),
            "present": In(vcs).array(inputs),
        })

    def elaborate(self, platform):
        m = Module()
        inputs, vcs, outputs = self.inputs, self.vcs, self.outputs
        m.submodules.allocator = dut = self.allocator_class(
            inputs, vcs, outputs, self.connections)
        connections = dut.connections or [tuple(range(inputs))] * outputs
        for i in range(inputs):
            m.d.comb += dut.present[i].eq(self.present[i])
            for v in range(vcs):
                request = self.requests[i][v]
                m.d.comb += [
                    dut.requests[i][v].eq(request),
                    Assume(one_hot_or_zero(request)),
                    Assume(~request.any() | self.present[i][v]),
                ]
                for o in range(outputs):
                    if i not in connections[o]:  # the caller only asks over a connection
                        m.d.comb += Assume(~request[o])
        state_invariants(m, dut)
        matching(m, dut, self.requests, connections)

        for i in range(inputs):
            for v in range(vcs):
                request = self.requests[i][v]
                last = Signal(outputs, name=f"last_request_i{i}_v{v}")
                lost = Signal(name=f"lost_i{i}_v{v}")
                wait = Signal(range(self.bound + 1), name=f"wait_i{i}_v{v}")
                granted = dut.grant[i][v]
                m.d.sync += [last.eq(request), lost.eq(request.any() & ~granted)]
                # A flit that was not granted stays, and keeps its output: its VC asks for
                # the same output again or (not eligible now) for none.
                m.d.comb += Assume(~lost | self.present[i][v]
                                   & ((request == last) | ~request.any()))
                with m.If(request.any() & ~granted):
                    m.d.sync += wait.eq(Mux(request == last, wait + 1, 1))
                with m.Else():
                    m.d.sync += wait.eq(0)
                m.d.comb += Assert(wait < self.bound)
        return m


def state_invariants(m, dut):
    """The allocator's registers hold one-hot values (true from reset on; k-induction needs
    them stated)."""
    for pre in (*dut.pre, *dut.pre_kept, *dut.pre_moved):
        m.d.comb += Assert(one_hot(pre))
    for arbiter in dut.arbiters:
        if arbiter is not None and arbiter.count > 1:
            m.d.comb += Assert(one_hot(arbiter.last))
            priority_matches_last(m, arbiter)


def priority_matches_last(m, arbiter):
    """A :class:`RoundRobin`'s precedence registers (``before``, which the grant reads) are
    the cyclic order after its one-hot ``last`` (which the fairness argument is about)."""
    count = arbiter.count
    for (j, k), bit in arbiter.before.items():
        expected = Cat(arbiter.last[q] for q in range(count)
                       if RoundRobin.order_after(q, j, k, count)).any()
        m.d.comb += Assert(bit == expected)


def matching(m, dut, requests, connections):
    """The allocator's grants form a matching of requests over existing connections."""
    inputs, vcs, outputs = dut.inputs, dut.vcs, dut.outputs
    for o in range(outputs):
        select = dut.select[o]
        m.d.comb += Assert(one_hot_or_zero(select))
        for i in range(inputs):
            if i not in connections[o]:
                m.d.comb += Assert(~select[i])
                continue
            # Input i won output o: its granted VC asks for o.
            asks = Cat(dut.grant[i][v] & requests[i][v][o] for v in range(vcs)).any()
            m.d.comb += Assert(~select[i] | asks)
    for i in range(inputs):
        won = Cat(dut.select[o][i] for o in range(outputs))
        m.d.comb += [
            Assert(one_hot_or_zero(won)),
            Assert(one_hot_or_zero(dut.grant[i])),
            Assert(won.any() == dut.grant[i].any()),
            Assert((dut.grant[i] & ~dut.chosen[i]) == 0),
        ]


#: A flit format small enough for the solver: 6-bit data, of which 4 bits are the
#: destination (1 bit each for port, x, y, die).
SMALL_FLIT = FlitFormat(data_width=6, vcs=2, die_bits=1, x_bits=1, y_bits=1, port_bits=1)


class RouterCreditProperties(wiring.Component):
    """A :class:`Router` at ``(x, y)`` of a small mesh; neighbours keep the credit protocol.

    Upstream of each mesh input (``link_in``): a ghost sender with ``depth`` credits per VC
    sends a flit only with a credit and gets one back per ``credit`` pulse. Downstream of
    each mesh output (``link_out``): a ghost receiver counts the flits it holds per VC and
    returns a credit (a free ``credit_back`` input) only for a flit it holds. Tiles inject
    and take flits freely. Asserted every cycle, per VC: the router's credit counter of
    each output (less last cycle's grant, which the counter applies a cycle late: the
    credits this cycle's grants may spend) plus the flits the receiver holds is ``depth``;
    an input's buffer count plus the sender's credits plus the credits on their way back
    is ``depth``; no flit is sent to a neighbour without a credit; the allocator's matching
    and state invariants.
    """

    def __init__(self, params: RouterParams | None = None, router_class=Router):
        if params is None:
            params = RouterParams(flit=SMALL_FLIT, geometry=MeshGeometry(2, 2), x=0, y=0,
                                  depth=2, counter_width=2)
        self.params, self.router_class = params, router_class
        fmt, n_dir = params.flit, len(DIRECTIONS)
        locals_, vcs = params.geometry.local_ports, fmt.vcs
        super().__init__({
            "in_valid": In(n_dir),
            "in_flit": In(fmt.layout).array(n_dir),
            "in_route": In(range(params.ports)).array(n_dir),
            "credit_back": In(vcs).array(n_dir),
            "inject_valid": In(vcs).array(locals_),
            "inject_flit": In(fmt.layout).array(locals_),
            "eject_ready": In(vcs).array(locals_),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        fmt, depth, vcs, n_dir = p.flit, p.depth, p.flit.vcs, len(DIRECTIONS)
        # Data abstraction for the solver: the credit counters do not depend on the data, so
        # payloads are held at zero (a head flit's destination stays free: it sets the route
        # of an injected packet), and a later reset only restarts the same traces.
        m.d.comb += Assume(~ResetSignal())
        payload = slice(fmt.dest_width, fmt.data_width)
        for d in range(n_dir):
            m.d.comb += Assume(self.in_flit[d].data == 0)
        for port in range(p.geometry.local_ports):
            m.d.comb += Assume(self.inject_flit[port].data[payload] == 0)
        router = self.router_class(p)
        # Elaborated here, so that its internal state (``probes``) exists for the asserts.
        m.submodules.router = router.elaborate(platform)
        probes = router.probes
        for port in range(p.geometry.local_ports):
            for v in range(vcs):
                m.d.comb += [
                    router.inject[port][v].valid.eq(self.inject_valid[port][v]),
                    router.inject[port][v].payload.eq(self.inject_flit[port]),
                    router.eject[port][v].ready.eq(self.eject_ready[port][v]),
                ]
        wide = range(2 * depth + 2)
        for d in range(n_dir):
            link_in, link_out = router.link_in[d], router.link_out[d]
            m.d.comb += [
                link_in.valid.eq(self.in_valid[d]),
                link_in.payload.flit.eq(self.in_flit[d]),
                link_in.payload.route.eq(self.in_route[d]),
            ]
            for v in range(vcs):
                # Upstream sender of link_in[d], VC v.
                up = Signal(wide, init=depth, name=f"up_credits_d{d}_v{v}")
                sent = Signal(name=f"up_sent_d{d}_v{v}")
                m.d.comb += [
                    sent.eq(self.in_valid[d] & (self.in_flit[d].vc == v)),
                    Assume(~sent | (up != 0)),
                ]
                if not router.reach(d):
                    # No neighbour and no edge port there: nothing ever arrives (the mesh
                    # leaves the input unconnected), and the router has no input unit.
                    m.d.comb += Assume(~self.in_valid[d])
                m.d.sync += up.eq(up - sent + link_in.credit[v])
                count = probes["counts"][d][v]
                m.d.comb += Assert(count + up == depth)
                # Downstream receiver of link_out[d], VC v.
                held = Signal(wide, name=f"down_held_d{d}_v{v}")
                arrives = Signal(name=f"down_arrives_d{d}_v{v}")
                back = Signal(name=f"down_back_d{d}_v{v}")
                m.d.comb += [
                    arrives.eq(link_out.valid & (link_out.payload.flit.vc == v)),
                    back.eq(self.credit_back[d][v]),
                    Assume(~back | (held != 0)),
                    link_out.credit[v].eq(back),
                ]
                m.d.sync += held.eq(held + arrives - back)
                self._output(m, probes, d, v, arrives, held)
                m.d.comb += Assert(held <= depth)
            if vcs < (1 << fmt.vc_bits):
                m.d.comb += Assume(~self.in_valid[d] | (self.in_flit[d].vc < vcs))
        for (o, v), queue in probes["eject"].items():
            # A tile output: the ejection FIFO is its downstream buffer, credited back a cycle
            # after a flit leaves it.
            m.d.comb += Assert(~queue.w_en | queue.w_rdy)   # never written when full
            self._output(m, probes, o, v, queue.w_en, queue.level + probes["credit_in"][o][v])
        allocator = probes["allocator"]
        state_invariants(m, allocator)
        matching(m, allocator, allocator.requests,
                 allocator.connections or [tuple(range(p.ports))] * p.ports)
        return m

    def _output(self, m, probes, o, v, arrives, downstream):
        """Output ``o``, VC ``v``: credits + flits granted and not yet out + what the
        downstream side holds (``downstream``) is ``depth``; ``arrives`` is a flit going out."""
        depth = self.params.depth
        between = Signal(range(4), name=f"granted_not_out_o{o}_v{v}")
        m.d.sync += between.eq(between + probes["grants"][o][v] - arrives)
        credits = probes["credits"][o][v]
        m.d.comb += [
            Assert(credits + between + downstream == depth),
            Assert(credits <= depth),
            Assert(between <= 2),
        ]

