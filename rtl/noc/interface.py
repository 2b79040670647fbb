"""Network interfaces: memory-mapped requests and responses in, packets out, and back.

The packet format is :mod:`~chipknit.rtl.noc.transaction`'s. Each interface takes one whole
local port of a router (``inject``/``eject``, one stream per VC, connected with
``wiring.connect`` per VC); it uses its own VCs and drains the others (a packet of the
wrong class that reaches it is dropped and counted, so it never blocks the network). A node
with both an initiator and a target uses two local ports.

:class:`InitiatorInterface` (a tile issues requests)
----------------------------------------------------
- *Decode.* A request's address is looked up in the address map (regions of
  ``base``/``size`` and the target node). It is refused at once with a DECODE_ERROR
  response (never sent; ``decode_errors`` counts it) when no region holds it, when it is
  not beat aligned, or when the burst runs past the end of its region. A refused write's
  data beats are taken and dropped.
- *Request entry.* ``bus.request.ready`` is a register: a request that arrives while the
  command stage is busy waits in a one-entry skid buffer, which the stage takes first as
  it frees. No path runs from the network side (``inject.ready``, the slots) back into the
  tile's request logic, and requests still enter back to back (one arriving at an idle
  stage enters it directly). The head is sent from registered decisions (a free slot,
  the refusal, the issue restriction): a request that finds the stage idle leaves a
  cycle later than it could, one that waited in the skid entry leaves at once.
- *Slots.* Each request takes a slot (``2**tag_bits`` of them, in ring order); the slot
  number is the packet's tag, and the tile's own tag is kept in the slot and given back.
  Responses leave in the order requests came (the ring).
- *Order.* Responses from one target come back in order (the network keeps order per
  source, destination and VC, and a target interface answers in order), but two targets
  may answer out of order. This interface keeps order by *issue restriction*: it sends a
  request to a different target only when no response is awaited from the current one
  (responses to requests that timed out do not count). A response for an awaited tag that
  is not the oldest one therefore means the oldest was lost: it is held at the ejection
  port until the oldest times out. No reorder buffer is needed.
- *Writes* are always sent masked: eight data flits (``strobes_per_flit``) per strobe flit
  (a write moves 8 beats in 9 flits). The data of a group waits in a two-bank buffer
  until the group's strobes are known.
- *Timeout.* A request not answered within ``timeout`` cycles of leaving gets TIMEOUT
  (``length + 1`` beats for a read) and is counted in ``timeouts``; its slot stays
  *quarantined* for another ``timeout`` cycles, and a response that arrives meanwhile is
  dropped and counted in ``late`` (so a late response is never taken for a newer request;
  one later than twice the timeout could be, if its slot was reused by then). A read
  response that stops for ``timeout`` cycles in the middle (its target was reset) gets
  its remaining beats with TIMEOUT (also counted in ``timeouts``), and the rest of that
  packet is dropped when it comes.
- *Response stage.* Response flits pass a one-entry register stage (one cycle, full rate)
  in which each head is looked up against the slots; the receive logic acts a cycle later
  on the registered results, so no tag lookup is on the path into ``eject.ready``. A
  retire in between is covered by looking up both the oldest slot and the one after it; a
  timeout, a quarantine end or a dropped late response makes the receive logic wait a
  cycle for fresh results. A head whose slot is allocated in the cycle it is looked up was
  there before that request left: it is dropped as an unknown tag.
- *Malformed responses* are dropped and counted in ``malformed``: an unknown tag, a
  head that disagrees with its request (``write``/``length``) or whose framing cannot be
  right (an OKAY read without data, an error or write response with a body), a body flit
  without a head, and any packet on another VC. The request then times out. A read
  response whose tail comes early gets its missing beats as TARGET_ERROR; one whose tail
  comes late has the extra flits dropped (both counted).

:class:`TargetInterface` (a tile serves requests)
-------------------------------------------------
- Parses request packets from VC 0, checks them and hands good ones to the target
  (``request``, then ``wdata`` for writes), up to ``depth`` of them in flight; responses go
  back in request order, each to its request's ``src``, on VC 1.
- A read is checked whole before it is handed on (its tail must come with its last
  address flit). A write is handed on after its address (cut-through); if its packet then
  ends early the missing beats are given to the target with ``strobe`` 0, if it runs long
  the extra flits are dropped, and either way its response becomes TARGET_ERROR (the beats
  that did arrive may have been written).
- A packet with a parseable head that is malformed (ends before its address, unaligned or
  too-wide address, wrong length) gets a TARGET_ERROR response without reaching the
  target; ``malformed`` counts these and the poisoned writes above. Flits that cannot be
  parsed (a body without a head, e.g. after a reset mid-packet) and packets on another VC
  are dropped and counted in ``dropped``.
- A read response takes its status from its first beat: OKAY gives the data packet, any
  error a head-only packet (the remaining beats are drained).

Reset of an interface drops whatever it held. A reset of a target interface in the middle
of a packet leaves the router's injection framing open: its next packet is merged into the
broken one by the router (see :mod:`~.router`), so the initiators waiting on either time
out (``timeouts``) and the network keeps running.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..block_ram import collision_free_memory, registered_read
from ..timer import CycleTimer
from .transaction import (
    REQUEST_VC,
    RESPONSE_VC,
    InitiatorSignature,
    Status,
    TargetSignature,
    TransactionParams,
)

__all__ = ["Node", "Region", "AddressMap", "InitiatorParams", "InitiatorInterface",
           "TargetParams", "TargetInterface"]


def _integer(name, value, low=0):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")


@dataclass(frozen=True)
class Node:
    """A local port of a router: what a head flit's ``dest`` names."""
    x: int
    y: int
    port: int = 0
    die: int = 0

    def __post_init__(self):
        for name in ("x", "y", "port", "die"):
            _integer(name.capitalize(), getattr(self, name))

    def check_fits(self, params: TransactionParams):
        fmt = params.flit
        for name in ("x", "y", "port", "die"):
            if getattr(self, name) >> getattr(fmt, f"{name}_bits"):
                raise ValueError(f"{self} does not fit the flit format's {name}_bits")

    def const(self, params: TransactionParams):
        return params.flit.dest_layout.const(
            {"port": self.port, "x": self.x, "y": self.y, "die": self.die})


@dataclass(frozen=True)
class Region:
    """``size`` bytes from ``base`` served by the target at ``node`` (offsets from 0)."""
    base: int
    size: int
    node: Node

    def __post_init__(self):
        _integer("Region base", self.base)
        _integer("Region size", self.size, 1)
        if not isinstance(self.node, Node):
            raise TypeError(f"Region node must be a Node, not {self.node!r}")

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class AddressMap:
    """The regions an initiator can reach; an address in none of them is a decode error."""
    regions: tuple = ()

    def __post_init__(self):
        if not isinstance(self.regions, tuple) or not all(
                isinstance(r, Region) for r in self.regions):
            raise TypeError(f"Regions must be a tuple of Region, not {self.regions!r}")
        ordered = sorted(self.regions, key=lambda r: r.base)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.base < a.end:
                raise ValueError(f"Regions overlap: {a} and {b}")

    def check_fits(self, params: TransactionParams):
        for region in self.regions:
            if region.end > 1 << params.addr_width:
                raise ValueError(f"{region} does not fit the {params.addr_width}-bit address")
            if (region.base | region.size) % params.beat_bytes:
                raise ValueError(f"{region} is not aligned to {params.beat_bytes}-byte beats")
            region.node.check_fits(params)


