"""A wormhole router with credit flow control, virtual channels and a two-stage pipeline.

Pipeline (one hop = two clock edges, the link included)::

    cycle 1  the flit is on the link wire (it left the upstream router's output register);
             it is written into its VC's input buffer, and in the same cycle it asks the
             switch allocator for its output port, which the upstream router computed for
             it (lookahead routing). The grant is registered.
    cycle 2  the flit is read from the buffer and crosses the switch into this router's
             output register, which drives the next link. Its lookahead route for the next
             router, computed when it arrived, goes with it.

A flit that finds its VC's buffer non-empty waits there and asks again each cycle; the
allocator always works on the oldest flit of a VC that it has not granted yet, so a VC can
send one flit every cycle. Only the turns XY routing can take are built (:meth:`Router.reach`):
the crossbar and the output arbiters connect an output to the inputs that can use it.

Virtual channels are message classes: a packet keeps its VC from source to destination
(VC 0 requests, VC 1 responses, …). VC allocation is therefore the ownership of an output
VC: a head flit may only be granted an output VC no other packet holds; the grant of its
head takes it, the grant of its tail frees it, so the flits of one packet never interleave
with another's on one VC. This ownership check is part of the switch allocator's request
(:class:`~.allocator.PreselectAllocator`: each input offers one VC, pre-selected a cycle
ahead, and each output picks an input round-robin).

Credits: one counter per output VC, ``depth`` at reset, spent at the grant and returned one
cycle after the receiving router reads the flit out of its buffer.

The allocator's grant only goes into flip-flops. Everything it changes (an input VC's oldest
flit, the credit counters, the ownership of output VCs) takes it into account in the next
cycle: an input VC keeps the allocation meta of its two oldest flits in registers and
requests with the second one's if the first was granted last cycle; a request reads an
output VC's credits and ownership with last cycle's grant applied. So the allocation cycle
ends at the grant, and no update waits for it (the behaviour, cycle by cycle, is that of
applying the grant at once).

Local (tile) ports are streams, one per local port and VC, so a tile can always take a
response while its requests wait. Injection computes the route (and the lookahead route)
itself, when it writes the flit into the tile input's buffer; the flit requests from there
in the next cycle, so a packet takes one cycle more at injection (not per hop) and no route
computation is in the allocation cycle. With ``injection_register`` the flit and its route
are registered before they reach the buffer (one cycle more again), so no route
computation is between the tile's stream and the buffer's state either. A packet whose
destination is unroutable (another die, outside the mesh, a missing local port) is taken
from the stream, dropped whole and counted in ``unroutable``: the injecting tile never
stalls on it and nothing enters the network. Framing errors at injection are counted in
``malformed``: a non-head flit outside a packet is dropped; a head flit inside an open
packet is forwarded as a body flit of that packet (so the packet still ends at its tail and
no output VC stays locked).

Reset clears every buffer, credit and ownership: packets in flight are lost, and the network
is clean and usable in the next cycle. A reset must cover the whole network (every router
and the tiles' packet framing), as for a credit channel.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .allocator import PreselectAllocator
from .flit import DIRECTIONS, Direction, FlitFormat, LinkSignature
from .route import MeshGeometry, RouteComputer, xy_target

__all__ = ["RouterParams", "Router"]


@dataclass(frozen=True)
class RouterParams:
    """Parameters of one router.

    Parameters
    ----------
    flit : FlitFormat
        Flit width (``data_width``), VCs (``vcs``) and destination field widths.
    geometry : MeshGeometry
        The mesh the router sits in; ``geometry.local_ports`` sets the port count
        (``ports = 4 + local_ports``).
    x, y : int
        The router's position.
    depth : int
        Input buffer entries per VC (credits per output VC). One flit per cycle per VC
        needs ``depth >= 3`` (the credit round trip).
    counter_width : int
        Width of the saturating error counters.
    wire_requests : bool
        A flit arriving on a mesh input whose VC has nothing older asks the allocator
        straight from the link (2 cycles per hop). Without, it asks from the input's
        registers a cycle later (3 cycles per hop, the credit loop a cycle longer): the
        allocation then starts from flip-flops only (the router alone: 7 logic levels
        instead of 9, ×1.14 Fmax; docs/noc.md *Issue 7: the router without wire requests*).
    injection_register : bool
        A tile input takes a flit and its route (computed from the stream's payload) into
        registers first, and into its buffer from there: a cycle more at injection, and no
        route computation between the tile's stream and the buffer's state.
    edge_depth : int or None
        Credits per VC on the ports that leave the die (``geometry.edge_ports``): the buffer
        of the link bridge behind them. ``None`` (default): ``depth``. At most ``depth``.
    eject_depth : int or None
        Entries per VC of each tile port's ejection queue (and the credits its output
        starts with). ``None`` (default): ``depth``. At most ``depth``; 1 delivers a flit
        every other cycle at best, enough for a slow tile.
    """
    flit: FlitFormat = field(default_factory=FlitFormat)
    geometry: MeshGeometry = field(default_factory=MeshGeometry)
    x: int = 0
    y: int = 0
    depth: int = 4
    counter_width: int = 16
    wire_requests: bool = True
    injection_register: bool = False
    edge_depth: int | None = None
    eject_depth: int | None = None

    def __post_init__(self):
        if not isinstance(self.flit, FlitFormat):
            raise TypeError(f"Flit must be a FlitFormat, not {self.flit!r}")
        if not isinstance(self.geometry, MeshGeometry):
            raise TypeError(f"Geometry must be a MeshGeometry, not {self.geometry!r}")
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 2:
            raise ValueError(f"Depth must be an integer of at least 2, not {self.depth!r}")
        if (not isinstance(self.counter_width, int) or isinstance(self.counter_width, bool)
                or self.counter_width < 1):
            raise ValueError(f"Counter width must be a positive integer, not "
                             f"{self.counter_width!r}")
        for name in ("edge_depth", "eject_depth"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or not 1 <= value <= self.depth):
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be an integer "
                                 f"from 1 to the depth ({self.depth}), not {value!r}")
        for name in ("wire_requests", "injection_register"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name.replace('_', ' ').capitalize()} must be a bool, not "
                                f"{getattr(self, name)!r}")
        if not self.geometry.contains(self.x, self.y):
            raise ValueError(f"Position ({self.x}, {self.y}) is outside the "
                             f"{self.geometry.columns}x{self.geometry.rows} mesh")
        self.geometry.check_fits(self.flit)

    @property
    def ports(self) -> int:
        return self.geometry.ports


def _wrap_inc(pointer, depth):
    """``pointer + 1`` modulo ``depth``."""
    if depth & (depth - 1) == 0:
        return (pointer + 1)[:depth.bit_length() - 1]
    return Mux(pointer == depth - 1, 0, pointer + 1)


def _read(signals, index):
    """``signals[index]`` as a multiplexer that covers every value of ``index``."""
    padded = list(signals) + [signals[-1]] * ((1 << len(index)) - len(signals))
    return Array(padded)[index]


class _SaturatingSum:
    """A saturating counter that may count several events in one cycle. The events are
    registered first (the count lags them by a cycle): the logic that decides them ends at
    a flip-flop, and the counter, which a package's counters bank reads across the die,
    starts from one."""

    def __init__(self, m, target, events):
        limit = (1 << len(target)) - 1
        if events:
            held = Signal(len(events), name=f"{target.name}_events")
            m.d.sync += held.eq(Cat(*events))
            events = list(held)
        total = sum(events[1:], events[0]) if events else 0
        nxt = target + total
        m.d.sync += target.eq(Mux(nxt > limit, limit, nxt))


class Router(wiring.Component):
    """Wormhole router: 4 mesh ports (credit links) and local stream ports.

    See the module documentation for the pipeline, VCs, credits and error handling.

    Members
    -------
    link_in : In(LinkSignature(flit, ports)).array(4)
        From the neighbours, indexed by :class:`~.flit.Direction` (``link_in[EAST]`` comes
        from the router to the east). ``payload.route`` is this router's output port.
    link_out : Out(LinkSignature(flit, ports)).array(4)
        To the neighbours; ``payload.route`` is the output port at the neighbour.
    inject : In(stream.Signature(flit.layout)).array(local_ports, vcs)
        Packets from tile ``l`` on VC ``v``. ``ready`` depends only on registers (the
        buffer's fill, and the injection register's with ``injection_register``).
        The stream index is the VC: the flit's ``vc`` field is overwritten with it.
    eject : Out(stream.Signature(flit.layout)).array(local_ports, vcs)
        Packets to tile ``l`` on VC ``v``, whole packets one after another.
    unroutable : Out(counter_width)
        Packets dropped at injection because their destination does not exist: not in this
        die's mesh, nor in the mesh of a die one of ``geometry.gateways`` leads to.
    malformed : Out(counter_width)
        Injected flits that broke packet framing (see the module documentation).
    """

    def __init__(self, params: RouterParams):
        if not isinstance(params, RouterParams):
            raise TypeError(f"Expected RouterParams, not {params!r}")
        self.params = params
        fmt, ports = params.flit, params.ports
        link = LinkSignature(fmt, ports)
        locals_, vcs = params.geometry.local_ports, fmt.vcs
        super().__init__({
            "link_in": In(link).array(len(DIRECTIONS)),
            "link_out": Out(link).array(len(DIRECTIONS)),
            "inject": In(stream.Signature(fmt.layout)).array(locals_, vcs),
            "eject": Out(stream.Signature(fmt.layout)).array(locals_, vcs),
            "unroutable": Out(params.counter_width),
            "malformed": Out(params.counter_width),
        })

    @property
    def edge_directions(self) -> frozenset:
        """The directions in which this router's links leave the die (its gateway edge
        ports)."""
        p = self.params
        return frozenset(direction for x, y, direction in p.geometry.edge_ports
                         if (x, y) == (p.x, p.y))

    def reach(self, port: int) -> tuple:
        """The output ports a flit entering by ``port`` can take (XY routing forbids the
        rest): not back where it came from, and not from a y link of this die onto an x
        link of this die (a Y->X turn). A tile input may go anywhere, and a link that leaves
        the die (a gateway edge port) anywhere but back over that link. An output that
        leads nowhere (no neighbour, no gateway edge port) is never taken, and nothing
        enters by an input that comes from nowhere (none: it has no input unit). The
        allocator's arbiters and the crossbar only connect these pairs."""
        p = self.params
        geometry, n_dir = p.geometry, len(DIRECTIONS)
        inner = {d for d in DIRECTIONS if geometry.contains(p.x + d.delta[0], p.y + d.delta[1])}
        edges = self.edge_directions
        outputs = [o for o in range(p.ports) if o >= n_dir or o in inner or o in edges]
        if port < n_dir and port not in inner and port not in edges:
            return ()
        if port in edges:
            # Die-level routes are shortest, so a packet that crossed a die link is one
            # link closer to its die than the die it came from and never crosses back.
            return tuple(o for o in outputs if o != port)
        if port >= n_dir or port not in inner:
            return tuple(outputs)
        incoming = Direction(port)
        forbidden = {incoming}
        if incoming in (Direction.NORTH, Direction.SOUTH):
            forbidden |= {Direction.EAST, Direction.WEST} & inner
        return tuple(o for o in outputs if o not in forbidden)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        fmt, geometry, depth = p.flit, p.geometry, p.depth
        ports, vcs, n_dir = p.ports, fmt.vcs, len(DIRECTIONS)
        # A buffer entry: the flit's data and its lookahead route. Its head and tail bits are
        # in the allocation meta (and registered at the grant for switch traversal), its VC
        # is the buffer's: none of them is stored twice or crosses the switch.
        entry_layout = data.StructLayout({"data": fmt.data_width, "next": range(ports)})
        reach = [self.reach(i) for i in range(ports)]
        connections = [tuple(i for i in range(ports) if o in reach[i]) for o in range(ports)]
        x_max, y_max = (1 << fmt.x_bits) - 1, (1 << fmt.y_bits) - 1

        def lookahead(dest, port):
            """The output port at the neighbour behind ``port`` (this router's route for
            ``dest``): 0 (don't care) for a local port and for a port that leaves the die,
            whose receiving side recomputes the route. Since ``port`` is this router's XY
            route, the neighbour's route needs only the comparisons of the target with this
            router's column and row and the ones next to them."""
            target_x, target_y, final = xy_target(m, fmt, geometry, dest)
            same_row = final  # the route of a router in this row whose column matches
            if p.y > 0:
                same_row = Mux(target_y < p.y, Direction.SOUTH, same_row)
            if p.y < y_max:
                same_row = Mux(target_y > p.y, Direction.NORTH, same_row)
            routes = {}
            for direction in DIRECTIONS:
                dx, dy = direction.delta
                nx, ny = p.x + dx, p.y + dy
                if not geometry.contains(nx, ny):
                    continue
                if direction == Direction.EAST:    # target_x > x
                    route = same_row if nx == x_max else \
                        Mux(target_x > nx, Direction.EAST, same_row)
                elif direction == Direction.WEST:  # target_x < x
                    route = same_row if nx == 0 else \
                        Mux(target_x < nx, Direction.WEST, same_row)
                elif direction == Direction.NORTH:  # target_x == x, target_y > y
                    route = final if ny == y_max else \
                        Mux(target_y > ny, Direction.NORTH, final)
                else:                                # target_x == x, target_y < y
                    route = final if ny == 0 else \
                        Mux(target_y < ny, Direction.SOUTH, final)
                routes[direction] = route
            nxt = Signal(range(ports))
            with m.Switch(port):
                for direction, route in routes.items():
                    with m.Case(direction):
                        m.d.comb += nxt.eq(route)
                with m.Default():  # a local port or the die's edge: no next router here
                    m.d.comb += nxt.eq(0)
            return nxt

        # ---- Output-side state: credits and ownership per output VC -------------------------
        credit_in = [[Signal(name=f"credit_in_o{o}_v{v}") for v in range(vcs)]
                     for o in range(ports)]
        # (An output that leaves the die starts with the link bridge's buffer, a tile output
        # with its ejection queue.)
        edges = self.edge_directions
        eject_depth = depth if p.eject_depth is None else p.eject_depth
        start_credits = [eject_depth if o >= n_dir
                         else p.edge_depth if o in edges and p.edge_depth is not None
                         else depth for o in range(ports)]
        credits = [[Signal(range(depth + 1), init=start_credits[o], name=f"credits_o{o}_v{v}")
                    for v in range(vcs)] for o in range(ports)]
        free = [[Signal(init=1, name=f"free_o{o}_v{v}") for v in range(vcs)]
                for o in range(ports)]
        # The counter before last cycle's grant is applied: != 0 and > 1, kept in registers
        # of their own so that a request reads bits
        credit_nz = [[Signal(init=1, name=f"credit_nz_o{o}_v{v}") for v in range(vcs)]
                     for o in range(ports)]
        credit_ge2 = [[Signal(init=start_credits[o] > 1, name=f"credit_ge2_o{o}_v{v}")
                       for v in range(vcs)] for o in range(ports)]
        # Last cycle's grant (go_reg), and whether it freed the output VC (a tail): applied
        # to the counters and the ownership in this cycle. A granted flit that is not a tail
        # leaves its output VC owned: a head takes it, and a body flit's packet holds it.
        go_reg = [[Signal(name=f"go_reg_o{o}_v{v}") for v in range(vcs)] for o in range(ports)]
        release_reg = [[Signal(name=f"release_reg_o{o}_v{v}") for v in range(vcs)]
                       for o in range(ports)]
        # credits - go_reg + credit_in != 0: a credit for a grant this cycle
        credit_ok = [[Signal(name=f"credit_ok_o{o}_v{v}") for v in range(vcs)]
                     for o in range(ports)]
        free_now = [[Signal(name=f"free_now_o{o}_v{v}") for v in range(vcs)]
                    for o in range(ports)]
        for o in range(ports):
            for v in range(vcs):
                m.d.comb += [
                    credit_ok[o][v].eq(Mux(go_reg[o][v],
                                           credit_ge2[o][v] | (credit_nz[o][v] & credit_in[o][v]),
                                           credit_nz[o][v] | credit_in[o][v])),
                    free_now[o][v].eq((free[o][v] & ~go_reg[o][v]) | release_reg[o][v]),
                ]
        # The credits left for this cycle's grants (for the formal properties).
        credits_now = [[Signal(range(depth + 1), name=f"credits_now_o{o}_v{v}")
                        for v in range(vcs)] for o in range(ports)]
        for o in range(ports):
            for v in range(vcs):
                m.d.comb += credits_now[o][v].eq(credits[o][v] - go_reg[o][v])
        for d in range(n_dir):
            for v in range(vcs):
                m.d.comb += credit_in[d][v].eq(self.link_out[d].credit[v])

        m.submodules.allocator = allocator = PreselectAllocator(ports, vcs, ports, connections)

        def wins(o, v):
            """``{input i: VC v of i won output o}`` (``select[o][i] & chosen[i][v]``: a
            request implies a flit), from the VC's request and the arbiter's ``blocked``
            rather than its grant: the credit and ownership registers are one AND-OR after
            the arbiter, not two."""
            arbiter = allocator.arbiters[o]
            return {i: allocator.requests[i][v][o] & allocator.offered[i][v]
                    & ~arbiter.blocked[k] for k, i in enumerate(connections[o])}

        def one_hot(port, outputs):
            """``port`` as one bit per output of ``outputs`` (zero if it is none of them)."""
            return Cat(port == o for o in outputs)

        # ---- Input units -------------------------------------------------------------------
        # Per input port i and VC v: the arriving flit (push, its entry and meta), the
        # buffer (data and meta memories, meta registers), pointers and counts. Output ports are
        # kept one-hot over the input's reach (``reach[i]``), so a request is one bit.
        st_entry = []       # per input: the entry read for switch traversal this cycle
        st_vc = []          # per input: registered one-hot VC granted last cycle
        st_flags = []       # per input: registered {head, tail} of that flit
        pops = []           # per input, per VC: registered grant = read and free this cycle
        req_tail_all = []
        unroutable_events, malformed_events = [], []
        counts_all, go_all, eject_queues = [], [], {}
        for i in range(ports):
            is_local = i >= n_dir
            outputs = reach[i]
            width = len(outputs)
            name = f"in{i}"
            if not outputs:
                # A mesh input with no neighbour and no gateway edge port: nothing arrives
                # there (the mesh leaves it unconnected), so it has no input unit, no
                # credits to return, and no output's arbiter or crossbar counts it.
                st_entry.append(None)
                st_flags.append(None)
                st_vc.append(None)
                pops.append(None)
                req_tail_all.append(None)
                counts_all.append([Const(0, range(depth + 1))] * vcs)
                continue
            pushes, entries = [], []
            if not is_local:
                wire = self.link_in[i].payload
                arrive_head = wire.flit.head
                arrive_tail = wire.flit.tail
                dest = fmt.head_layout(wire.flit.data).dest
                nxt = lookahead(dest, wire.route)
                route_hot = Signal(width, name=f"{name}_route")
                m.d.comb += route_hot.eq(one_hot(wire.route, outputs))
                for v in range(vcs):
                    pushes.append(self.link_in[i].valid & (wire.flit.vc == v))
                    entry = Signal(entry_layout, name=f"{name}_v{v}_arrive")
                    m.d.comb += [entry.data.eq(wire.flit.data), entry.next.eq(nxt)]
                    entries.append(entry)
            counts = [Signal(range(depth + 1), name=f"{name}_v{v}_count") for v in range(vcs)]
            pop_regs = [Signal(name=f"{name}_v{v}_pop") for v in range(vcs)]
            vc_reg = Signal(vcs, name=f"{name}_st_vc")
            reads, wr_ptrs, rd_ptrs = [], [], []
            # Allocation meta of a buffer entry: its output port (one-hot over the reach),
            # head and tail. A link input's VCs keep it in one memory, like their data.
            meta_layout = data.StructLayout({"port": width, "head": 1, "tail": 1})
            shared_third = Signal(meta_layout, name=f"{name}_third")
            heads, tails = [], []
            for v in range(vcs):
                vname = f"{name}_v{v}"
                # The output of the open packet, for its body flits.
                cur_port = Signal(width, name=f"{vname}_cur_port")
                arrive_port = Signal(width, name=f"{vname}_arrive_port")
                if is_local:
                    # Injection: route here, framing checks, unroutable packets dropped. The
                    # flit only requests from the buffer, a cycle after it was taken, so the
                    # route computation is not in the allocation cycle.
                    stream_in = self.inject[i - n_dir][v]
                    dest = fmt.head_layout(stream_in.payload.data).dest
                    here = m.submodules[f"{vname}_route"] = RouteComputer(
                        fmt, geometry, p.x, p.y)
                    m.d.comb += here.dest.eq(dest)
                    room = counts[v] != depth
                    if p.injection_register:
                        # The flit and its route computed into registers first; the buffer
                        # takes it from there a cycle later.
                        valid = Signal(name=f"{vname}_staged")
                        flit = Signal(fmt.layout, name=f"{vname}_staged_flit")
                        here_hot = Signal(width, name=f"{vname}_staged_port")
                        routable = Signal(name=f"{vname}_staged_routable")
                        nxt = Signal(range(ports), name=f"{vname}_staged_next")
                        m.d.comb += stream_in.ready.eq(~valid | room)
                        with m.If(stream_in.ready):
                            m.d.sync += [
                                valid.eq(stream_in.valid), flit.eq(stream_in.payload),
                                here_hot.eq(one_hot(here.port, outputs)),
                                routable.eq(here.routable), nxt.eq(lookahead(dest, here.port)),
                            ]
                    else:
                        valid, flit, routable = stream_in.valid, stream_in.payload, here.routable
                        here_hot = one_hot(here.port, outputs)
                        nxt = lookahead(dest, here.port)
                        m.d.comb += stream_in.ready.eq(room)
                    state = Signal(range(3), name=f"{vname}_state")  # 0 idle, 1 fwd, 2 drop
                    take = Signal(name=f"{vname}_take")
                    push = Signal(name=f"{vname}_push")
                    bad_dest = Signal(name=f"{vname}_unroutable")
                    bad_frame = Signal(name=f"{vname}_malformed")
                    entry = Signal(entry_layout, name=f"{vname}_arrive")
                    in_head = Signal(name=f"{vname}_arrive_head")
                    in_tail = Signal(name=f"{vname}_arrive_tail")
                    m.d.comb += [
                        take.eq(valid & room),
                        in_tail.eq(flit.tail),
                        entry.data.eq(flit.data),
                        entry.next.eq(nxt),
                    ]
                    idle, forward = state == 0, state == 1  # 2: dropping
                    m.d.comb += [
                        push.eq(take & ((idle & flit.head & routable) | forward)),
                        bad_dest.eq(take & idle & flit.head & ~routable),
                        bad_frame.eq(take & Mux(idle, ~flit.head, flit.head)),
                        in_head.eq(idle),
                        arrive_port.eq(Mux(idle, here_hot, cur_port)),
                    ]
                    with m.If(take & idle & flit.head & ~flit.tail):
                        m.d.sync += state.eq(Mux(routable, 1, 2))
                    with m.If(take & ~idle & flit.tail):
                        m.d.sync += state.eq(0)
                    with m.If(push & idle):
                        m.d.sync += cur_port.eq(here_hot)
                    unroutable_events.append(bad_dest)
                    malformed_events.append(bad_frame)
                else:
                    push, entry = pushes[v], entries[v]
                    in_head, in_tail = arrive_head, arrive_tail
                    m.d.comb += arrive_port.eq(Mux(arrive_head, route_hot, cur_port))
                    with m.If(push & arrive_head):
                        m.d.sync += cur_port.eq(route_hot)

                # Buffer: data in a memory (distributed RAM); allocation meta in registers
                # (the two oldest flits) and a memory (the rest).
                # A link input gets at most one flit a cycle and reads one VC a cycle, so its
                # VCs share one memory (below); a tile input may push on every VC at once.
                wr_ptr = Signal(range(depth), name=f"{vname}_wr_ptr")
                rd_ptr = Signal(range(depth), name=f"{vname}_rd_ptr")
                wr_ptrs.append(wr_ptr)
                rd_ptrs.append(rd_ptr)
                if is_local:
                    # Allocation meta per entry, in a memory of its own (a link input's VCs
                    # share one, below): it is read two entries after the oldest flit.
                    meta = m.submodules[f"{vname}_meta"] = Memory(
                        shape=meta_layout, depth=depth, init=[])
                    meta_write = meta.write_port()
                    meta_read = meta.read_port(domain="comb")
                    m.d.comb += [
                        meta_write.addr.eq(wr_ptr), meta_write.en.eq(push),
                        meta_write.data.port.eq(arrive_port),
                        meta_write.data.head.eq(in_head),
                        meta_write.data.tail.eq(in_tail),
                        meta_read.addr.eq(_wrap_inc(_wrap_inc(rd_ptr, depth), depth)),
                    ]
                    third = meta_read.data
                    memory = m.submodules[f"{vname}_buffer"] = Memory(
                        shape=entry_layout, depth=depth, init=[])
                    write = memory.write_port()
                    read = memory.read_port(domain="comb")
                    m.d.comb += [
                        write.addr.eq(wr_ptr), write.data.eq(entry), write.en.eq(push),
                        read.addr.eq(rd_ptr),
                    ]
                    reads.append(read.data)
                else:
                    third = shared_third
                with m.If(push):
                    m.d.sync += wr_ptr.eq(_wrap_inc(wr_ptr, depth))
                pop = pop_regs[v]
                with m.If(pop):
                    m.d.sync += rd_ptr.eq(_wrap_inc(rd_ptr, depth))
                m.d.sync += counts[v].eq(counts[v] + push - pop)

                # Request: the oldest flit not granted yet. The grant of a cycle only goes
                # into flip-flops (``pop``); this cycle applies last cycle's grant. The meta
                # of the two oldest flits not granted before last cycle is kept in registers
                # (hol_*, sec_*), so the request of this cycle is the second one's if the
                # first was granted last cycle (``pop``), else the first one's: it starts at
                # flip-flops, and no update waits for the allocator. A link input also lets a
                # flit arriving on an idle VC request from the wire (2 cycles per hop); a
                # tile input requests from the registers only.
                has_pending = Signal(name=f"{vname}_has_pending")  # count >= 1, registered
                has_second = Signal(name=f"{vname}_has_second")    # count >= 2, registered
                hol_port = Signal(width, name=f"{vname}_hol_port")  # zero without a flit
                hol_head = Signal(name=f"{vname}_hol_head")
                hol_tail = Signal(name=f"{vname}_hol_tail")
                sec_port = Signal(width, name=f"{vname}_sec_port")  # zero without a flit
                sec_head = Signal(name=f"{vname}_sec_head")
                sec_tail = Signal(name=f"{vname}_sec_tail")
                # The oldest flit not granted yet, last cycle's grant applied.
                eff_valid = Signal(name=f"{vname}_eff_valid")
                eff_port = Signal(width, name=f"{vname}_eff_port")
                eff_head = Signal(name=f"{vname}_eff_head")
                eff_tail = Signal(name=f"{vname}_eff_tail")
                m.d.comb += [
                    eff_valid.eq(Mux(pop, has_second, has_pending)),
                    eff_port.eq(Mux(pop, sec_port, hol_port)),
                    eff_head.eq(Mux(pop, sec_head, hol_head)),
                    eff_tail.eq(Mux(pop, sec_tail, hol_tail)),
                ]
                if is_local or not p.wire_requests:
                    req_valid, req_head, req_tail = eff_valid, eff_head, eff_tail
                    req_port = eff_port
                else:
                    req_valid = eff_valid | push
                    req_port = Signal(width, name=f"{vname}_req_port")
                    req_head = Signal(name=f"{vname}_req_head")
                    req_tail = Signal(name=f"{vname}_req_tail")
                    m.d.comb += [
                        req_port.eq(eff_port | (arrive_port & (push & ~eff_valid).replicate(
                            width))),
                        req_head.eq(Mux(eff_valid, eff_head, in_head)),
                        req_tail.eq(Mux(eff_valid, eff_tail, in_tail)),
                    ]
                # The third oldest flit's meta (``third``, needed when the second moves up)
                # is read from the meta memory two entries after the oldest (``rd_ptr``,
                # which moves with ``pop``), above.
                #
                # count >= 3, registered: with has_pending and has_second, the flags of the
                # next count are multiplexers of registers by push and pop (no adder after
                # push, which comes late from the injection path or the wire).
                has_third = Signal(name=f"{vname}_has_third")
                count = counts[v]

                def above(n, count=count, depth=depth):
                    """``count > n``; constant 0 when the buffer cannot hold more than n
                    (so no compare is constant in the netlist: Verilator CMPCONST)."""
                    return count > n if n < depth else Const(0)

                two_left = Signal(name=f"{vname}_two_left")  # 2 flits after the pop
                m.d.comb += two_left.eq(Mux(pop, has_third, has_second))
                arrived = push.replicate(width)
                # A link input's shared meta memory holds the wire's route as it came, which
                # is the flit's port only for a head: a body flit goes where the flit before
                # it in its VC goes, which is sec_* when the third moves up.
                third_port = third.port if is_local else Mux(third.head, third.port, sec_port)
                m.d.sync += [
                    hol_port.eq(eff_port | (arrive_port & (push & ~eff_valid).replicate(width))),
                    hol_head.eq(Mux(eff_valid, eff_head, in_head)),
                    hol_tail.eq(Mux(eff_valid, eff_tail, in_tail)),
                    sec_port.eq(Mux(two_left, Mux(pop, third_port, sec_port),
                                    arrive_port & arrived & eff_valid.replicate(width))),
                    sec_head.eq(Mux(two_left, Mux(pop, third.head, sec_head), in_head)),
                    sec_tail.eq(Mux(two_left, Mux(pop, third.tail, sec_tail), in_tail)),
                    # count - pop + push >= 1, >= 2, >= 3 (pop implies a flit)
                    has_pending.eq(push | Mux(pop, has_second, has_pending)),
                    has_second.eq(Mux(push, Mux(pop, has_second, has_pending),
                                      two_left)),
                    has_third.eq(Mux(push, Mux(pop, above(2), above(1)),
                                     Mux(pop, above(3), above(2)))),
                ]
                heads.append(req_head)
                tails.append(req_tail)
                m.d.comb += allocator.present[i][v].eq(req_valid)
                request = [Const(0)] * ports
                for k, o in enumerate(outputs):
                    request[o] = req_port[k] & credit_ok[o][v] & (~req_head | free_now[o][v])
                # A wire of its own (``keep``), like the allocator's ``want`` and ``blocked``
                # pairs: synthesis maps each stage of the allocation cycle on its own (2, 3,
                # 4 LUT levels) instead of folding them into one another one level deeper.
                asks = Signal(ports, name=f"{vname}_asks", attrs={"keep": 1})
                m.d.comb += [asks.eq(Cat(request)), allocator.requests[i][v].eq(asks)]
                m.d.sync += pop.eq(allocator.grant[i][v])
            m.d.sync += vc_reg.eq(allocator.grant[i])
            # Head and tail of the flit read for switch traversal: those of the VC offered
            # now (the granted one, if any), registered beside the grant.
            st_head = Signal(name=f"{name}_st_head")
            st_tail = Signal(name=f"{name}_st_tail")
            m.d.sync += [
                st_head.eq(Cat(allocator.chosen[i][v] & heads[v] for v in range(vcs)).any()),
                st_tail.eq(Cat(allocator.chosen[i][v] & tails[v] for v in range(vcs)).any()),
            ]
            st_flags.append(Cat(st_head, st_tail))
            if not is_local:
                m.d.comb += self.link_in[i].credit.eq(Cat(pop_regs))
            selected = Signal(entry_layout, name=f"{name}_st_entry")
            if is_local:
                acc = 0
                for v in range(vcs):
                    acc = acc | (reads[v].as_value() & vc_reg[v].replicate(entry_layout.size))
                m.d.comb += selected.eq(acc)
            else:
                # One memory for the input's VCs: VC v's entries at {pointer, v}.
                ptr_bits = max(1, (depth - 1).bit_length())
                vc_bits = max(1, (vcs - 1).bit_length())
                memory = m.submodules[f"{name}_buffer"] = Memory(
                    shape=entry_layout, depth=vcs << ptr_bits, init=[])
                write = memory.write_port()
                read = memory.read_port(domain="comb")
                wire_vc = wire.flit.vc[:vc_bits]
                rd_ptr = 0
                rd_vc = 0
                for v in range(vcs):
                    rd_ptr = rd_ptr | (rd_ptrs[v] & vc_reg[v].replicate(ptr_bits))
                    if v:
                        rd_vc = rd_vc | (vc_reg[v].replicate(vc_bits) & v)
                write_addr = Signal(ptr_bits + vc_bits, name=f"{name}_write_addr")
                m.d.comb += [
                    write_addr.eq(Cat(_read(wr_ptrs, wire_vc)[:ptr_bits], wire_vc)),
                    write.addr.eq(write_addr),
                    write.data.eq(entries[0]),
                    write.en.eq(Cat(pushes).any()),
                    read.addr.eq(Cat(rd_ptr[:ptr_bits], rd_vc)),
                    selected.eq(read.data),
                ]
                # The meta memory: written beside the data; read for the VC that pops now
                # (at most one a cycle, ``pop_regs`` being one grant), two entries after its
                # oldest. Only a popping VC uses ``third``.
                meta = m.submodules[f"{name}_meta"] = Memory(
                    shape=meta_layout, depth=vcs << ptr_bits, init=[])
                meta_write = meta.write_port()
                meta_read = meta.read_port(domain="comb")
                third_ptr, third_vc = 0, 0
                for v in range(vcs):
                    ahead = _wrap_inc(_wrap_inc(rd_ptrs[v], depth), depth)
                    third_ptr = third_ptr | (ahead & pop_regs[v].replicate(ptr_bits))
                    if v:
                        third_vc = third_vc | (pop_regs[v].replicate(vc_bits) & v)
                m.d.comb += [
                    meta_write.addr.eq(write_addr),
                    meta_write.data.eq(Cat(route_hot, arrive_head, arrive_tail)),
                    meta_write.en.eq(Cat(pushes).any()),
                    meta_read.addr.eq(Cat(third_ptr[:ptr_bits], third_vc)),
                    shared_third.eq(meta_read.data),
                ]
            st_entry.append(selected)
            counts_all.append(counts)
            st_vc.append(vc_reg)
            pops.append(pop_regs)
            req_tail_all.append(tails)

        # ---- Output side: credits and ownership follow the grants ---------------------------
        for o in range(ports):
            go_all.append([])
            for v in range(vcs):
                # Input i's VC v won output o (select[o][i] & chosen[i][v], see wins).
                won = wins(o, v)
                go = Signal(name=f"go_o{o}_v{v}")
                go_all[o].append(go)
                release = Signal(name=f"release_o{o}_v{v}")
                m.d.comb += [
                    go.eq(Cat(*won.values()).any()),
                    release.eq(Cat(w & req_tail_all[i][v] for i, w in won.items()).any()),
                ]
                # The grant only goes into flip-flops (go_reg, release_reg): the
                # counter and the ownership apply it a cycle later, and a request reads
                # them with last cycle's grant applied (credit_ok, free_now).
                m.d.sync += [go_reg[o][v].eq(go), release_reg[o][v].eq(release)]
                # Never below zero: a grant needed a credit that was there.
                nxt = Signal(range(depth + 2), name=f"credits_next_o{o}_v{v}")
                m.d.comb += nxt.eq(credits[o][v] + credit_in[o][v] - go_reg[o][v])
                m.d.sync += [credits[o][v].eq(nxt), credit_nz[o][v].eq(nxt != 0),
                             credit_ge2[o][v].eq(nxt > 1)]
                m.d.sync += free[o][v].eq(free_now[o][v])

        # ---- Switch traversal: registered selects, crossbar into the output registers --------
        for o in range(ports):
            select = Signal(ports, name=f"out{o}_select")
            m.d.sync += select.eq(allocator.select[o])
            # The VC granted: the output VC whose credit the grant spent.
            out_vc = Signal(fmt.vc_bits, name=f"out{o}_vc")
            vc_acc = 0
            for v in range(1, vcs):
                vc_acc = vc_acc | (go_all[o][v].replicate(fmt.vc_bits) & v)
            m.d.sync += out_vc.eq(vc_acc)
            crossed = Signal(entry_layout, name=f"out{o}_entry")
            flags = Signal(2, name=f"out{o}_flags")
            acc, flag_acc = 0, 0
            for i in connections[o]:
                acc = acc | (st_entry[i].as_value() & select[i].replicate(entry_layout.size))
                flag_acc = flag_acc | (st_flags[i] & select[i].replicate(2))
            m.d.comb += [crossed.eq(acc), flags.eq(flag_acc)]
            flit_out = Signal(fmt.layout, name=f"out{o}_flit")
            m.d.comb += [flit_out.head.eq(flags[0]), flit_out.tail.eq(flags[1]),
                         flit_out.vc.eq(out_vc), flit_out.data.eq(crossed.data)]
            valid = select.any()
            if o < n_dir:
                out = self.link_out[o]
                m.d.sync += [out.valid.eq(valid), out.payload.flit.eq(flit_out),
                             out.payload.route.eq(crossed.next)]
            else:
                for v in range(vcs):
                    queue = m.submodules[f"eject{o - n_dir}_v{v}"] = fifo.SyncFIFO(
                        width=fmt.width, depth=eject_depth)
                    stream_out = self.eject[o - n_dir][v]
                    eject_queues[o, v] = queue
                    m.d.comb += [
                        queue.w_data.eq(flit_out),
                        queue.w_en.eq(valid & (out_vc == v)),
                        stream_out.payload.eq(queue.r_data),
                        stream_out.valid.eq(queue.r_rdy),
                        queue.r_en.eq(stream_out.ready),
                    ]
                    m.d.sync += credit_in[o][v].eq(stream_out.valid & stream_out.ready)

        _SaturatingSum(m, self.unroutable, unroutable_events)
        _SaturatingSum(m, self.malformed, malformed_events)
        # Internal state the formal properties (tb/properties_noc.py) state invariants on.
        self.probes = {"counts": counts_all, "credits": credits_now, "grants": go_all,
                       "credit_in": credit_in, "eject": eject_queues, "allocator": allocator}
        return m
