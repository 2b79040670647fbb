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
from .dma import UNEXPECTED_BITS, Dma, DmaParams, dma_command_layout
from .engine import EngineParams, GemmEngine

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
        rows, groups = e.array.rows, e.groups
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
        m.d.comb += [dma.rq.payload.eq(engine.o.payload), self.o.payload.eq(engine.o.payload)]
        with m.If(dma.storing):
            m.d.comb += [dma.rq.valid.eq(engine.o.valid), engine.o.ready.eq(dma.rq.ready)]
        with m.Else():
            m.d.comb += [self.o.valid.eq(engine.o.valid), engine.o.ready.eq(self.o.ready)]

        # --- Command FIFO. --------------------------------------------------------------
        # The COMPUTE range check needs ``k_blocks·m``. It is computed in two halves as the
        # command enters the FIFO (shift-add in LUTs, two adder levels each: no multiplier,
        # no DSP in the command path) and travels with the command; the halves are summed
        # and compared as the command leaves (see below).
        partial_layout = data.StructLayout({"low": unsigned(_PARTIAL_BITS),
                                            "high": unsigned(_PARTIAL_BITS)})
        entry = data.StructLayout({"command": command_layout, "partial": partial_layout})
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=entry.size, depth=p.depth)
        incoming = Signal(entry)
        k_in, m_in = self.cmd.payload.args.compute.k_blocks, self.cmd.payload.args.compute.m
        m.d.comb += [incoming.command.eq(self.cmd.payload),
                     incoming.partial.low.eq(_times_nibble(k_in[:4], m_in)),
                     incoming.partial.high.eq(_times_nibble(k_in[4:], m_in)),
                     queue.w_data.eq(incoming), queue.w_en.eq(self.cmd.valid),
                     self.cmd.ready.eq(queue.w_rdy)]
        fifo_entry = data.View(entry, queue.r_data)
        fifo_head = fifo_entry.command

        # --- Range checks on the FIFO's output, registered with the command. --------------
        early_code = Signal(StatusCode)
        early_noop = Signal()
        c, r, cf = fifo_head.args.compute, fifo_head.args.requantise, fifo_head.args.configure
        # (If chains, not m.Switch: Yosys writes incomplete case statements lint rejects.)
        with m.If(fifo_head.opcode == Opcode.CONFIGURE):
            with m.If(cf.act_min > cf.act_max):
                m.d.comb += early_code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif(fifo_head.opcode == Opcode.COMPUTE):
            m.d.comb += early_noop.eq((c.m == 0) | (c.k_blocks == 0))
            a_over = _a_out_of_range(m, fifo_entry.partial, c.a_base, e.a_depth)
            with m.If(~early_noop & ((c.acc_base + c.m > e.acc_depth)
                                     | (c.w_base + c.k_blocks * rows > e.w_depth)
                                     | a_over)):
                m.d.comb += early_code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif(fifo_head.opcode == Opcode.REQUANTISE):
            m.d.comb += early_noop.eq(r.m == 0)
            with m.If(~early_noop & ((r.acc_base + r.m > e.acc_depth)
                                     | (r.qp_base + groups > e.qp_depth))):
                m.d.comb += early_code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif(fifo_head.opcode == Opcode.LOAD):
            ld = fifo_head.args.load
            m.d.comb += early_noop.eq(ld.rows == 0)
            target = fifo_head.flags[:2]
            depth = Mux(target == 0, e.a_depth, Mux(target == 1, e.w_depth, e.qp_depth))
            with m.If(~early_noop & ((target == 3) | (ld.spad_base + ld.rows > depth)
                               | self._remote_out_of_range(ld.remote))):
                m.d.comb += early_code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif(fifo_head.opcode == Opcode.STORE):
            st = fifo_head.args.store
            m.d.comb += early_noop.eq(st.m == 0)
            with m.If(~early_noop & ((st.acc_base + st.m > e.acc_depth)
                                     | (st.qp_base + groups > e.qp_depth)
                               | self._remote_out_of_range(st.remote))):
                m.d.comb += early_code.eq(StatusCode.OUT_OF_RANGE)
        with m.Elif((fifo_head.opcode != Opcode.FENCE) & (fifo_head.opcode != Opcode.STRIDE)):
            m.d.comb += early_code.eq(StatusCode.ILLEGAL_OPCODE)

        # --- Decode stage: the command and the outcome of its checks, registered. --------
        head = Signal(command_layout)
        head_valid = Signal()
        code = Signal(StatusCode)
        noop = Signal()
        # The decode stage moves on whenever the skid entry (below) is free: a register, so
        # the FIFO read and the decode registers do not hang off ``retire``.
        skid_valid = Signal()
        with m.If(~head_valid | ~skid_valid):
            m.d.comb += queue.r_en.eq(1)
            m.d.sync += [head_valid.eq(queue.r_rdy), head.eq(fifo_head),
                         code.eq(early_code), noop.eq(early_noop)]

        kind = Signal(_Kind)
        with m.If((code == StatusCode.OK) & ~noop):
            with m.If(head.opcode == Opcode.COMPUTE):
                m.d.comb += kind.eq(_Kind.COMPUTE)
            with m.If(head.opcode == Opcode.REQUANTISE):
                m.d.comb += kind.eq(_Kind.REQUANT)
            with m.If((head.opcode == Opcode.LOAD) | (head.opcode == Opcode.STORE)):
                m.d.comb += kind.eq(_Kind.DMA)

        # --- Skid entry between decode and dispatch: a decoded command waits here while
        # ``cur`` is busy, and ``cur`` takes it first. -------------------------------------
        skid = Signal(command_layout)
        skid_code = Signal(StatusCode)
        skid_kind = Signal(_Kind)
        with m.If(~skid_valid):
            m.d.sync += [skid.eq(head), skid_code.eq(code), skid_kind.eq(kind)]

        cur = Signal(command_layout)
        cur_valid = Signal()
        cur_code = Signal(StatusCode)
        cur_kind = Signal(_Kind)
        cur_fence = Signal()        # cur.opcode == FENCE, registered with it
        seq = Signal(8)
        retire = Signal()
        cur_take = Signal()
        m.d.comb += cur_take.eq(~cur_valid | retire)
        with m.If(cur_take):
            m.d.sync += [cur_valid.eq(head_valid | skid_valid), skid_valid.eq(0)]
            with m.If(skid_valid):
                m.d.sync += [cur.eq(skid), cur_code.eq(skid_code), cur_kind.eq(skid_kind),
                             cur_fence.eq(skid.opcode == Opcode.FENCE)]
            with m.Else():
                m.d.sync += [cur.eq(head), cur_code.eq(code), cur_kind.eq(kind),
                             cur_fence.eq(head.opcode == Opcode.FENCE)]
        with m.Elif(~skid_valid):
            m.d.sync += skid_valid.eq(head_valid)
        cur_seq = Signal(8)
        with m.If(cur_take & (head_valid | skid_valid)):
            m.d.sync += [seq.eq(seq + 1), cur_seq.eq(seq)]

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
        room = done_fifo.w_rdy if p.in_flight > 1 else done_fifo.level == 0
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
        with m.If(cur_valid & room):
            with m.If(cur_kind == _Kind.COMPUTE):
                m.d.comb += [engine.cmd.valid.eq(1), retire.eq(engine.cmd.ready)]
            with m.Elif(cur_kind == _Kind.REQUANT):
                # Not while a STORE takes the requantiser's results.
                with m.If(~dma.storing):
                    m.d.comb += [engine.rq_cmd.valid.eq(1), retire.eq(engine.rq_cmd.ready),
                                 target.eq(beats_issued + requant_beats)]
                    with m.If(engine.rq_cmd.ready):
                        m.d.sync += beats_issued.eq(beats_issued + requant_beats)
            with m.Elif((cur_kind == _Kind.DMA) & (cur.opcode == Opcode.LOAD)):
                # Into the DMA's command FIFO: the COMPUTEs behind a LOAD go on while the
                # DMA is still busy with the transfers before it.
                m.d.comb += [dma_cmds.w_en.eq(1), retire.eq(dma_cmds.w_rdy)]
            with m.Elif(cur_kind == _Kind.DMA):
                # STORE: the requantiser and the DMA start together, once the results of
                # earlier REQUANTISEs have left ``o`` and the DMA has taken every earlier
                # LOAD (straight to the DMA, past the empty FIFO). The condition is
                # registered, as a FENCE's: while the STORE waits in ``cur`` nothing is
                # dispatched, so it only turns from false to true and last cycle's value is
                # safe; a STORE leaves one cycle after its condition holds.
                m.d.sync += store_go.eq(~store_go & engine.rq_cmd.ready & dma.cmd.ready
                                        & ~engine.rq_busy & (dma_cmds.level == 0))
                with m.If(store_go):
                    m.d.comb += [engine.rq_cmd.valid.eq(1), dma.cmd.valid.eq(1),
                                 retire.eq(1)]
            with m.Else():
                # FENCE: everything earlier has completed and its status has left; a
                # partial FENCE: few enough COMPUTEs and LOAD/STOREs still run, no
                # REQUANTISE beats are still due.
                fence = cur.args.fence
                partial_done = ((computes_running <= fence.computes)
                                & (transfers_running <= fence.transfers)
                                & (beats_issued == beats_out))
                m.d.comb += retire.eq(~cur_fence | fence_go)
                m.d.sync += fence_go.eq(cur_fence & ~fence_go
                                        & Mux(cur.flags[0], partial_done, done_fifo.level == 0))
                with m.If((cur.opcode == Opcode.CONFIGURE) & (cur_code == StatusCode.OK)):
                    m.d.sync += config.eq(cur.args.configure)
                with m.If(retire & (cur.opcode == Opcode.STRIDE)):
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
        # goes to it directly.
        with m.If(dma_cmds.r_rdy):
            m.d.comb += [dma.cmd.valid.eq(1), dma.cmd.payload.eq(dma_cmds.r_data),
                         dma_cmds.r_en.eq(dma.cmd.ready)]
        with m.Else():
            m.d.comb += dma.cmd.payload.eq(dma_cmd)
        m.d.comb += [
            engine.cmd.payload.m.eq(cc.m), engine.cmd.payload.k_blocks.eq(cc.k_blocks),
            engine.cmd.payload.a_base.eq(cc.a_base), engine.cmd.payload.w_base.eq(cc.w_base),
            engine.cmd.payload.acc_base.eq(cc.acc_base),
            engine.cmd.payload.accumulate.eq(cur.flags[0]),
            engine.cmd.payload.a_zero_point.eq(config.a_zero_point),
            engine.cmd.payload.w_zero_point.eq(config.w_zero_point),
            engine.rq_cmd.payload.m.eq(Mux(is_store, sc.m, rc.m)),
            engine.rq_cmd.payload.acc_base.eq(Mux(is_store, sc.acc_base, rc.acc_base)),
            engine.rq_cmd.payload.qp_base.eq(Mux(is_store, sc.qp_base, rc.qp_base)),
            engine.rq_cmd.payload.out_zero_point.eq(config.out_zero_point),
            engine.rq_cmd.payload.act_min.eq(config.act_min),
            engine.rq_cmd.payload.act_max.eq(config.act_max),
            engine.rq_cmd.payload.bypass.eq(cur.flags[0]),
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
        compute_dispatched = Signal()
        transfer_dispatched = Signal()
        m.d.comb += [compute_dispatched.eq(retire & (cur_kind == _Kind.COMPUTE)),
                     transfer_dispatched.eq(retire & (cur_kind == _Kind.DMA))]
        m.d.sync += [
            computes_running.eq(computes_running + compute_dispatched - engine.done),
            transfers_running.eq(transfers_running + transfer_dispatched - dma.done),
        ]
        # (The FIFO's level, not just r_rdy: a command written is not readable at once.)
        m.d.comb += self.busy.eq((queue.level != 0) | head_valid | skid_valid | cur_valid
                                 | (done_fifo.level != 0))
        return m

    def _remote_out_of_range(self, remote):
        """A remote beat address beyond the network's address width."""
        t = self.params.transaction
        beats_bits = t.addr_width - t.align_bits
        if beats_bits >= len(remote):
            return 0
        return remote[beats_bits:] != 0