@dataclass(frozen=True)
class InitiatorParams:
    """Parameters of an initiator interface.

    Parameters
    ----------
    transaction : TransactionParams
        Transaction and flit shape.
    node : Node
        This interface's own router port (the ``src`` of its requests).
    address_map : AddressMap
        Where requests go.
    timeout : int
        Cycles a request may wait for its response (and a response packet may stall).
    counter_width : int
        Width of the saturating error counters.
    """
    transaction: TransactionParams = TransactionParams()
    node: Node = Node(0, 0)
    address_map: AddressMap = field(default_factory=AddressMap)
    timeout: int = 1024
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.transaction, TransactionParams):
            raise TypeError(f"Transaction must be a TransactionParams, not "
                            f"{self.transaction!r}")
        if not isinstance(self.node, Node):
            raise TypeError(f"Node must be a Node, not {self.node!r}")
        if not isinstance(self.address_map, AddressMap):
            raise TypeError(f"Address map must be an AddressMap, not {self.address_map!r}")
        _integer("Timeout", self.timeout, 4)
        _integer("Counter width", self.counter_width, 1)
        self.node.check_fits(self.transaction)
        self.address_map.check_fits(self.transaction)


@dataclass(frozen=True)
class TargetParams:
    """Parameters of a target interface.

    Parameters
    ----------
    transaction : TransactionParams
        Transaction and flit shape.
    depth : int
        Requests in flight (handed to the target, response not yet sent).
    counter_width : int
        Width of the saturating error counters.
    """
    transaction: TransactionParams = TransactionParams()
    depth: int = 4
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.transaction, TransactionParams):
            raise TypeError(f"Transaction must be a TransactionParams, not "
                            f"{self.transaction!r}")
        _integer("Depth", self.depth, 1)
        _integer("Counter width", self.counter_width, 1)


def _count(m, target, events):
    """Saturating ``target += sum(events)``. The events are registered first (a count
    shows a cycle after its event), so no decision logic reaches the adder."""
    width = len(target)
    held = []
    for k, event in enumerate(events):
        flag = Signal(name=f"{target.name}_event{k}")
        m.d.sync += flag.eq(event)
        held.append(flag)
    total = sum(held[1:], held[0])
    nxt = Signal(width + 2, name=f"{target.name}_next")
    m.d.comb += nxt.eq(target + total)
    m.d.sync += target.eq(Mux(nxt[width:].any(), (1 << width) - 1, nxt[:width]))


def _network_members(params: TransactionParams, counters):
    fmt = params.flit
    members = {
        "inject": Out(stream.Signature(fmt.layout)).array(fmt.vcs),
        "eject": In(stream.Signature(fmt.layout)).array(fmt.vcs),
    }
    for name in counters:
        members[name] = Out(16)
    return members


def _close_after_reset(m, inject):
    """A reset-less flag that says the last flit sent was not a tail.

    It survives a reset, so an interface reset in the middle of a packet can end that
    packet at the router with one lone tail flit (the receiver sees the packet end early);
    at power-up it is 0 and nothing is sent.
    """
    open_packet = Signal(reset_less=True)
    with m.If(inject.valid & inject.ready):
        m.d.sync += open_packet.eq(~inject.payload.tail)
    return open_packet


def _drain_other_vcs(m, interface, used_in, used_out, vcs):
    """Idle the inject streams we do not use; take and count packets on other VCs."""
    heads = []
    for v in range(vcs):
        if v != used_out:
            m.d.comb += interface.inject[v].valid.eq(0)
        if v != used_in:
            eject = interface.eject[v]
            m.d.comb += eject.ready.eq(1)
            heads.append(eject.valid & eject.payload.head)
    return heads


