"""The bridge between a router port that leaves the die and a die-to-die link adapter.

A router's mesh port speaks the credit channel of :class:`~.flit.LinkSignature` (valid +
``{flit, route}``, per-VC credits back, no ready). A :class:`~chipknit.rtl.link.adapter.
LinkAdapter` carries opaque ``flit_width``-bit flits per VC over ready/valid streams, with its
own credits, CRC and replay. :class:`LinkBridge` joins the two::

    router.link_out ──► noc_in ──► [per-VC buffer, depth] ──► to_link[vc] ──► adapter.i[vc]
    router.link_in  ◄── noc_out ◄── [framing check, route] ◄── from_link[vc] ◄── adapter.o[vc]

Flit mapping
    The link's VC is the flit's VC, so a link flit carries ``{head, tail, data}`` (LSB first,
    :func:`link_flit_layout`), zero-padded to ``flit_width``. The link needs ``flit_width`` to
    be a multiple of its beat width: :func:`link_flit_width` gives the smallest that holds a
    NoC flit. ``data_width = k·beat_width − 2`` (e.g. 30 bits for 32-bit link flits) wastes
    nothing; the default 32-bit NoC data needs 48-bit link flits on 16-bit beats (70.8 % of
    the slot used).

Outbound (router → link)
    The bridge is the router's downstream buffer: ``out_depth`` flits per VC (by default
    ``depth``; the credits the router starts with on that port, its ``RouterParams.
    edge_depth``). A credit
    goes back, from a register, each time a flit is handed to the adapter's ``i[vc]``. VCs
    never wait on each other: each has its own buffer and stream.

Inbound (link → router)
    Per VC, the bridge checks packet framing and computes the lookahead route for the router
    it feeds with a route computer from ``route_computer()`` (any elaboratable with ``dest``
    in and ``port``/``routable`` out, e.g. ``RouteComputer(fmt, geometry, x, y)`` of that
    router). It counts the router's credits per VC and never sends without one. The VCs
    that have a flit and a credit are served round-robin, one flit a cycle; a VC that has no
    credit (its ejection stalled) or no flit never blocks another. ``valid`` and ``payload``
    leave registers. With ``guard_slices`` each VC's guarded flits pass a register slice
    first (a cycle more), so no path runs from the guard through the arbiter and back to
    the link's ``ready``.

Defined outcomes for bad input from the link (counted per VC, never a hang):

================================  ============================================================
arrival on a VC                   outcome
================================  ============================================================
body or tail flit outside a       dropped (taken from the link, never sent), ``malformed`` + 1
packet
head flit whose destination the   the whole packet dropped, ``unroutable`` + 1 (once per packet)
route computer calls unroutable
head flit inside an open packet   the open packet ends with its last flit that came, marked as
(its tail never came)             the tail (each flit waits in a :class:`~.tail_guard.TailGuard`
                                  for the next one), ``truncated`` + 1; the head then starts its
                                  packet as usual, so the wormhole it held in the router is freed
                                  and the receiver sees a short packet (an error), never a
                                  made-up flit it could take for data
head flit inside a packet being   the dropped packet ends; ``malformed`` + 1; the head then
dropped                           starts its packet
================================  ============================================================

(Without ``tail_guards``, for a link no packet can be cut on, the third row cannot happen:
see :class:`LinkBridgeParams`.)

A link that cannot train
    While ``discard`` is high — the link failed to train and is not up again (the far die is
    off, or too many lanes are dead) — the bridge takes every outbound flit from its buffers
    and throws it away, returning its credit and counting it in ``discarded``, so packets
    toward the far die cannot back up into the router and the die's other traffic keeps
    moving; their senders end at their own timeouts. Discarding ends only at a packet
    boundary: a packet whose first flit was discarded is discarded to its tail, so the link
    never carries a packet without its head once it is up again. A packet already partly
    handed to the link when ``discard`` rose loses the rest: the far end must close it,
    as after a peer reset (below; :class:`~chipknit.rtl.package.link_end.PackageLinkEnd`
    raises ``peer_reset`` while its training has failed, so both ends do).

Reset
    The bridge belongs to its die's reset. While ``peer_reset`` is high — the link or the die
    behind it is in reset (today a top drives it; once link training exists, the adapter's
    link-down status will) — the bridge hands nothing to the link, so its buffered flits
    survive, and takes nothing from it. Every inbound packet left open ends with its last
    flit that came, marked as the tail (``truncated`` + 1), as soon as the router has a
    credit for it, so no wormhole stays wedged; a packet being dropped ends. Flits of a
    packet whose head was lost arrive later as body flits outside a packet and are dropped
    (``malformed``).
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import SaturatingCounter
from ..link.frame import LinkParams
from ..register_slice import RegisterSlice
from .allocator import RoundRobin
from .flit import FlitFormat, LinkSignature
from .tail_guard import TailGuard

__all__ = ["LinkBridgeParams", "LinkBridge", "BridgeStatus", "link_flit_layout",
           "link_flit_width"]


def link_flit_layout(fmt: FlitFormat) -> data.StructLayout:
    """A NoC flit on the link: ``{head, tail, data}`` (the VC is the link's)."""
    return data.StructLayout({"head": 1, "tail": 1, "data": fmt.data_width})


def link_flit_width(fmt: FlitFormat, beat_width: int) -> int:
    """The smallest multiple of ``beat_width`` that holds a NoC flit on the link."""
    size = link_flit_layout(fmt).size
    return -(-size // beat_width) * beat_width


def _positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, not {value!r}")


@dataclass(frozen=True)
class LinkBridgeParams:
    """Parameters of one bridge.

    Parameters
    ----------
    flit : FlitFormat
        The NoC's flit format (of the router the bridge serves).
    link : LinkParams
        The link adapter's parameters: ``vcs`` must equal ``flit.vcs`` and ``flit_width``
        must hold ``{head, tail, data}`` (see :func:`link_flit_width`).
    ports : int
        Ports of the router the bridge serves (the width of the lookahead route).
    depth : int
        Flits per VC in the router's input buffer: the credits the bridge starts with
        inbound. Must equal the router's ``RouterParams.depth``.
    out_depth : int or None
        Flits per VC in the outbound buffer: the credits the router starts with on its port
        to the bridge (``RouterParams.edge_depth``, which it must equal). ``None``
        (default): ``depth``. One flit is enough for a slow link: a flit then waits for the
        credit of the one before it (a round trip of about three cycles).
    counter_width : int
        Width of the saturating counters.
    guard_slices : bool
        A :class:`~chipknit.rtl.register_slice.RegisterSlice` on each VC between its
        packet guard and the framing, route and credit logic: a cycle more inbound, and no
        path from the guard through the arbiter back to the guard and the link's ``ready``
        (the link receiver's output registers then wait only on the guard).
    tail_guards : bool
        The :class:`~.tail_guard.TailGuard` on each VC inbound (default). ``False`` takes
        flits from the link straight to the framing and route logic: a flit register less
        per VC and a cycle less per flit, for a link no packet can be cut on — one whose two
        ends reset together and whose ``peer_reset`` and ``discard`` stay low, as a die link
        inside one FPGA (:class:`~chipknit.rtl.package.top.PackageDieLink`). The link
        delivers every flit exactly once and in order, so a head never arrives inside an
        open packet there; on a link where one could, it would wait for ever.
    """
    flit: FlitFormat = field(default_factory=lambda: FlitFormat(data_width=30))
    link: LinkParams = field(default_factory=lambda: LinkParams(flit_width=32))
    ports: int = 5
    depth: int = 4
    out_depth: int | None = None
    counter_width: int = 16
    guard_slices: bool = False
    tail_guards: bool = True

    def __post_init__(self):
        if not isinstance(self.flit, FlitFormat):
            raise TypeError(f"Flit must be a FlitFormat, not {self.flit!r}")
        if not isinstance(self.link, LinkParams):
            raise TypeError(f"Link must be a LinkParams, not {self.link!r}")
        _positive("Ports", self.ports, 2)
        _positive("Depth", self.depth, 1)
        if self.out_depth is not None:
            _positive("Outbound depth", self.out_depth, 1)
        _positive("Counter width", self.counter_width)
        for name in ("guard_slices", "tail_guards"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.link.vcs != self.flit.vcs:
            raise ValueError(f"The link has {self.link.vcs} VCs but the NoC has "
                             f"{self.flit.vcs}; they must be equal")
        needed = link_flit_layout(self.flit).size
        if self.link.flit_width < needed:
            raise ValueError(f"Link flit width {self.link.flit_width} cannot hold a NoC flit "
                             f"({needed} bits: head, tail, {self.flit.data_width} data); use "
                             f"{link_flit_width(self.flit, self.link.beat_width)}")

    @property
    def mapping_efficiency(self) -> float:
        """Fraction of a link flit slot that carries NoC flit bits (head, tail, data)."""
        return link_flit_layout(self.flit).size / self.link.flit_width

    @property
    def data_efficiency(self) -> float:
        """NoC data bits per raw lane bit, error-free, every frame slot filled."""
        return self.flit.data_width / self.link.flit_width * self.link.payload_efficiency


def BridgeStatus(params: LinkBridgeParams) -> wiring.Signature:
    """Counters of a bridge, one per VC, saturating at ``counter_width`` bits."""
    width, vcs = params.counter_width, params.flit.vcs
    return wiring.Signature({name: Out(width).array(vcs) for name in (
        "flits_out",    # flits handed to the link (router → link)
        "flits_in",     # flits taken from the link (link → router), dropped ones included
        "malformed",    # flits dropped outside a packet, dropped packets cut by a head
        "unroutable",   # packets dropped because the route computer could not route them
        "truncated",    # packets cut short, ended at their last flit (head inside, peer reset)
        "discarded",    # outbound flits thrown away while the link could not train
    )})


class _OutQueue(Elaboratable):
    """A synchronous FIFO (``SyncFIFO``'s ports but ``r_level``/``w_level``) whose
    ``r_rdy`` is a register (``level != 0`` kept beside the level), so that the link
    transmitter's take decision, which reads it, does not start with a compare of the level.
    ``r_data`` is the storage (LUT RAM) read asynchronously at the read pointer, as in
    ``SyncFIFO``."""

    def __init__(self, width: int, depth: int):
        self.width, self.depth = width, depth
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_rdy = Signal()
        self.r_data = Signal(width)
        self.r_en = Signal()
        self.r_rdy = Signal()             # a register: the queue is not empty
        self.r_rdy_next = Signal()        # r_rdy's next value
        self.level = Signal(range(depth + 1))

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        do_write, do_read = Signal(), Signal()
        m.d.comb += [self.w_rdy.eq(self.level != depth),
                     do_write.eq(self.w_en & self.w_rdy),
                     do_read.eq(self.r_en & self.r_rdy)]
        storage = m.submodules.storage = memory.Memory(shape=self.width, depth=depth, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(depth))
        consume = Signal(range(depth))

        def incr(pointer):
            return Mux(pointer == depth - 1, 0, pointer + 1)
        m.d.comb += [w_port.addr.eq(produce), w_port.data.eq(self.w_data),
                     w_port.en.eq(do_write), r_port.addr.eq(consume),
                     self.r_data.eq(r_port.data)]
        with m.If(do_write):
            m.d.sync += produce.eq(incr(produce))
        with m.If(do_read):
            m.d.sync += consume.eq(incr(consume))
        # The level's successors from the register; the late `do_read` only picks.
        up, down = Signal.like(self.level), Signal.like(self.level)
        m.d.comb += [up.eq(self.level + 1), down.eq(self.level - 1)]
        m.d.sync += self.level.eq(Mux(do_read, Mux(do_write, self.level, down),
                                      Mux(do_write, up, self.level)))
        # level != 0 next cycle: a write keeps it so; else a read empties a queue of one.
        m.d.comb += self.r_rdy_next.eq(do_write | Mux(do_read, self.level != 1, self.r_rdy))
        m.d.sync += self.r_rdy.eq(self.r_rdy_next)
        return m


class LinkBridge(wiring.Component):
    """Joins one router mesh port to one :class:`~chipknit.rtl.link.adapter.LinkAdapter`.

    See the module documentation for the flit mapping, credits, VC rule and error outcomes.

    Parameters
    ----------
    params : LinkBridgeParams
    route_computer : callable
        Called once per VC; returns an elaboratable with ``dest`` (``flit.dest_layout``) in,
        ``port`` and ``routable`` out: the route at the router the bridge feeds.

    Members
    -------
    noc_in : In(LinkSignature(flit, ports))
        From the router's ``link_out`` (the bridge returns ``credit``).
    noc_out : Out(LinkSignature(flit, ports))
        To the router's ``link_in`` (the router returns ``credit``).
    to_link : Out(stream.Signature(link.flit_width)).array(vcs)
        To the adapter's ``i``.
    from_link : In(stream.Signature(link.flit_width)).array(vcs)
        From the adapter's ``o``.
    peer_reset : In(1)
        The link or the far die is in reset (see the module documentation).
    discard : In(1)
        The link cannot carry traffic: outbound packets are discarded (see above).
    status : Out(BridgeStatus(params))
    """

    def __init__(self, params: LinkBridgeParams, route_computer):
        if not isinstance(params, LinkBridgeParams):
            raise TypeError(f"Expected LinkBridgeParams, not {params!r}")
        if not callable(route_computer):
            raise TypeError(f"Route computer must be a callable that builds one, not "
                            f"{route_computer!r}")
        self.params = params
        self.route_computer = route_computer
        p = params
        link = LinkSignature(p.flit, p.ports)
        flits = stream.Signature(p.link.flit_width)
        super().__init__({
            "noc_in": In(link),
            "noc_out": Out(link),
            "to_link": Out(flits).array(p.flit.vcs),
            "from_link": In(flits).array(p.flit.vcs),
            "peer_reset": In(1),
            "discard": In(1),
            "status": Out(BridgeStatus(p)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        fmt, vcs, depth = p.flit, p.flit.vcs, p.depth
        layout = link_flit_layout(fmt)
        status = self.status

        def count(name, vc, event):
            counter = m.submodules[f"count_{name}_v{vc}"] = SaturatingCounter(
                p.counter_width, registered=True)
            m.d.comb += [counter.inc.eq(event), getattr(status, name)[vc].eq(counter.count)]

        # ---- Outbound: the router's downstream buffer, one FIFO per VC --------------------
        arriving = self.noc_in.payload.flit
        packed = Signal(layout)
        m.d.comb += [packed.head.eq(arriving.head), packed.tail.eq(arriving.tail),
                     packed.data.eq(arriving.data)]
        credit_back = Signal(vcs)
        m.d.comb += self.noc_in.credit.eq(credit_back)
        for v in range(vcs):
            queue = m.submodules[f"out_v{v}"] = _OutQueue(
                layout.size, depth if p.out_depth is None else p.out_depth)
            out = self.to_link[v]
            handed = Signal(name=f"handed_v{v}")
            # Discarding: while ``discard`` is high, and on to the tail of a packet whose
            # flits are being discarded.
            in_discarded = Signal(name=f"out_v{v}_in_discarded")
            draining = Signal(name=f"out_v{v}_draining")
            discarded = Signal(name=f"out_v{v}_discarded")
            # queue.r_rdy & ~in_discarded, as a register (the link transmitter decides on it).
            offered = Signal(name=f"out_v{v}_offered")
            in_discarded_next = Signal(name=f"out_v{v}_in_discarded_next")
            m.d.comb += [
                queue.w_data.eq(packed),
                queue.w_en.eq(self.noc_in.valid & (arriving.vc == v)),
                draining.eq(self.discard | in_discarded),
                out.payload.eq(queue.r_data),
                out.valid.eq(offered & ~self.peer_reset & ~self.discard),
                queue.r_en.eq(draining | (out.ready & ~self.peer_reset)),
                handed.eq(out.valid & out.ready),
                discarded.eq(draining & queue.r_rdy),
            ]
            m.d.comb += in_discarded_next.eq(Mux(discarded, ~layout(queue.r_data).tail,
                                                 in_discarded))
            m.d.sync += [in_discarded.eq(in_discarded_next),
                         offered.eq(queue.r_rdy_next & ~in_discarded_next)]
            m.d.sync += credit_back[v].eq(handed | discarded)
            count("flits_out", v, handed)
            count("discarded", v, discarded)

        # ---- Inbound: framing per VC, route, credits, round-robin onto the router link ------
        route_width = len(self.noc_out.payload.route)
        # A guarded flit: the link flit's fields, then its route here (computed on arrival).
        guarded = data.StructLayout({**{name: field.shape for name, field in layout},
                                     "port": route_width, "routable": 1})
        arbiter = m.submodules.arbiter = RoundRobin(vcs)
        m.d.comb += arbiter.advance.eq(1)
        requests, outgoing, routes = [], [], []
        for v in range(vcs):
            # Each flit waits in a TailGuard for the next one of its packet, so a packet the
            # link cuts short ends with its last real flit as the tail (counted in
            # `truncated`), never with a made-up flit a receiver would take for data.
            # The route is computed as the flit enters the guard and waits beside it, so the
            # route computer is not between the guard's register and the link's ``ready``.
            computer = m.submodules[f"route_v{v}"] = self.route_computer()
            if len(computer.port) > route_width:
                raise ValueError(f"The route computer's port has {len(computer.port)} bits, "
                                 f"more than the {route_width} of a {p.ports}-port router")
            arriving = layout(self.from_link[v].payload[:layout.size])
            m.d.comb += computer.dest.eq(fmt.head_layout(arriving.data).dest)
            if p.tail_guards:
                guard = m.submodules[f"tail_guard_v{v}"] = TailGuard(guarded)
                guarded_in, src, truncated = guard.i, guard.o, guard.truncated
                m.d.comb += guard.cut.eq(self.peer_reset)
            else:
                guarded_in = src = stream.Signature(guarded).create(path=(f"in_v{v}",))
                truncated = Const(0)
            m.d.comb += [guarded_in.valid.eq(self.from_link[v].valid),
                         guarded_in.payload.eq(Cat(arriving, computer.port, computer.routable)),
                         self.from_link[v].ready.eq(guarded_in.ready)]
            if p.guard_slices:
                stage = m.submodules[f"guard_slice_v{v}"] = RegisterSlice(guarded)
                wiring.connect(m, guard.o, stage.i)
                src = stage.o
            flit = layout(src.payload.as_value()[:layout.size])
            port, routable = src.payload.port, src.payload.routable

            state = Signal(range(3), name=f"in_v{v}_state")    # 0 idle, 1 forward, 2 drop
            idle, forward, dropping = state == 0, state == 1, state == 2
            credits = Signal(range(depth + 1), init=depth, name=f"in_v{v}_credits")
            held_route = Signal(route_width, name=f"in_v{v}_route")
            # The guard takes nothing from the link during a peer reset; what it still lets
            # out then (a cut packet's tail, a whole packet's) is good and goes on.
            valid = src.valid

            start = Signal(name=f"in_v{v}_start")       # a routable head from idle
            send_flit = Signal(name=f"in_v{v}_send_flit")
            orphan = Signal(name=f"in_v{v}_orphan")      # body/tail outside a packet
            bad_dest = Signal(name=f"in_v{v}_bad_dest")  # unroutable head
            drop_body = Signal(name=f"in_v{v}_drop_body")
            cut_drop = Signal(name=f"in_v{v}_cut_drop")  # head ends a dropped packet
            credit_ok = (credits != 0) | self.noc_out.credit[v]
            m.d.comb += [
                start.eq(valid & idle & flit.head & routable),
                send_flit.eq((valid & forward & ~flit.head) | start),
                orphan.eq(valid & idle & ~flit.head),
                bad_dest.eq(valid & idle & flit.head & ~routable),
                drop_body.eq(valid & dropping & ~flit.head),
                cut_drop.eq(valid & dropping & flit.head),
            ]
            request = credit_ok & send_flit
            requests.append(request)
            grant = arbiter.grant[v]
            sent_flit = grant
            m.d.comb += src.ready.eq(sent_flit | orphan | bad_dest | drop_body)

            # What VC v would put on the router link if granted.
            candidate = Signal(fmt.layout, name=f"in_v{v}_flit")
            route = Signal(route_width, name=f"in_v{v}_out_route")
            m.d.comb += [
                candidate.vc.eq(v),
                candidate.head.eq(flit.head),
                candidate.tail.eq(flit.tail),
                candidate.data.eq(flit.data),
                route.eq(Mux(start, port, held_route)),
            ]
            outgoing.append(candidate)
            routes.append(route)

            m.d.sync += credits.eq(credits - (grant & request) + self.noc_out.credit[v])
            with m.If(sent_flit & start):
                m.d.sync += held_route.eq(port)
            # Framing state. (A head never comes inside an open packet: the guard has closed
            # the packet with its last flit first.)
            with m.If(sent_flit):
                m.d.sync += state.eq(Mux(flit.tail, 0, 1))
            with m.Elif(bad_dest & ~flit.tail):
                m.d.sync += state.eq(2)
            with m.Elif((drop_body & flit.tail) | cut_drop):
                m.d.sync += state.eq(0)
            with m.If(self.peer_reset & dropping):
                m.d.sync += state.eq(0)

            count("flits_in", v, self.from_link[v].valid & self.from_link[v].ready)
            count("malformed", v, orphan | cut_drop)
            count("unroutable", v, bad_dest)
            count("truncated", v, truncated)
        m.d.comb += arbiter.requests.eq(Cat(requests))

        chosen = Signal(fmt.layout)
        chosen_route = Signal(route_width)
        for v in range(vcs):
            with m.If(arbiter.grant[v]):
                m.d.comb += [chosen.eq(outgoing[v]), chosen_route.eq(routes[v])]
        m.d.sync += [
            self.noc_out.valid.eq(arbiter.grant.any()),
            self.noc_out.payload.flit.eq(chosen),
            self.noc_out.payload.route.eq(chosen_route),
        ]
        return m
