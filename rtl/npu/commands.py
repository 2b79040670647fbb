"""NPU command queue: a small instruction set in front of the :class:`GemmEngine`.

Commands (64-bit words, :data:`command_layout`) arrive on a ``lib.stream``, wait in a
FIFO, are decoded and range-checked against the engine's scratchpads and dispatched to the
engine's compute and requantise command streams. One status record per command
(:data:`status_layout`) leaves on ``status``, in command order, when the command has
completed: a compute when its last accumulator row is written, a requantise when its last
result has left ``o``, anything else at once. An illegal or out-of-range command is not
executed; it only gets its error status, and the queue goes on with the next command.
LOAD and STORE go to the :class:`~chipknit.rtl.npu.dma.Dma`, which moves scratchpad rows and
results over the network's initiator port ``bus``; they complete when their last response
has arrived, with DMA_ERROR if the network answered any of it with an error.
FENCE holds every later command until all earlier commands have completed and their status
records have left; a *partial* FENCE (flag bit 0) only until at most ``computes`` earlier
COMPUTEs and at most ``transfers`` earlier LOAD/STOREs are still running and every earlier
REQUANTISE has completed, which lets a program wait for exactly the commands it depends on
(COMPUTEs complete in order, and so do LOAD/STOREs). See ``docs/npu.md`` (*Command
queue*); ``tb/models/npu_isa.py`` encodes the same bits.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..noc.transaction import TransactionParams
from ..register_slice import RegisterSlice
from .dma import UNEXPECTED_BITS, Dma, DmaParams, dma_command_layout
from .engine import EngineParams, GemmEngine, requant_command_layout

__all__ = ["Opcode", "StatusCode", "command_layout", "status_layout", "fence_layout",
           "QueueParams", "CommandQueue"]


class Opcode(enum.Enum, shape=4):
    CONFIGURE = 1
    COMPUTE = 2
    REQUANTISE = 3
    FENCE = 4
    LOAD = 5
    STORE = 6
    STRIDE = 7


class StatusCode(enum.Enum, shape=4):
    OK = 0
    ILLEGAL_OPCODE = 1
    OUT_OF_RANGE = 2
    DMA_ERROR = 3


FIELD = unsigned(12)       # addresses and row counts: scratchpads up to 4096 rows

configure_layout = data.StructLayout({
    "a_zero_point": signed(8), "w_zero_point": signed(8), "out_zero_point": signed(8),
    "act_min": signed(8), "act_max": signed(8),
})
compute_layout = data.StructLayout({
    "m": FIELD, "k_blocks": unsigned(8), "a_base": FIELD, "w_base": FIELD, "acc_base": FIELD,
})
requantise_layout = data.StructLayout({"m": FIELD, "acc_base": FIELD, "qp_base": FIELD})
load_layout = data.StructLayout({"spad_base": FIELD, "rows": FIELD, "remote": unsigned(32)})
store_layout = data.StructLayout({"m": FIELD, "acc_base": FIELD, "qp_base": FIELD,
                                  "remote": unsigned(20)})
stride_layout = data.StructLayout({"line_rows": FIELD, "stride": unsigned(32)})
#: A partial FENCE's limits: COMPUTEs and LOAD/STOREs that may still run past it.
fence_layout = data.StructLayout({"computes": unsigned(8), "transfers": unsigned(8)})

#: One command: opcode, flags (bit 0: accumulate for COMPUTE, bypass for REQUANTISE and
#: STORE, partial for FENCE; bits 1:0 the scratchpad of a LOAD) and the arguments of its
#: opcode.
command_layout = data.StructLayout({
    "opcode": unsigned(4),      # not the enum: any value can arrive, and is checked
    "flags": unsigned(4),
    "args": data.UnionLayout({"configure": configure_layout, "compute": compute_layout,
                              "requantise": requantise_layout, "load": load_layout,
                              "store": store_layout, "stride": stride_layout,
                              "fence": fence_layout,
                              "raw": unsigned(56)}),
})

#: One status record per command, in command order.
status_layout = data.StructLayout({
    "code": StatusCode,
    "opcode": unsigned(4),
    "seq": unsigned(8),
})


class _Kind(enum.Enum, shape=2):
    NOW = 0         # completes at once (configure, fence, no-op, error)
    COMPUTE = 1     # completes with the engine's next ``done``
    REQUANT = 2     # completes when ``o`` has carried its last beat
    DMA = 3         # completes with the DMA's next ``done`` (LOAD, STORE)


#: Width of one half of the COMPUTE range check's ``k_blocks·m`` (4 bits × 12 bits).
_PARTIAL_BITS = 4 + FIELD.width


def _times_nibble(nibble, value):
    """``nibble * value`` for a 4-bit ``nibble``, as a two-level adder tree of ``value``
    shifted and masked by each bit (LUTs: an inferred ``*`` becomes a DSP on ECP5)."""
    terms = [Mux(nibble[bit], value << bit, 0) for bit in range(len(nibble))]
    return (terms[0] + terms[1]) + (terms[2] + terms[3])


def _a_out_of_range(m, partial, a_base, a_depth):
    """``a_base + k_blocks·m > a_depth`` from the product's halves, with one carry chain:
    ``low + (high << 4) + a_base + (2**W − a_depth − 1)`` reaches ``2**W`` exactly when the
    rows run past the end. The four terms are reduced to two by two carry-save levels
    (XOR and majority, in LUTs), and the carry out of their sum is the answer."""
    # 2**width exceeds any a_base + k_blocks·m (12-bit base, 8 × 12-bit product).
    width = max(FIELD.width, 8 + FIELD.width) + 1
    bias = (1 << width) - a_depth - 1

    def csa(a, b, c):
        return a ^ b ^ c, ((a & b) | (a & c) | (b & c)) << 1

    terms = [Signal(width + 1, name=name) for name in ("a_low", "a_high", "a_base_t")]
    m.d.comb += [terms[0].eq(partial.low), terms[1].eq(partial.high << 4),
                 terms[2].eq(a_base)]
    sum1, carry1 = csa(*terms)
    sum2, carry2 = csa(sum1[:width + 1], carry1[:width + 1], Const(bias, width + 1))
    total = Signal(width + 2, name="a_total")
    m.d.comb += total.eq(sum2[:width + 1] + carry2[:width + 1])
    return total[width]


def _exceeds(m, terms, limit, name):
    """``sum(terms) > limit`` for unsigned ``terms`` (``(value, largest value)`` pairs),
    as ``_a_out_of_range`` does it: the terms and ``2**W − limit − 1`` are reduced to two by
    carry-save levels (LUTs) and the carry out of one chain is the answer."""
    top = sum(largest for _, largest in terms)
    if top <= limit:
        return Const(0, 1)
    if limit < 0:
        return Const(1, 1)
    width = top.bit_length()
    values = []
    for index, (value, _) in enumerate(terms):
        term = Signal(width + 1, name=f"{name}_t{index}")
        m.d.comb += term.eq(value)
        values.append(term)
    values.append(Const((1 << width) - limit - 1, width + 1))
    while len(values) > 2:
        a, b, c = values[:3]
        values = values[3:] + [(a ^ b ^ c)[:width + 1],
                               (((a & b) | (a & c) | (b & c)) << 1)[:width + 1]]
    total = Signal(width + 2, name=f"{name}_total")
    m.d.comb += total.eq(values[0] + values[1])
    return total[width]


@dataclass(frozen=True)
class QueueParams:
    """Parameters of a :class:`CommandQueue`.

    Parameters
    ----------
    engine : EngineParams
        The engine it drives. Scratchpads up to 4096 rows (the ISA's 12-bit fields).
    depth : int
        Command FIFO entries.
    in_flight : int
        Commands dispatched but whose status has not left yet (the completion FIFO).
    transaction : TransactionParams
        The network's transactions, for the DMA's initiator port.
    outstanding : int
        DMA requests in flight.
    dma_queue : int
        LOADs dispatched and waiting for the DMA (a FIFO), so that the commands behind a
        LOAD go on while the DMA is busy.
    """
    engine: EngineParams = field(default_factory=EngineParams)
    depth: int = 8
    in_flight: int = 8
    transaction: TransactionParams = field(default_factory=TransactionParams)
    outstanding: int = 8
    dma_queue: int = 4

    def __post_init__(self):
        if not isinstance(self.engine, EngineParams):
            raise TypeError(f"Expected EngineParams, not {self.engine!r}")
        for name in ("depth", "in_flight", "dma_queue"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {value!r}")
        e = self.engine
        for name in ("a_depth", "w_depth", "acc_depth", "qp_depth"):
            if getattr(e, name) >= 1 << FIELD.width:
                raise ValueError(f"{name} must be below {1 << FIELD.width} for the ISA's "
                                 f"{FIELD.width}-bit fields, not {getattr(e, name)}")
        DmaParams(self.engine, self.transaction, self.outstanding)   # validates them

    @property
    def dma(self) -> DmaParams:
        return DmaParams(self.engine, self.transaction, self.outstanding)


class CommandQueue(wiring.Component):
    """Command FIFO, decode, range checks, dispatch, FENCE and in-order status.

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout))
    status : Out(stream.Signature(status_layout))
    o : Out(stream.Signature(ArrayLayout(signed(32), requant_lanes)))
        The engine's results (REQUANTISE), passed through.
    a_wr, w_wr, qp_wr
        The engine's scratchpad write ports, for the host (a DMA write the same cycle wins).
    bus : Out(InitiatorSignature(transaction))
        The DMA's port to the network.
    busy : Out(1)
        A command is queued, being dispatched, or has not had its status taken.
    dma_unexpected : Out(UNEXPECTED_BITS)
        The DMA's count of unexpected response beats (dropped), saturating.
    """

    def __init__(self, params: QueueParams = QueueParams()):
        if not isinstance(params, QueueParams):
            raise TypeError(f"Expected QueueParams, not {params!r}")
        self.params = params
        self.engine = GemmEngine(params.engine)
        self.dma = Dma(params.dma)
        members = {name: self.engine.signature.members[name]
                   for name in ("a_wr", "w_wr", "qp_wr", "o")}
        members["bus"] = self.dma.signature.members["bus"]
        super().__init__({
            "cmd": In(stream.Signature(command_layout)),
            "status": Out(stream.Signature(status_layout)),
            **members,
            "busy": Out(1),
            "dma_unexpected": Out(UNEXPECTED_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        p, e = self.params, self.params.engine
        groups = e.groups
        m.submodules.engine = engine = self.engine
        m.submodules.dma = dma = self.dma
        wiring.connect(m, dma.bus, wiring.flipped(self.bus))
        m.d.comb += self.dma_unexpected.eq(dma.unexpected)
        for port in ("a_wr", "w_wr", "qp_wr"):
            ours, theirs, dmas = getattr(self, port), getattr(engine, port), getattr(dma, port)
            with m.If(dmas.en):
                m.d.comb += [theirs.addr.eq(dmas.addr), theirs.data.eq(dmas.data),
                             theirs.en.eq(1)]
            with m.Else():
                m.d.comb += [theirs.addr.eq(ours.addr), theirs.data.eq(ours.data),
                             theirs.en.eq(ours.en)]
        # The requantiser's results go to ``o``, or to the DMA while a STORE takes them.
        # (``store_pending``: a STORE dispatched last cycle, on its way to the DMA.)
        # The DMA's way goes through a register slice: the DMA's row registers sit beside
        # the network interface, the requantiser beside the accumulators, and the handshake
        # between them (the DMA's ready -> the requantiser's pipeline and beat count) was
        # the package's critical path at one seed (two long routes, 7 ns). A STORE ends
        # only when the DMA has taken all its beats, so the slice is empty after it.
        store_pending = Signal()
        m.submodules.to_dma = to_dma = RegisterSlice(engine.o.payload.shape())
        wiring.connect(m, to_dma.o, dma.rq)
        m.d.comb += [to_dma.i.payload.eq(engine.o.payload), self.o.payload.eq(engine.o.payload)]
        with m.If(dma.storing | store_pending):
            m.d.comb += [to_dma.i.valid.eq(engine.o.valid), engine.o.ready.eq(to_dma.i.ready)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(engine.o.valid), engine.o.ready.eq(self.o.ready)]

        # --- Command FIFO. --------------------------------------------------------------
        # Every range check but the COMPUTE's ``a_base + k_blocks·m`` is made as the command
        # enters the FIFO (from the staging FIFO's output register) and its outcome (status
        # code, no-op) travels with the command. That check needs ``k_blocks·m``: its two
        # halves are computed at the input (shift-add in LUTs, two adder levels each: no
        # multiplier, no DSP in the command path), summed and compared at the output.
        partial_layout = data.StructLayout({"low": unsigned(_PARTIAL_BITS),
                                            "high": unsigned(_PARTIAL_BITS)})
        entry = data.StructLayout({"command": command_layout, "partial": partial_layout,
                                   "code": StatusCode, "noop": 1})
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=entry.size, depth=p.depth)
        incoming = Signal(entry)
        inc = self.cmd.payload
        k_in, m_in = inc.args.compute.k_blocks, inc.args.compute.m
        early_code, early_noop = self._checks(m, inc)
        m.d.comb += [incoming.command.eq(inc),
                     incoming.partial.low.eq(_times_nibble(k_in[:4], m_in)),
                     incoming.partial.high.eq(_times_nibble(k_in[4:], m_in)),
                     incoming.code.eq(early_code), incoming.noop.eq(early_noop),
                     queue.w_data.eq(incoming), queue.w_en.eq(self.cmd.valid),
                     self.cmd.ready.eq(queue.w_rdy)]
        fifo_entry = data.View(entry, queue.r_data)
        fifo_head = fifo_entry.command

        # At the output, the one check left, registered on its own beside the command and
        # folded into its status code after the decode register.
        c = fifo_head.args.compute
        a_bad_next = Signal()
        m.d.comb += a_bad_next.eq((fifo_head.opcode == Opcode.COMPUTE) & ~fifo_entry.noop
                                  & _a_out_of_range(m, fifo_entry.partial, c.a_base,
                                                    e.a_depth))

        # --- Decode stage: the command and the outcome of its checks, registered. --------
        head = Signal(command_layout)
        head_valid = Signal()
        head_code = Signal(StatusCode)
        a_bad = Signal()
        noop = Signal()
        # The decode stage moves on whenever the dispatch buffer (below) has a free slot: a
        # register, so the FIFO read and the decode registers do not hang off ``retire``.
        second_valid = Signal()
        with m.If(~head_valid | ~second_valid):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [head_valid.eq(queue.r_rdy), head.eq(fifo_head),
                         head_code.eq(fifo_entry.code), noop.eq(fifo_entry.noop),
                         a_bad.eq(a_bad_next)]
        code = Signal(StatusCode)
        m.d.comb += code.eq(Mux(a_bad, StatusCode.OUT_OF_RANGE, head_code))

        kind = Signal(_Kind)
        with m.If((code == StatusCode.OK) & ~noop):
            with m.If(head.opcode == Opcode.COMPUTE):
                m.d.comb += kind.eq(_Kind.COMPUTE)
            with m.If(head.opcode == Opcode.REQUANTISE):
                m.d.comb += kind.eq(_Kind.REQUANT)
            with m.If((head.opcode == Opcode.LOAD) | (head.opcode == Opcode.STORE)):
                m.d.comb += kind.eq(_Kind.DMA)

        # --- Dispatch buffer: two slots between decode and dispatch, dispatched in the order
        # they are written. ``cur`` is the command in the slot at ``r_slot``; with
        # ``second_valid`` the other slot holds the one after it. The free slot takes
        # whatever the decode stage holds (``cur_valid`` or ``second_valid`` says whether it
        # was a command), so the slots' wide registers are enabled by registers only, and
        # dispatch (``retire``, the latest signal here) moves ``r_slot`` and loads the few
        # registers that say what ``cur`` does. (With ``cur`` a register loaded on
        # ``~cur_valid | retire`` from a skid entry or the decode stage, ``retire`` was the
        # enable of some 90 registers, ``cur`` and its sequence number: the package's
        # critical path at every seed.) A command is numbered as it enters a slot: in
        # order, as it is dispatched. One command per cycle passes when ``cur`` retires
        # every cycle, and a command is ``cur`` the cycle after the decode stage when
        # ``cur`` is free.
        slot_layout = data.StructLayout({"command": command_layout, "code": StatusCode,
                                         "kind": _Kind, "seq": unsigned(8)})
        slots = [Signal(slot_layout, name=f"slot{index}") for index in range(2)]
        r_slot = Signal()
        cur_valid = Signal()
        seq = Signal(8)
        retire = Signal()
        # The free slot: ``cur``'s if it is empty, else the other one.
        w_slot = r_slot ^ cur_valid
        for index, slot in enumerate(slots):
            with m.If(~second_valid & (w_slot == index)):
                m.d.sync += [slot.command.eq(head), slot.code.eq(code), slot.kind.eq(kind),
                             slot.seq.eq(seq)]
        with m.If(head_valid & ~second_valid):
            m.d.sync += seq.eq(seq + 1)
        with m.If(retire):
            m.d.sync += r_slot.eq(~r_slot)
        # One assignment of each whole slot (see ``done_fifo.w_data`` below on Icarus).
        current, second = Signal(slot_layout), Signal(slot_layout)
        m.d.comb += [current.eq(Mux(r_slot, slots[1], slots[0])),
                     second.eq(Mux(r_slot, slots[0], slots[1]))]
        cur, cur_code, cur_kind, cur_seq = (current.command, current.code, current.kind,
                                            current.seq)

        # What ``cur`` does, decoded into registers of their own as it changes (from the
        # other slot, or the decode stage when that is empty), so that dispatch (``retire``)
        # is one sum of products of registers and ready signals, no read of a slot and no
        # chain of kind compares, and the configuration registers' enables are short. Its
        # kind one-hot; a FENCE; a legal CONFIGURE; a STRIDE.
        sel_layout = data.StructLayout({"compute": 1, "requant": 1, "load": 1, "store": 1,
                                        "now": 1})
        cur_sel = Signal(sel_layout)
        cur_fence = Signal()
        cur_configure = Signal()
        cur_stride = Signal()

        def cur_does(command, code, kind):
            dma_kind = kind == _Kind.DMA
            return [cur_sel.eq(Cat(kind == _Kind.COMPUTE, kind == _Kind.REQUANT,
                                   dma_kind & (command.opcode == Opcode.LOAD),
                                   dma_kind & (command.opcode != Opcode.LOAD),
                                   kind == _Kind.NOW)),
                    cur_fence.eq(command.opcode == Opcode.FENCE),
                    cur_configure.eq((command.opcode == Opcode.CONFIGURE)
                                     & (code == StatusCode.OK)),
                    cur_stride.eq(command.opcode == Opcode.STRIDE)]
        with m.If(~cur_valid | retire):
            m.d.sync += [cur_valid.eq(head_valid | second_valid), second_valid.eq(0)]
            with m.If(second_valid):
                m.d.sync += cur_does(second.command, second.code, second.kind)
            with m.Else():
                m.d.sync += cur_does(head, code, kind)
        with m.Elif(~second_valid):
            m.d.sync += second_valid.eq(head_valid)

        # --- Completion FIFO: what is dispatched, in order, until its status leaves. -------
        beats_in_flight = p.in_flight * e.acc_depth * groups
        beat_count = unsigned(beats_in_flight.bit_length() + 1)
        entry_layout = data.StructLayout({
            "kind": _Kind, "code": StatusCode, "opcode": unsigned(4), "seq": unsigned(8),
            "target": beat_count,
        })
        # Buffered: the head entry is a register, so the status path (is the oldest command
        # complete: for a REQUANTISE ``beats_out`` against its target) starts from it, not
        # from the memory's read. (An entry shows one cycle later; a depth of one would take
        # a write only every other cycle, so at least two, with ``room`` keeping the limit.)
        m.submodules.done_fifo = done_fifo = fifo.SyncFIFOBuffered(
            width=entry_layout.size, depth=max(p.in_flight, 2))
        # ``room`` for an entry is a register, made a cycle ahead from this cycle's writes
        # and reads, so that dispatch does not start from the FIFO's level (the level ->
        # ``room`` -> ``retire`` was on the package's critical path). The FIFO takes an entry
        # while its memory (every entry but the one in its output register) is not full:
        # ``stored`` counts those entries as the FIFO does (one moves to the output register
        # when that is empty or read). With one command in flight, only into an empty FIFO.
        room = Signal(init=1)
        if p.in_flight > 1:
            stored = Signal(range(p.in_flight))
            moves = Signal()
            stored_next = Signal.like(stored)
            m.d.comb += [moves.eq((stored != 0) & (~done_fifo.r_rdy | done_fifo.r_en)),
                         stored_next.eq(stored + retire - moves)]
            m.d.sync += [stored.eq(stored_next), room.eq(stored_next != p.in_flight - 1)]
        else:
            m.d.sync += room.eq(~retire & (room | done_fifo.r_en))
        # One assignment of the whole entry: Icarus 11 loops at time 0 on a signal that
        # several always_comb blocks each drive a part of.
        target = Signal(beat_count)
        m.d.comb += done_fifo.w_data.eq(Cat(cur_kind, cur_code, cur.opcode, cur_seq, target))

        # Configuration registers, for the commands after a CONFIGURE.
        config = Signal(configure_layout, init={"act_min": -128, "act_max": 127})
        shape_2d = Signal(stride_layout)
        beats_issued = Signal(beat_count)
        beats_out = Signal(beat_count)
        # Dispatched and not yet completed, for partial FENCEs (the engine's COMPUTEs and
        # the DMA's commands each complete in order).
        computes_running = Signal(range(p.in_flight + 2))
        transfers_running = Signal(range(p.in_flight + 2))
        requant_beats = Signal(beat_count)
        m.d.comb += requant_beats.eq(cur.args.requantise.m * groups)

        # A FENCE's condition, registered: it only goes from false to true while the FENCE
        # waits in ``cur`` (nothing is dispatched, so the counters and the completion FIFO
        # only fall, and ``beats_out`` only catches up), so last cycle's value is safe; a
        # FENCE retires one cycle after its condition holds.
        fence_go = Signal()
        store_go = Signal()         # the same for a STORE
        # LOADs wait here for the DMA, in order (see the LOAD dispatch below).
        dma_layout = dma_command_layout(p.dma)
        m.submodules.dma_cmds = dma_cmds = fifo.SyncFIFOBuffered(width=dma_layout.size,
                                                                 depth=p.dma_queue)
        go = Signal()               # cur can be dispatched (there is room for its entry)
        # A REQUANTISE is dispatched now: not while a STORE takes the results, and only into
        # an empty requantiser stage (below).
        requant_leaves = Signal()
        # The requantiser's command (a REQUANTISE's, or a STORE's) is registered in the
        # queue (``rq_stage``) and offered to the engine from there, so the engine's command
        # register, placed beside the DMA that takes its results, waits on no dispatch
        # logic (with the package's blocks kept, the done FIFO's level -> dispatch -> the
        # engine's ``rq_cmd`` was the critical path at one seed). A command is only
        # dispatched into an empty stage; ``store_go`` also waits for it to be empty.
        rq_staged = Signal()
        rq_stage = Signal(requant_command_layout(e))
        rq_payload = Signal(requant_command_layout(e))
        rq_dispatch = Signal()      # a requantiser command enters the stage now
        store_leaves = Signal()     # the STORE in ``cur`` is dispatched now
        fence = cur.args.fence
        partial_done = ((computes_running <= fence.computes)
                        & (transfers_running <= fence.transfers)
                        & (beats_issued == beats_out))
        m.d.comb += [
            go.eq(cur_valid & room),
            requant_leaves.eq(go & cur_sel.requant & ~dma.storing & ~store_pending
                              & ~rq_staged),
            target.eq(beats_issued + requant_beats),
            # COMPUTE: to the engine.
            engine.cmd.valid.eq(go & cur_sel.compute),
            # REQUANTISE, and a STORE once ``store_go`` holds: to the requantiser's stage.
            rq_dispatch.eq(requant_leaves | store_leaves),
            # LOAD: into the DMA's command FIFO, so that the COMPUTEs behind a LOAD go on
            # while the DMA is still busy with the transfers before it.
            dma_cmds.w_en.eq(go & cur_sel.load),
            retire.eq(requant_leaves | store_leaves
                      | (go & ((cur_sel.compute & engine.cmd.ready)
                               | (cur_sel.load & dma_cmds.w_rdy)
                               | (cur_sel.now & (~cur_fence | fence_go))))),
        ]
        with m.If(requant_leaves):
            m.d.sync += beats_issued.eq(beats_issued + requant_beats)
        with m.If(go & cur_sel.store):
            # STORE: the requantiser and the DMA start together, once the results of
            # earlier REQUANTISEs have left ``o`` and the DMA has taken every earlier
            # LOAD (straight to the DMA, past the empty FIFO). The condition is
            # registered, as a FENCE's: while the STORE waits in ``cur`` nothing is
            # dispatched, so it only turns from false to true and last cycle's value is
            # safe; a STORE leaves one cycle after its condition holds.
            m.d.sync += store_go.eq(~store_go & ~rq_staged & engine.rq_cmd.ready
                                    & dma.cmd.ready & ~engine.rq_busy
                                    & (dma_cmds.level == 0))
        # The STORE's DMA command is registered (``store_cmd``) and offered the cycle after
        # its dispatch, so the DMA's command register waits on no dispatch logic (with the
        # package's blocks kept, the queue's done FIFO level -> dispatch -> the DMA beside
        # the interface was the critical path, 8.4 ns of routing). The DMA is idle then
        # (``store_go`` saw it idle with the LOAD FIFO empty, and nothing is dispatched
        # while the STORE waits), so it takes the command at once; until then the
        # requantiser's results go its way and no REQUANTISE is dispatched, as while it runs.
        store_cmd = Signal(dma_layout)
        m.d.comb += store_leaves.eq(go & cur_sel.store & store_go)
        with m.If(rq_dispatch):
            m.d.sync += [rq_staged.eq(1), rq_stage.eq(rq_payload)]
        with m.Elif(engine.rq_cmd.ready):
            m.d.sync += rq_staged.eq(0)
        m.d.comb += [engine.rq_cmd.valid.eq(rq_staged), engine.rq_cmd.payload.eq(rq_stage)]
        with m.If(store_leaves):
            m.d.sync += store_pending.eq(1)
        with m.Elif(dma.cmd.ready):
            m.d.sync += store_pending.eq(0)
        with m.If(go & cur_sel.now):
            # FENCE: everything earlier has completed and its status has left; a
            # partial FENCE: few enough COMPUTEs and LOAD/STOREs still run, no
            # REQUANTISE beats are still due.
            m.d.sync += fence_go.eq(cur_fence & ~fence_go
                                    & Mux(cur.flags[0], partial_done, done_fifo.level == 0))
            with m.If(cur_configure):
                m.d.sync += config.eq(cur.args.configure)
            with m.If(cur_stride):      # not a FENCE: it retires now
                m.d.sync += shape_2d.eq(cur.args.stride)
        m.d.comb += done_fifo.w_en.eq(retire)

        cc, rc, sc, lc = (cur.args.compute, cur.args.requantise, cur.args.store,
                          cur.args.load)
        is_store = cur.opcode == Opcode.STORE
        dma_cmd = Signal(dma_layout)
        m.d.comb += [
            dma_cmd.store.eq(is_store), dma_cmd.target.eq(cur.flags[:2]),
            dma_cmd.bypass.eq(cur.flags[0]),
            dma_cmd.spad_base.eq(lc.spad_base),
            dma_cmd.rows.eq(Mux(is_store, sc.m, lc.rows)),
            dma_cmd.remote.eq(Mux(is_store, sc.remote, lc.remote)),
            dma_cmd.line_rows.eq(shape_2d.line_rows),
            dma_cmd.stride.eq(shape_2d.stride),
            dma_cmds.w_data.eq(dma_cmd),
        ]
        # The DMA takes the FIFO's LOADs; a STORE (only dispatched while the FIFO is empty)
        # goes to it from ``store_cmd``.
        with m.If(store_leaves):
            m.d.sync += store_cmd.eq(dma_cmd)
        with m.If(store_pending):
            m.d.comb += [dma.cmd.valid.eq(1), dma.cmd.payload.eq(store_cmd)]
        with m.Elif(dma_cmds.r_rdy):
            m.d.comb += [dma.cmd.valid.eq(1), dma.cmd.payload.eq(dma_cmds.r_data),
                         dma_cmds.r_en.eq(dma.cmd.ready)]
        m.d.comb += [
            engine.cmd.payload.m.eq(cc.m), engine.cmd.payload.k_blocks.eq(cc.k_blocks),
            engine.cmd.payload.a_base.eq(cc.a_base), engine.cmd.payload.w_base.eq(cc.w_base),
            engine.cmd.payload.acc_base.eq(cc.acc_base),
            engine.cmd.payload.accumulate.eq(cur.flags[0]),
            engine.cmd.payload.a_zero_point.eq(config.a_zero_point),
            engine.cmd.payload.w_zero_point.eq(config.w_zero_point),
            rq_payload.m.eq(Mux(is_store, sc.m, rc.m)),
            rq_payload.acc_base.eq(Mux(is_store, sc.acc_base, rc.acc_base)),
            rq_payload.qp_base.eq(Mux(is_store, sc.qp_base, rc.qp_base)),
            rq_payload.out_zero_point.eq(config.out_zero_point),
            rq_payload.act_min.eq(config.act_min),
            rq_payload.act_max.eq(config.act_max),
            rq_payload.bypass.eq(cur.flags[0]),
        ]

        # --- Completion and status. --------------------------------------------------------
        oldest = data.View(entry_layout, done_fifo.r_data)
        # The DMA's outcomes (error bit), in order, until their command's status leaves.
        m.submodules.dma_results = dma_results = fifo.SyncFIFO(width=1, depth=p.in_flight)
        m.d.comb += [dma_results.w_en.eq(dma.done), dma_results.w_data.eq(dma.error)]
        dones = Signal(range(p.in_flight + 2))     # engine ``done``s not yet retired
        complete = Signal()
        behind = Signal(beat_count)
        m.d.comb += behind.eq(beats_out - oldest.target)
        with m.If(oldest.kind == _Kind.COMPUTE):
            m.d.comb += complete.eq(dones != 0)
        with m.Elif(oldest.kind == _Kind.DMA):
            m.d.comb += complete.eq(dma_results.r_rdy)
        with m.Elif(oldest.kind == _Kind.REQUANT):
            # beats_out has reached target (modulo: fewer than half the counter's range is
            # ever outstanding).
            m.d.comb += complete.eq(~behind[-1])
        with m.Else():
            m.d.comb += complete.eq(1)
        m.d.comb += [
            self.status.valid.eq(done_fifo.r_rdy & complete),
            self.status.payload.code.eq(Mux((oldest.kind == _Kind.DMA) & dma_results.r_data,
                                            StatusCode.DMA_ERROR, oldest.code)),
            self.status.payload.opcode.eq(oldest.opcode),
            self.status.payload.seq.eq(oldest.seq),
            done_fifo.r_en.eq(self.status.valid & self.status.ready),
        ]
        retire_compute = Signal()
        m.d.comb += [retire_compute.eq(done_fifo.r_en & (oldest.kind == _Kind.COMPUTE)),
                     dma_results.r_en.eq(done_fifo.r_en & (oldest.kind == _Kind.DMA))]
        m.d.sync += [dones.eq(dones + engine.done - retire_compute),
                     beats_out.eq(beats_out + (self.o.valid & self.o.ready))]
        # Both next values of each count are made from registers, and the dispatch only
        # chooses between them (it is the latest signal here): its handshakes, not
        # ``retire & cur_sel``, which is the same (``cur_sel`` is one-hot) but one sum of
        # products deeper.
        transfer_leaves = (dma_cmds.w_en & dma_cmds.w_rdy) | store_leaves
        for running, leaves, done in (
                (computes_running, engine.cmd.valid & engine.cmd.ready, engine.done),
                (transfers_running, transfer_leaves, dma.done)):
            stays, grows = Signal.like(running), Signal.like(running)
            m.d.comb += [stays.eq(running - done), grows.eq(running + 1 - done)]
            m.d.sync += running.eq(Mux(leaves, grows, stays))
        # (The FIFO's level, not just r_rdy: a command written is not readable at once.)
        m.d.comb += self.busy.eq((queue.level != 0) | head_valid | cur_valid | second_valid
                                 | (done_fifo.level != 0))
        return m

    def _checks(self, m, command):
        """The status code (but for the COMPUTE's ``a_base + k_blocks·m`` check) and the
        no-op bit of ``command``: per opcode, each range check a sum and a compare in one
        carry chain (``_exceeds``), then a choice by opcode."""
        e = self.params.engine
        rows, groups, top = e.array.rows, e.groups, (1 << FIELD.width) - 1
        code = Signal(StatusCode, name="entry_code")
        noop = Signal(name="entry_noop")
        c, r, cf = command.args.compute, command.args.requantise, command.args.configure
        ld, st = command.args.load, command.args.store
        w_terms = [(c.k_blocks << bit, 255 << bit)
                   for bit in range(rows.bit_length()) if rows >> bit & 1]
        compute_bad = (_exceeds(m, [(c.acc_base, top), (c.m, top)], e.acc_depth, "c_acc")
                       | _exceeds(m, [(c.w_base, top), *w_terms], e.w_depth, "c_w"))
        # (REQUANTISE and STORE have m, acc_base and qp_base at the same bits.)
        rq_bad = (_exceeds(m, [(r.acc_base, top), (r.m, top)], e.acc_depth, "r_acc")
                  | _exceeds(m, [(r.qp_base, top)], e.qp_depth - groups, "r_qp"))
        target = command.flags[:2]
        spad_end = [(ld.spad_base, top), (ld.rows, top)]
        load_bad = ((target == 3) | self._remote_out_of_range(ld.remote)
                    | Mux(target == 0, _exceeds(m, spad_end, e.a_depth, "l_a"),
                          Mux(target == 1, _exceeds(m, spad_end, e.w_depth, "l_w"),
                              _exceeds(m, spad_end, e.qp_depth, "l_qp"))))
        store_bad = rq_bad | self._remote_out_of_range(st.remote)
        with m.If(command.opcode == Opcode.CONFIGURE):
            with m.If(cf.act_min > cf.act_max):
                m.d.comb += code.eq(StatusCode.OUT_OF_RANGE)
        # Each checked command: when it is empty (a no-op), and when it is out of range.
        for opcode, empty, bad in ((Opcode.COMPUTE, (c.m == 0) | (c.k_blocks == 0),
                                    compute_bad),
                                   (Opcode.REQUANTISE, r.m == 0, rq_bad),
                                   (Opcode.LOAD, ld.rows == 0, load_bad),
                                   (Opcode.STORE, st.m == 0, store_bad)):
            with m.Elif(command.opcode == opcode):
                m.d.comb += noop.eq(empty)
                with m.If(~noop & bad):
                    m.d.comb += code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif((command.opcode != Opcode.FENCE) & (command.opcode != Opcode.STRIDE)):
            m.d.comb += code.eq(StatusCode.ILLEGAL_OPCODE)
        return code, noop

    def _remote_out_of_range(self, remote):
        """A remote beat address beyond the network's address width."""
        t = self.params.transaction
        beats_bits = t.addr_width - t.align_bits
        if beats_bits >= len(remote):
            return 0
        return remote[beats_bits:] != 0