class InitiatorInterface(wiring.Component):
    """Network interface of an initiator tile. See the module documentation.

    Members
    -------
    bus : In(InitiatorSignature(transaction))
        The tile's requests, write data and responses.
    inject : Out(stream.Signature(flit.layout)).array(vcs)
        To ``Router.inject[l]`` (requests on VC 0).
    eject : In(stream.Signature(flit.layout)).array(vcs)
        From ``Router.eject[l]`` (responses on VC 1).
    decode_errors, timeouts, late, malformed : Out(counter_width)
        Saturating event counters (see the module documentation).
    """

    COUNTERS = ("decode_errors", "timeouts", "late", "malformed")

    def __init__(self, params: InitiatorParams):
        if not isinstance(params, InitiatorParams):
            raise TypeError(f"Expected InitiatorParams, not {params!r}")
        self.params = params
        t = params.transaction
        members = _network_members(t, ())
        members["bus"] = In(InitiatorSignature(t))
        for name in self.COUNTERS:
            members[name] = Out(params.counter_width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = p.transaction
        fmt = t.flit
        bus = self.bus
        slots = 1 << t.tag_bits
        spf = t.strobes_per_flit
        inject = self.inject[REQUEST_VC]
        eject = self.eject[RESPONSE_VC]
        other_heads = _drain_other_vcs(m, self, RESPONSE_VC, REQUEST_VC, fmt.vcs)
        events = {name: [] for name in self.COUNTERS}
        events["malformed"].extend(other_heads)

        # ---- Decode, split over two cycles -------------------------------------------------
        # At acceptance, the region compares and the burst's last word against every
        # region's end (all in parallel, against constants) are registered into the command
        # stage; the refusal, destination and offset are formed from those registers.
        req = bus.request.payload
        regions = p.address_map.regions
        count = max(1, len(regions))
        word_bits = t.addr_width - t.align_bits
        req_word = req.addr[t.align_bits:]
        req_last = Signal(word_bits + 1)
        m.d.comb += req_last.eq(req_word + req.length)
        hit = Signal(count)
        over = Signal(count)
        for i, region in enumerate(regions):
            above = (req.addr >= region.base) if region.base else Const(1)
            below = (req.addr < region.end) if region.end < 1 << t.addr_width else Const(1)
            m.d.comb += [hit[i].eq(above & below),
                         over[i].eq(req_last >= region.end // t.beat_bytes)]
        unaligned = req.addr[:t.align_bits].any() if t.align_bits else Const(0)

        # A request and its decode flags, as the command stage and the skid entry hold them.
        entry_layout = data.StructLayout({
            "write": 1, "length": t.length_bits, "tag": t.tag_bits, "addr": t.addr_width,
            "hit": count, "over": count, "unaligned": 1})
        incoming = Signal(entry_layout)
        m.d.comb += [incoming.write.eq(req.write), incoming.length.eq(req.length),
                     incoming.tag.eq(req.tag), incoming.addr.eq(req.addr),
                     incoming.hit.eq(hit), incoming.over.eq(over),
                     incoming.unaligned.eq(unaligned)]
        cmd = Signal(entry_layout)
        cmd_valid = Signal()
        cmd_write, cmd_length, cmd_tag, cmd_addr = cmd.write, cmd.length, cmd.tag, cmd.addr
        cmd_hit = cmd.hit
        cmd_take = Signal()
        # The skid entry: ``bus.request.ready`` is a register (the entry is empty), so no
        # path runs from the network side (``inject.ready``, the slots, ``cmd_take``) back
        # into the tile's request logic. A request arriving while the command stage is
        # busy waits here, and the stage takes it first as it frees: requests still enter
        # back to back, and one arriving at an idle stage enters it directly, as before.
        skid = Signal(entry_layout)
        skid_valid = Signal()
        cmd_load = Signal()
        accept = Signal()
        m.d.comb += [bus.request.ready.eq(~skid_valid), cmd_load.eq(~cmd_valid | cmd_take),
                     accept.eq(bus.request.valid & ~skid_valid)]
        with m.If(cmd_load):
            with m.If(skid_valid):
                m.d.sync += [cmd.eq(skid), cmd_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [cmd.eq(incoming), cmd_valid.eq(accept)]
        with m.Elif(accept):
            m.d.sync += skid_valid.eq(1)
        # The entry's data follows the input while the entry is empty (an enable from a
        # register: ``cmd_take`` only decides whether the entry becomes valid).
        with m.If(~skid_valid):
            m.d.sync += skid.eq(incoming)
        def refusal(entry):
            return ~entry.hit.any() | entry.unaligned | (entry.hit & entry.over).any()

        def destination(entry):
            # The regions are disjoint, so at most one bit of hit is set: OR the constants.
            bits = Const(0, fmt.dest_layout.size)
            for i, region in enumerate(regions):
                bits = bits | Mux(entry.hit[i], region.node.const(t).as_value(), 0)
            return bits

        cmd_refused = Signal()
        cmd_dest = Signal(fmt.dest_layout)
        base = Signal(t.addr_width)
        base_bits = Const(0, t.addr_width)
        for i, region in enumerate(regions):
            base_bits = base_bits | Mux(cmd_hit[i], region.base, 0)
        m.d.comb += [cmd_refused.eq(refusal(cmd)), cmd_dest.eq(destination(cmd)),
                     base.eq(base_bits)]
        # The offset is needed from the address flit on, at least a cycle after the command
        # stage loads (the head goes first), so it is registered from the stage every cycle.
        cmd_offset = Signal(t.addr_width)
        m.d.sync += cmd_offset.eq(cmd_addr - base)

        # ---- Slots ------------------------------------------------------------------------
        slot_layout = data.StructLayout({"tag": t.tag_bits, "write": 1,
                                         "length": t.length_bits, "status": Status})
        m.submodules.slots = slot_mem = Memory(shape=slot_layout, depth=slots, init=[])
        slot_wr = slot_mem.write_port()
        slot_rd = slot_mem.read_port(domain="comb")
        alloc = Signal(t.tag_bits)    # next slot to take
        retire = Signal(t.tag_bits)   # oldest slot owed a response
        # How many slots are in use, as a thermometer code (bit k set while more than k
        # are): an allocation or a retirement shifts it, so no adder sits behind the late
        # ``do_alloc``/``do_retire``, and "all used" is one bit.
        fill = Signal(slots)
        live = Signal(slots)          # awaiting a network response (or quarantined)
        expired = Signal(slots)       # timed out
        time_bits = p.timeout.bit_length()
        now = Signal(time_bits)
        m.d.sync += now.eq(now + 1)
        # ``now - timeout``, registered (``now`` counts every cycle).
        due = Signal(time_bits, init=-p.timeout % (1 << time_bits))
        m.d.sync += due.eq(now + 1 - p.timeout)
        issued = [Signal(time_bits, name=f"issued{k}") for k in range(slots)]
        # ``issued[k] == due``, compared a cycle ahead (against next cycle's ``due``); a
        # slot whose time is being written is masked below until the compare has seen it.
        hit_time = Signal(slots)
        for k in range(slots):
            m.d.sync += hit_time[k].eq(issued[k] == due + 1)

        # The oldest slot's entry, registered: loaded with the entry that will be the oldest
        # next cycle (the one after it when a slot retires now; the one being written when
        # that is it), so no slot-memory read is on the response path.
        slot_after = slot_mem.read_port(domain="comb")
        retire_after = Signal(t.tag_bits, init=1)
        head_slot = Signal(slot_layout)
        m.d.comb += [slot_rd.addr.eq(retire), slot_after.addr.eq(retire_after)]
        # ``used == 0`` and ``used == 1``, read off the thermometer's low bits (``owed`` and
        # which slot an allocation writes, relative to the oldest, without a compare of
        # the pointers).
        used_none = ~fill[0]
        used_one = fill[0] & ~fill[1] if slots > 1 else fill[0]
        owed = fill[0]

        # The head decision (``do_alloc``, with ``alloc_live`` for a request that goes into
        # the network) is applied to the slots a cycle later, from registers
        # (``allocated``, ``allocated_live``, ``allocated_entry``): the decision then drives
        # a few registers, not the slot memory, the thermometer, ``live``/``expired`` and the
        # oldest entry (the package's critical path ran from the decision into them). The
        # next head cannot go in the cycle after a decision (``settle``), and the
        # registers that the one after reads (``slot_free``, ``was_busy``) count the
        # pending allocation; a response cannot arrive for a slot a cycle after its request.
        do_alloc = Signal()
        alloc_live = Signal()
        allocated = Signal()
        allocated_live = Signal()
        allocated_entry = Signal(slot_layout)
        do_retire = Signal()
        m.d.sync += [
            allocated.eq(do_alloc), allocated_live.eq(alloc_live),
            allocated_entry.tag.eq(cmd_tag), allocated_entry.write.eq(cmd_write),
            allocated_entry.length.eq(cmd_length),
            allocated_entry.status.eq(Mux(cmd_refused, Status.DECODE_ERROR, Status.OKAY)),
        ]
        m.d.comb += [slot_wr.addr.eq(alloc), slot_wr.en.eq(allocated),
                     slot_wr.data.eq(allocated_entry)]
        with m.If(allocated & ~do_retire):
            m.d.sync += fill.eq(Cat(1, fill[:-1]))
        with m.Elif(do_retire & ~allocated):
            m.d.sync += fill.eq(fill[1:])
        # ``alloc`` one-hot as well: the slot's bits of ``live``/``expired`` are selected
        # and set with ANDs, not a multiplexer or a decoder of the pointer.
        alloc_hot = Signal(slots, init=1)
        with m.If(allocated):
            m.d.sync += [alloc.eq(alloc + 1), alloc_hot.eq(alloc_hot.rotate_left(1))]
        with m.If(do_retire):
            m.d.sync += [retire.eq(retire_after), retire_after.eq(retire_after + 1)]
        # An allocation writes the oldest slot's entry when nothing is owed, or the one
        # after it when one request is (``alloc`` is ``retire + used``).
        with m.If(allocated & Mux(do_retire, used_one, used_none)):
            m.d.sync += head_slot.eq(slot_wr.data)
        with m.Elif(do_retire):
            m.d.sync += head_slot.eq(slot_after.data)
        with m.Else():
            m.d.sync += head_slot.eq(slot_rd.data)

        # live/expired updates: expiry (from the response side: the oldest awaited slot
        # waited too long), quarantine end, allocation, response arrival.
        clear_live = Signal(slots)   # from the response side
        expire_now = Signal(slots)
        # The expiry time is written a cycle late (from registers, so the timeout decision
        # does not fan out to every slot's timestamp); the slot just expired is not compared
        # in that cycle.
        expired_then = Signal(slots)
        stamped = Signal(slots)      # ``issued`` written at the last edge
        now_then = Signal(time_bits)
        m.d.sync += [expired_then.eq(expire_now), stamped.eq(expired_then), now_then.eq(now)]
        # (A quarantine lasts ``timeout`` >= 4 cycles, so it never ends in a masked cycle.)
        quarantine_over = live & expired & hit_time & ~expired_then & ~stamped
        set_live = Signal(slots)
        m.d.comb += set_live.eq(Mux(allocated & allocated_live, alloc_hot, 0))
        set_fresh = Mux(allocated, alloc_hot, 0)
        m.d.sync += [
            live.eq((live & ~clear_live & ~quarantine_over) | set_live),
            expired.eq((expired | expire_now) & ~set_fresh),
        ]
        for k in range(slots):
            with m.If(expired_then[k]):
                m.d.sync += issued[k].eq(now_then)

        # ---- Request side: head, address, strobe + data flits -----------------------------
        # The head's go/no-go reads only registers: whether a slot is free, whether the
        # command was refused, whether its destination may be sent to now (issue
        # restriction), each registered from last cycle's state. A command that the stage
        # loads from the skid entry has its refusal and destination check registered from
        # the entry as it loads, so requests still leave back to back. Otherwise these can
        # only turn against sending by a slot allocation or by a command entering from the
        # tile directly, and they are not used in the cycle after either (``settle``); any
        # other change (a response freeing a slot or ending ``busy``) only delays a head by
        # a cycle. The head decision is then two LUT levels, and no path runs from the slot
        # ring, the region decode or the destination compare through it into the slots.
        busy = (live & ~expired).any()
        cur_dest = Signal(fmt.dest_layout)
        slot_free = Signal()
        refused = Signal()
        dest_ok = Signal()
        settle = Signal(init=1)
        # The entry in the stage next cycle is the skid entry's (``from_skid``) or the
        # stage's own; both are decoded from registers, each into a register of its own,
        # and ``from_skid``, which comes late (from ``cmd_take``), is registered too and
        # picks one of the two in the cycle they are used (one LUT: the pick, and ``busy``
        # for ``dest_ok``). Picking before the registers let synthesis merge the late
        # select into the decode (11 LUT levels in the package).
        from_skid = cmd_load & skid_valid
        picked_skid = Signal()
        refused_skid, refused_cmd = Signal(), Signal()
        same_dest_skid, same_dest_cmd = Signal(), Signal()
        was_busy = Signal()
        # With an allocation pending, the slot after ``alloc`` is the next one, and the
        # thermometer's top after the shift is its second bit (a retirement in the same
        # cycle is not counted: the head waits a cycle at most).
        full_after = fill[-2] if slots > 1 else Const(1)
        m.d.sync += [
            slot_free.eq(Mux(allocated, ~full_after & ~(live & alloc_hot.rotate_left(1)).any(),
                             ~fill[-1] & ~(live & alloc_hot).any())),
            picked_skid.eq(from_skid),
            refused_skid.eq(refusal(skid)), refused_cmd.eq(cmd_refused),
            same_dest_skid.eq(cur_dest.as_value() == destination(skid)),
            same_dest_cmd.eq(cur_dest.as_value() == cmd_dest.as_value()),
            was_busy.eq(busy | (allocated & allocated_live)),
            settle.eq((cmd_load & ~skid_valid) | do_alloc),
        ]
        m.d.comb += [
            refused.eq(Mux(picked_skid, refused_skid, refused_cmd)),
            dest_ok.eq(~was_busy | Mux(picked_skid, same_dest_skid, same_dest_cmd)),
        ]

        head = Signal(fmt.head_layout)
        req_head = Signal(t.request_head_layout)
        m.d.comb += [
            req_head.write.eq(cmd_write), req_head.masked.eq(cmd_write),
            req_head.tag.eq(alloc), req_head.length.eq(cmd_length),
            req_head.src.eq(p.node.const(t)),
            head.dest.eq(cmd_dest), head.payload.eq(req_head),
        ]
        addr_index = Signal(range(max(2, t.addr_flits)))
        if t.addr_flits > 1:
            addr_chunk = Array(cmd_offset[k * t.data_width:(k + 1) * t.data_width]
                               for k in range(t.addr_flits))[addr_index]
        else:
            addr_chunk = cmd_offset

        # Write data: two banks of one group each, filled from bus.wdata, drained to the
        # network (strobe flit, then the group's data flits). The read port is synchronous
        # (a block RAM on iCE40, which has no distributed RAM) and reads one beat ahead: as
        # the drain advances from index k to k + 1 it reads address k, which is the beat
        # that index k + 1 sends (index 0 is the strobe flit, beat k is at address k - 1).
        # It reads only in that cycle, so the output holds under backpressure, and only
        # from a full bank, which the fill does not write: no read ever meets a write to
        # its address, so the RAM need not define that case (`collision_free_memory`).
        buffer = m.submodules.wbuffer = collision_free_memory(shape=t.data_width,
                                                              depth=2 * spf)
        buf_wr = buffer.write_port()
        buf_rd_en = Signal()
        strobes = [Signal(t.data_width, name=f"strobes{b}") for b in range(2)]
        full = Signal(2)
        group_beats = [Signal(range(spf + 1), name=f"group_beats{b}") for b in range(2)]
        fill_bank = Signal()
        fill_index = Signal(range(spf))
        fill_left = Signal(t.length_bits + 1)
        # ``fill_left == 0`` and ``== 1`` as registers, kept with it (they decide
        # ``wdata.ready`` and, for a refused write, ``cmd_take``).
        fill_idle = Signal(init=1)
        fill_one = Signal()
        drain_bank = Signal()
        drain_index = Signal(range(spf + 1))  # 0: strobe flit, then beats 1..n
        drain_left = Signal(t.length_bits + 1)
        discard = Signal()   # the write was refused: take its beats, keep nothing

        # The fill runs one write ahead of the packet: it starts as soon as a write command
        # is in the command stage and the previous write's beats are all in.
        fill_started = Signal()
        with m.If(cmd_take):
            m.d.sync += fill_started.eq(0)
        with m.Elif(cmd_valid & cmd_write & ~fill_started & fill_idle):
            m.d.sync += [fill_started.eq(1), fill_left.eq(cmd_length + 1),
                         fill_idle.eq(0), fill_one.eq(cmd_length == 0),
                         discard.eq(cmd_refused)]
        fill_go = Signal()
        m.d.comb += [
            bus.wdata.ready.eq(~fill_idle & (discard | ~full.bit_select(fill_bank, 1))),
            fill_go.eq(bus.wdata.valid & bus.wdata.ready),
            buf_wr.addr.eq(Cat(fill_index, fill_bank)),
            buf_wr.data.eq(bus.wdata.payload.data),
            buf_wr.en.eq(fill_go & ~discard),
        ]
        fill_close = fill_go & ~discard & ((fill_index == spf - 1) | fill_one)
        with m.If(fill_go):
            m.d.sync += [fill_left.eq(fill_left - 1), fill_idle.eq(fill_one),
                         fill_one.eq(fill_left == 2)]
            with m.If(~discard):
                m.d.sync += fill_index.eq(Mux(fill_close, 0, fill_index + 1))
                for b in range(2):
                    with m.If(fill_bank == b):
                        with m.If(fill_index == 0):
                            m.d.sync += strobes[b].eq(bus.wdata.payload.strobe)
                        with m.Else():
                            m.d.sync += strobes[b].word_select(
                                fill_index, t.strobe_width).eq(bus.wdata.payload.strobe)
                        with m.If(fill_close):
                            m.d.sync += group_beats[b].eq(fill_index + 1)
                with m.If(fill_close):
                    m.d.sync += fill_bank.eq(~fill_bank)
        drain_close = Signal()
        for b in range(2):
            with m.If(fill_close & (fill_bank == b)):
                m.d.sync += full[b].eq(1)
            with m.Elif(drain_close & (drain_bank == b)):
                m.d.sync += full[b].eq(0)
        # (At a group's end the read is past the group's last beat, or wraps to its first:
        # the next flit is a strobe flit, which does not use it.)
        buf_rd_data = registered_read(m, buffer, Cat(drain_index[:len(fill_index)], drain_bank),
                                      enable=buf_rd_en, name="wbuffer_data")

        refused_now = Signal()
        events["decode_errors"].append(refused_now)
        flit_data = Signal(t.data_width)
        flit_tail = Signal()
        m.d.comb += [inject.payload.data.eq(flit_data), inject.payload.tail.eq(flit_tail),
                     inject.payload.vc.eq(REQUEST_VC)]
        open_packet = _close_after_reset(m, inject)
        S_HEAD, S_ADDR, S_DATA, S_DISCARD = range(4)
        send_state = Signal(range(4), name="send_state")
        with m.If(send_state == S_HEAD):
            # The address and data counters are set up in every head cycle, not only as the
            # head goes: they are used only after it, and the send decision (the package's
            # critical path, into ``drain_index``) then drives fewer registers.
            m.d.sync += [drain_left.eq(cmd_length + 1), drain_index.eq(0)]
            if t.addr_flits > 1:
                m.d.sync += addr_index.eq(0)
            with m.If(open_packet):
                # Reset in the middle of a packet: end it with a lone tail flit.
                m.d.comb += [inject.valid.eq(1), flit_tail.eq(1)]
            with m.Elif(cmd_valid & ~settle & slot_free):
                m.d.comb += [inject.payload.head.eq(1), flit_data.eq(head)]
                with m.If(refused):
                    # A write's beats are taken in S_DISCARD, and the command stage is
                    # released there (a read's at once), not by this decision.
                    m.d.comb += [do_alloc.eq(1), refused_now.eq(1)]
                    m.d.sync += send_state.eq(S_DISCARD)
                with m.Elif(dest_ok):
                    m.d.comb += inject.valid.eq(1)
                    with m.If(inject.ready):
                        m.d.comb += [do_alloc.eq(1), alloc_live.eq(1)]
                        m.d.sync += [cur_dest.eq(cmd_dest), send_state.eq(S_ADDR)]
        with m.Elif(send_state == S_ADDR):
            # (One address flit, the usual case: no index register at all.)
            last_addr = addr_index == t.addr_flits - 1 if t.addr_flits > 1 else Const(1)
            m.d.comb += [inject.valid.eq(1), flit_data.eq(addr_chunk),
                         flit_tail.eq(last_addr & ~cmd_write)]
            with m.If(inject.ready):
                if t.addr_flits > 1:
                    m.d.sync += addr_index.eq(addr_index + 1)
                with m.If(last_addr):
                    # The command stage is held until here, so it may refill now.
                    m.d.comb += cmd_take.eq(1)
                    with m.If(cmd_write):
                        m.d.sync += send_state.eq(S_DATA)
                    with m.Else():
                        m.d.sync += send_state.eq(S_HEAD)
        with m.Elif(send_state == S_DATA):
            bank_full = full.bit_select(drain_bank, 1)
            on_strobe = drain_index == 0
            group_end = drain_index == Array(group_beats)[drain_bank]
            m.d.comb += [
                inject.valid.eq(bank_full),
                flit_data.eq(Mux(on_strobe, Array(strobes)[drain_bank], buf_rd_data)),
                flit_tail.eq(~on_strobe & (drain_left == 1)),
            ]
            # (``bank_full``, not ``inject.valid``: the same here, but synthesis would share
            # one ``valid & ready`` with the head state's and start from its decision.)
            with m.If(bank_full & inject.ready):
                # Read the beat the next flit sends (see the write-data buffer above).
                m.d.comb += buf_rd_en.eq(1)
                with m.If(group_end):
                    m.d.comb += drain_close.eq(1)
                    m.d.sync += [drain_index.eq(0), drain_bank.eq(~drain_bank)]
                with m.Else():
                    m.d.sync += drain_index.eq(drain_index + 1)
                with m.If(~on_strobe):
                    m.d.sync += drain_left.eq(drain_left - 1)
                    with m.If(drain_left == 1):
                        m.d.sync += send_state.eq(S_HEAD)
        with m.Elif(send_state == S_DISCARD):
            # A refused request: a read is done at once, a write once its beats are taken
            # and dropped (the cycle after its last beat). Either way the command stage
            # reloads from registers only.
            with m.If(~cmd_write | (fill_started & fill_idle)):
                m.d.comb += cmd_take.eq(1)
                m.d.sync += send_state.eq(S_HEAD)
        return self._responses(m, p, eject, head_slot, slot_after.data, owed, live, expired,
                               retire, retire_after, quarantine_over, clear_live, expire_now,
                               do_retire, events)

    def _responses(self, m, p, eject, head_slot, head_after, owed, live, expired, retire,
                   retire_after, quarantine_over, clear_live, expire_now, do_retire, events):
        t = p.transaction
        bus = self.bus
        slots = len(live)

        # ---- The response stage: classify a flit in one cycle, act on it in the next ------
        # Flits from the router enter ``rx``, a one-entry stage, and the receive logic acts
        # on ``rx``. As a flit enters (and every cycle it waits there) its head is looked
        # up against the slots, and the results are registered beside it (``cls``), so the
        # receive logic decides from registers: the tag lookups, compares and the priority
        # of the cases are a cycle earlier, off the path into ``eject.ready``.
        #
        # The lookups see the slots of the cycle before the action. What can change in
        # between, and how it is met:
        # - The oldest slot retires (frequent: at the end of each response): every
        #   retire-dependent result is looked up twice, for ``retire`` and for the slot
        #   after it (``retire_after`` and its registered entry), and ``retired`` picks.
        # - A slot times out, its quarantine ends, or a late response is dropped (rare): the
        #   receive logic waits a cycle (``hold_off``) and acts on fresh results.
        # - A slot is allocated: a flit with that tag was in the stage before the request
        #   left, so it is a stray, and is treated as one (unknown tag: dropped, counted
        #   in ``malformed``) rather than taken for the new request's response.
        flit_shape = eject.payload.shape()
        rx = Signal(flit_shape, name="rx")
        rx_valid = Signal()
        rx_take = Signal()
        advance = Signal()
        m.d.comb += [advance.eq(~rx_valid | rx_take), eject.ready.eq(advance)]
        with m.If(advance):
            m.d.sync += [rx.eq(eject.payload), rx_valid.eq(eject.valid)]

        def response_head(flit):
            """The response head a head flit carries (garbage for a body flit)."""
            return t.response_head_layout(
                t.flit.head_layout(flit.data).payload[:t.response_head_layout.size])

        def agrees(flit, entry):
            head = response_head(flit)
            ok_read = ~head.write & (head.status == Status.OKAY)
            return ((head.write == entry.write) & (head.length == entry.length)
                    & (flit.tail != ok_read))

        class_layout = data.StructLayout({
            "late": 1,          # a head whose slot timed out and is quarantined
            "unknown": 1,       # a head whose slot awaits nothing
            "at_now": 1,        # a head for ``retire``, and it agrees with that slot
            "at_next": 1,       # the same for the slot after it
            "head_now": 1,      # the tag is ``retire``'s (agreeing or not)
            "head_next": 1,     # the tag is ``retire_after``'s
        })

        def classify(flit):
            head = response_head(flit)
            tag_live = live.bit_select(head.tag, 1)
            tag_expired = expired.bit_select(head.tag, 1)
            now = head.tag == retire
            after = head.tag == retire_after
            cls = Signal(class_layout)
            m.d.comb += [
                cls.late.eq(flit.head & tag_live & tag_expired),
                cls.unknown.eq(flit.head & ~tag_live),
                cls.head_now.eq(now), cls.head_next.eq(after),
                cls.at_now.eq(now & agrees(flit, head_slot)),
                cls.at_next.eq(after & agrees(flit, head_after)),
            ]
            return cls

        cls = Signal(class_layout)
        m.d.sync += cls.eq(Mux(advance, classify(eject.payload), classify(rx)))
        retired = Signal()
        m.d.sync += retired.eq(do_retire)
        hold_off = Signal()
        late = Signal()
        timed_out = Signal()
        m.d.sync += hold_off.eq(timed_out | quarantine_over.any() | late)

        flit = rx
        rhead = response_head(flit)
        tag_hot = (Const(1, slots) << rhead.tag)[:slots]
        # A head for the oldest slot (live and not timed out, as ``late``/``unknown`` come
        # first), and whether it agrees with the request.
        for_oldest = Mux(retired, cls.head_next, cls.head_now)
        agreeing = Mux(retired, cls.at_next, cls.at_now)
        # The oldest slot is answered here (a decode error or a timeout): looked up a cycle
        # ahead; a retire in between makes it stale, so it waits a cycle then.
        local_due = Signal()
        m.d.sync += local_due.eq(owed & (expired.bit_select(retire, 1)
                                         | ~live.bit_select(retire, 1)))

        beat = Signal(t.length_bits)
        status = Signal(Status)
        then_skip = Signal()
        stall = CycleTimer(m, "stall", p.timeout)
        # Beats left after this one, and whether this is the last (kept in a register, so
        # no compare is on the retire path).
        last_beat = Signal()
        response = bus.response
        m.d.comb += [
            response.payload.write.eq(head_slot.write),
            response.payload.tag.eq(head_slot.tag),
        ]
        malformed = Signal()
        stalled_out = Signal()
        # The oldest slot's wait: cycles in IDLE with its response awaited and not taken.
        waited = CycleTimer(m, "waited", p.timeout)
        # Whether the oldest slot's response is awaited: looked up a cycle ahead, and not
        # trusted in the cycle after a retire (the wait then starts a cycle later).
        head_awaited = Signal()
        m.d.sync += head_awaited.eq(owed & live.bit_select(retire, 1)
                                    & ~expired.bit_select(retire, 1))
        retire_hot = (Const(1, slots) << retire)[:slots]
        waiting = Signal()
        R_IDLE, R_LOCAL, R_DATA, R_SKIP = range(4)
        receive_state = Signal(range(4), name="receive_state")
        act = rx_valid & ~hold_off
        with m.If(receive_state == R_IDLE):
            with m.If(act & ~flit.head):
                # A body without a head (this interface was reset mid-packet).
                m.d.comb += [rx_take.eq(1), malformed.eq(1)]
                with m.If(~flit.tail):
                    m.d.sync += receive_state.eq(R_SKIP)
            with m.Elif(act & cls.late):
                m.d.comb += [rx_take.eq(1), late.eq(1), clear_live.eq(tag_hot)]
                with m.If(~flit.tail):
                    m.d.sync += receive_state.eq(R_SKIP)
            with m.Elif(act & cls.unknown):
                m.d.comb += [rx_take.eq(1), malformed.eq(1)]
                with m.If(~flit.tail):
                    m.d.sync += receive_state.eq(R_SKIP)
            with m.Elif(act & for_oldest):
                m.d.comb += rx_take.eq(1)
                with m.If(agreeing):
                    m.d.comb += clear_live.eq(tag_hot)
                    m.d.sync += [beat.eq(head_slot.length),
                                 last_beat.eq(head_slot.length == 0),
                                 status.eq(rhead.status), then_skip.eq(0)]
                    stall.restart()
                    with m.If(~rhead.write & (rhead.status == Status.OKAY)):
                        m.d.sync += receive_state.eq(R_DATA)
                    with m.Else():
                        m.d.sync += receive_state.eq(R_LOCAL)
                with m.Else():
                    m.d.comb += malformed.eq(1)
                    with m.If(~flit.tail):
                        m.d.sync += receive_state.eq(R_SKIP)
            with m.Elif(local_due & ~retired):
                # Answered here: a decode error, or a timeout.
                m.d.sync += [beat.eq(head_slot.length), last_beat.eq(head_slot.length == 0),
                             then_skip.eq(0),
                             status.eq(Mux(expired.bit_select(retire, 1), Status.TIMEOUT,
                                           head_slot.status))]
                m.d.sync += receive_state.eq(R_LOCAL)
            # Otherwise a response for a younger slot waits here until the oldest
            # slot's response comes or it times out.
            # (Not while the oldest's response is in the stage: it is taken unless the
            # action holds off a cycle. Read from registers, not from the take.)
            m.d.comb += waiting.eq(head_awaited & ~retired & ~(rx_valid & for_oldest))
        with m.Elif(receive_state == R_LOCAL):
            m.d.comb += [
                response.valid.eq(1), response.payload.status.eq(status),
                response.payload.last.eq(last_beat | head_slot.write),
            ]
            with m.If(response.ready):
                m.d.sync += [beat.eq(beat - 1), last_beat.eq(beat == 1)]
                with m.If(last_beat | head_slot.write):
                    m.d.comb += do_retire.eq(1)
                    with m.If(then_skip):
                        m.d.sync += receive_state.eq(R_SKIP)
                    with m.Else():
                        m.d.sync += receive_state.eq(R_IDLE)
        with m.Elif(receive_state == R_DATA):
            # A tail before the last beat ends a broken packet (e.g. the lone tail a
            # reset target sends): it is not data, and the missing beats are errors.
            early = flit.tail & ~last_beat
            m.d.comb += [
                response.valid.eq(rx_valid & ~early),
                rx_take.eq(response.ready | early),
                response.payload.status.eq(Status.OKAY),
                response.payload.data.eq(flit.data),
                response.payload.last.eq(last_beat),
            ]
            with m.If(rx_valid):
                stall.restart()
            with m.Else():
                stall.step()
                with m.If(stall.expiring):
                    m.d.comb += stalled_out.eq(1)
                    m.d.sync += [status.eq(Status.TIMEOUT), then_skip.eq(1)]
                    m.d.sync += receive_state.eq(R_LOCAL)
            with m.If(response.valid & response.ready):
                m.d.sync += [beat.eq(beat - 1), last_beat.eq(beat == 1)]
                with m.If(last_beat):
                    m.d.comb += do_retire.eq(1)
                    with m.If(flit.tail):
                        m.d.sync += receive_state.eq(R_IDLE)
                    with m.Else():
                        m.d.comb += malformed.eq(1)
                        m.d.sync += receive_state.eq(R_SKIP)
            with m.If(rx_valid & early):
                m.d.comb += malformed.eq(1)
                m.d.sync += [status.eq(Status.TARGET_ERROR), then_skip.eq(0)]
                m.d.sync += receive_state.eq(R_LOCAL)
        with m.Elif(receive_state == R_SKIP):
            m.d.comb += rx_take.eq(1)
            with m.If(rx_valid & flit.tail):
                m.d.sync += receive_state.eq(R_IDLE)
        m.d.comb += timed_out.eq(waiting & waited.expiring)
        with m.If(waiting):
            waited.step()
            with m.If(waited.expiring):
                m.d.comb += expire_now.eq(retire_hot)
                waited.restart()
        with m.Else():
            waited.restart()
        events["timeouts"].append(timed_out)
        events["late"].append(late)
        events["malformed"].append(malformed)
        events["timeouts"].append(stalled_out)
        for name, evs in events.items():
            _count(m, getattr(self, name), [Value.cast(e) for e in evs])
        return m


class TargetInterface(wiring.Component):
    """Network interface of a target tile. See the module documentation.

    Members
    -------
    target : Out(TargetSignature(transaction))
        To the target tile (``MemoryTile.bus``): requests and write data out, responses in.
    inject : Out(stream.Signature(flit.layout)).array(vcs)
        To ``Router.inject[l]`` (responses on VC 1).
    eject : In(stream.Signature(flit.layout)).array(vcs)
        From ``Router.eject[l]`` (requests on VC 0).
    malformed : Out(counter_width)
        Request packets answered with TARGET_ERROR because they broke the format.
    dropped : Out(counter_width)
        Unparseable fragments (a body without a head) and packets on another VC, dropped.
    """

    COUNTERS = ("malformed", "dropped")

    def __init__(self, params: TargetParams):
        if not isinstance(params, TargetParams):
            raise TypeError(f"Expected TargetParams, not {params!r}")
        self.params = params
        t = params.transaction
        members = _network_members(t, ())
        members["target"] = Out(TargetSignature(t))
        for name in self.COUNTERS:
            members[name] = Out(params.counter_width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = p.transaction
        fmt = t.flit
        spf = t.strobes_per_flit
        eject = self.eject[REQUEST_VC]
        inject = self.inject[RESPONSE_VC]
        target = self.target
        dropped_events = _drain_other_vcs(m, self, REQUEST_VC, RESPONSE_VC, fmt.vcs)

        # Descriptors of the responses owed, in request order.
        # (Bit 0 is "error", bit 1 "poisoned"; never both, so each is tested as one bit.)
        kind_ok, kind_error, kind_poison = 0, 1, 2
        desc_layout = data.StructLayout({"src": fmt.dest_layout, "tag": t.tag_bits,
                                         "write": 1, "length": t.length_bits, "kind": 2})
        m.submodules.owed = owed = fifo.SyncFIFOBuffered(width=desc_layout.size,
                                                         depth=p.depth)
        # Requests taken and not yet answered, as a thermometer code (bit k set while more
        # than k are): the late ``release`` only shifts it, with no adder or compare
        # behind it, and "room for one more" is one bit.
        in_flight = Signal(p.depth)
        reserve = Signal()
        release = Signal()
        room = ~in_flight[-1]
        with m.If(reserve & ~release):
            m.d.sync += in_flight.eq(Cat(1, in_flight[:-1]))
        with m.Elif(release & ~reserve):
            m.d.sync += in_flight.eq(in_flight[1:])
        push = Signal()
        push_kind = Signal(2)
        desc_in = desc_layout(owed.w_data)

        # ---- Parse requests ---------------------------------------------------------------
        flit = eject.payload
        rhead = t.request_head_layout(
            fmt.head_layout(flit.data).payload[:t.request_head_layout.size])
        h_write = Signal()
        h_masked = Signal()
        h_tag = Signal(t.tag_bits)
        h_length = Signal(t.length_bits)
        h_src = Signal(fmt.dest_layout)
        in_idle = Signal()  # the flit in hand is a head: describe it, not the registers
        m.d.comb += [
            owed.w_en.eq(push),
            desc_in.src.eq(Mux(in_idle, rhead.src, h_src)),
            desc_in.tag.eq(Mux(in_idle, rhead.tag, h_tag)),
            desc_in.write.eq(Mux(in_idle, rhead.write, h_write)),
            desc_in.length.eq(Mux(in_idle, rhead.length, h_length)),
            desc_in.kind.eq(push_kind),
        ]
        orphan = Signal()
        dropped_events.append(orphan)
        addr_regs = Signal(max(1, (t.addr_flits - 1) * t.data_width))
        addr_index = Signal(range(max(2, t.addr_flits)))
        last_addr = addr_index == t.addr_flits - 1
        if t.addr_flits > 1:
            full_addr = Cat(addr_regs, flit.data)
        else:
            full_addr = flit.data
        addr = full_addr[:t.addr_width]
        bad_addr = Signal()
        m.d.comb += bad_addr.eq(full_addr[t.addr_width:].any()
                                | (addr[:t.align_bits].any() if t.align_bits else 0))
        beat = Signal(t.length_bits)
        group = Signal(range(spf))
        strobes = Signal(t.data_width)
        need_strobe = Signal()
        poison = Signal()
        # ``beat == h_length`` as a register, kept with ``beat`` (it decides the descriptor
        # push and the FIFO behind it).
        last_beat = Signal()
        full_strobe = (1 << t.strobe_width) - 1

        request = target.request
        wdata = target.wdata
        m.d.comb += [
            request.payload.write.eq(h_write), request.payload.addr.eq(addr),
            request.payload.length.eq(h_length), request.payload.tag.eq(h_tag),
        ]

        # ``eject.ready`` comes from this interface's state and registers only (the parse
        # state, a free descriptor, the tile's ``request.ready``/``wdata.ready``), never
        # from the flit offered: the flit's fields only choose what a taken flit does. A
        # register slice that feeds this interface then has no loop from its output
        # register through the parse and back to its enable (the default package's
        # critical path at seed 3, docs/package.md). A flit whose action needs less (a
        # body with no descriptor to write, an error that needs no ``request.ready``)
        # waits for what the state asks of every flit: a delay, never a loss.
        P_IDLE, P_ADDR, P_DATA, P_PAD, P_DROP = range(5)
        parse_state = Signal(range(5), name="parse_state")
        accept = Signal()
        with m.Switch(parse_state):
            with m.Case(P_IDLE):
                m.d.comb += accept.eq(room)
            with m.Case(P_ADDR):
                m.d.comb += accept.eq(room & (~last_addr | target.request.ready))
            with m.Case(P_DATA):
                m.d.comb += accept.eq(need_strobe | target.wdata.ready)
            with m.Case(P_DROP):
                m.d.comb += accept.eq(1)
        take = Signal()
        m.d.comb += [eject.ready.eq(accept), take.eq(eject.valid & accept)]

        def error_now():
            """Answer the packet in hand with TARGET_ERROR (its descriptor is free)."""
            m.d.comb += [reserve.eq(take), push.eq(take), push_kind.eq(kind_error)]

        with m.If(parse_state == P_IDLE):
            m.d.comb += in_idle.eq(1)
            with m.If(~flit.head):
                m.d.comb += orphan.eq(take)
                with m.If(take & ~flit.tail):
                    m.d.sync += parse_state.eq(P_DROP)
            with m.Else():
                with m.If(flit.tail):
                    error_now()  # ends before its address
                with m.Elif(take):
                    m.d.sync += parse_state.eq(P_ADDR)
                with m.If(take):
                    m.d.sync += [h_write.eq(rhead.write), h_masked.eq(rhead.masked),
                                 h_tag.eq(rhead.tag), h_length.eq(rhead.length),
                                 h_src.eq(rhead.src), addr_index.eq(0)]
        with m.Elif(parse_state == P_ADDR):
            with m.If(~last_addr):
                with m.If(flit.tail):
                    error_now()
                    with m.If(take):
                        m.d.sync += parse_state.eq(P_IDLE)
                with m.Elif(take):
                    m.d.sync += [addr_index.eq(addr_index + 1),
                                 addr_regs.eq(Cat(addr_regs[t.data_width:], flit.data))]
            with m.Elif(bad_addr | (flit.tail == h_write)):
                # Unaligned/too wide, a read with a body, or a write without one.
                error_now()
                with m.If(take):
                    with m.If(flit.tail):
                        m.d.sync += parse_state.eq(P_IDLE)
                    with m.Else():
                        m.d.sync += parse_state.eq(P_DROP)
            with m.Else():
                m.d.comb += [
                    request.valid.eq(eject.valid & room),
                    reserve.eq(take),
                    push.eq(take & ~h_write),
                    push_kind.eq(kind_ok),
                ]
                with m.If(take):
                    m.d.sync += [beat.eq(0), last_beat.eq(h_length == 0), group.eq(0),
                                 poison.eq(0), need_strobe.eq(h_masked)]
                    with m.If(h_write):
                        m.d.sync += parse_state.eq(P_DATA)
                    with m.Else():
                        m.d.sync += parse_state.eq(P_IDLE)
        with m.Elif(parse_state == P_DATA):
            with m.If(need_strobe):
                with m.If(take):
                    m.d.sync += [strobes.eq(flit.data), need_strobe.eq(0)]
                    with m.If(flit.tail):  # ends before the group's data
                        m.d.sync += poison.eq(1)
                        m.d.sync += parse_state.eq(P_PAD)
            with m.Else():
                # A tail before the last beat is not data: its beat goes out with strobe 0,
                # as every missing beat after it (P_PAD).
                early = Signal()
                m.d.comb += [
                    early.eq(flit.tail & ~last_beat),
                    wdata.valid.eq(eject.valid),
                    wdata.payload.data.eq(flit.data),
                    wdata.payload.strobe.eq(Mux(early, 0, Mux(h_masked, strobes.word_select(
                        group, t.strobe_width), full_strobe))),
                    wdata.payload.last.eq(last_beat),
                ]
                with m.If(take):
                    m.d.sync += [beat.eq(beat + 1), last_beat.eq(beat + 1 == h_length),
                                 group.eq(group + 1)]
                    with m.If(group == spf - 1):
                        m.d.sync += [group.eq(0), need_strobe.eq(h_masked)]
                    with m.If(early):
                        m.d.sync += [poison.eq(1), parse_state.eq(P_PAD)]
                    with m.If(last_beat):
                        m.d.comb += [push.eq(1), push_kind.eq(
                            Mux(poison | ~flit.tail, kind_poison, kind_ok))]
                        with m.If(flit.tail):
                            m.d.sync += parse_state.eq(P_IDLE)
                        with m.Else():
                            m.d.sync += parse_state.eq(P_DROP)  # runs long
        with m.Elif(parse_state == P_PAD):
            m.d.comb += [wdata.valid.eq(1), wdata.payload.strobe.eq(0),
                         wdata.payload.last.eq(last_beat)]
            with m.If(wdata.ready):
                m.d.sync += [beat.eq(beat + 1), last_beat.eq(beat + 1 == h_length)]
                with m.If(last_beat):
                    m.d.comb += [push.eq(1), push_kind.eq(kind_poison)]
                    m.d.sync += parse_state.eq(P_IDLE)
        with m.Elif(parse_state == P_DROP):
            with m.If(take & flit.tail):
                m.d.sync += parse_state.eq(P_IDLE)

        # ---- Packetise responses ----------------------------------------------------------
        desc = desc_layout(owed.r_data)
        response = target.response
        head = Signal(fmt.head_layout)
        rsp_head = Signal(t.response_head_layout)
        is_error = desc.kind[0]
        status = Mux(desc.kind.any(), Status.TARGET_ERROR, response.payload.status)
        m.d.comb += [
            head.dest.eq(desc.src), head.payload.eq(rsp_head),
            rsp_head.write.eq(desc.write), rsp_head.status.eq(status),
            rsp_head.tag.eq(desc.tag), rsp_head.length.eq(desc.length),
            inject.payload.vc.eq(RESPONSE_VC),
        ]
        pop = Signal()
        m.d.comb += [owed.r_en.eq(pop), release.eq(pop)]
        open_packet = _close_after_reset(m, inject)
        K_HEAD, K_DATA, K_DRAIN = range(3)
        respond_state = Signal(range(3), name="respond_state")
        with m.If(respond_state == K_HEAD):
            ok_read = ~desc.write & (status == Status.OKAY)
            with m.If(open_packet):
                # Reset in the middle of a packet: end it with a lone tail flit.
                m.d.comb += [inject.valid.eq(1), inject.payload.tail.eq(1)]
            with m.Else():
                m.d.comb += [
                    inject.payload.head.eq(1), inject.payload.data.eq(head),
                    inject.payload.tail.eq(~ok_read),
                    inject.valid.eq(owed.r_rdy & (is_error | response.valid)),
                ]
                with m.If(inject.valid & inject.ready):
                    with m.If(is_error):
                        m.d.comb += pop.eq(1)
                    with m.Elif(desc.write):
                        m.d.comb += [response.ready.eq(1), pop.eq(1)]
                    with m.Elif(ok_read):
                        m.d.sync += respond_state.eq(K_DATA)
                    with m.Else():
                        m.d.sync += respond_state.eq(K_DRAIN)
        with m.Elif(respond_state == K_DATA):
            m.d.comb += [
                inject.valid.eq(response.valid), response.ready.eq(inject.ready),
                inject.payload.data.eq(response.payload.data),
                inject.payload.tail.eq(response.payload.last),
            ]
            with m.If(response.valid & inject.ready & response.payload.last):
                m.d.comb += pop.eq(1)
                m.d.sync += respond_state.eq(K_HEAD)
        with m.Elif(respond_state == K_DRAIN):
            m.d.comb += response.ready.eq(1)
            with m.If(response.valid & response.payload.last):
                m.d.comb += pop.eq(1)
                m.d.sync += respond_state.eq(K_HEAD)

        _count(m, self.malformed, [Value.cast(push & (push_kind != kind_ok))])
        _count(m, self.dropped, [Value.cast(e) for e in dropped_events])
        return m
