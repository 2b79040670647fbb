"""GEMM engine: scratchpads, the systolic array, accumulate across K tiles, requantise.

The engine is driven by two command streams, so a command queue can issue them, keep them
apart with fences and overlap the two: *compute* fills a block of accumulators from the
activation and weight scratchpads, *requantise* streams a block of accumulators out through
the :class:`~chipknit.rtl.npu.requant.Requantiser`. See ``docs/npu.md``.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .array import ArrayParams, SystolicArray
from .requant import LATENCY as REQUANT_LATENCY
from .requant import Requantiser, RequantParams, channel_layout

__all__ = ["EngineParams", "GemmEngine", "compute_command_layout", "requant_command_layout"]


def _power_of_two(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 \
            or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")


@dataclass(frozen=True)
class EngineParams:
    """Parameters of a :class:`GemmEngine`.

    Parameters
    ----------
    array : ArrayParams
        The systolic array (R rows × C columns).
    a_depth : int
        Activation scratchpad rows (each R int8 values). Power of two.
    w_depth : int
        Weight scratchpad rows (each C int8 values). Power of two, at least R.
    acc_depth : int
        Accumulator rows (each C int32 values): the largest M of one command. Power of two.
    qp_depth : int
        Channel-parameter entries (each ``requant_lanes`` channels). Power of two.
    requant_lanes : int
        Channels requantised per cycle; divides C.
    """
    array: ArrayParams = field(default_factory=ArrayParams)
    a_depth: int = 256
    w_depth: int = 256
    acc_depth: int = 64
    qp_depth: int = 16
    requant_lanes: int = 1

    def __post_init__(self):
        if not isinstance(self.array, ArrayParams):
            raise TypeError(f"Expected ArrayParams, not {self.array!r}")
        if self.array.operand_width < 9:
            raise ValueError("The engine needs operand width >= 9 (int8 minus a zero point), "
                             f"not {self.array.operand_width}")
        for name in ("a_depth", "w_depth", "acc_depth", "qp_depth"):
            _power_of_two(name.replace("_", " ").capitalize(), getattr(self, name))
        if self.w_depth < self.array.rows:
            raise ValueError(f"W depth must hold one weight tile ({self.array.rows} rows), "
                             f"not {self.w_depth}")
        lanes = self.requant_lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 \
                or self.array.cols % lanes:
            raise ValueError(f"Requant lanes must be a positive divisor of the "
                             f"{self.array.cols} columns, not {lanes!r}")

    @property
    def groups(self) -> int:
        """Requantiser beats per accumulator row (C / lanes)."""
        return self.array.cols // self.requant_lanes


class _Loader(enum.Enum, shape=2):
    IDLE = 0
    WAIT = 1    # for the shadow chain to be free
    LOAD = 2    # R cycles of weight rows into the shadow chain


def _addr(depth):
    return max((depth - 1).bit_length(), 1)


def compute_command_layout(params: EngineParams) -> data.StructLayout:
    """A compute command: ``acc[acc_base + i] (+)= sum_kb A_kb[i] @ W_kb`` for i < m.

    ``A_kb[i]`` is activation row ``a_base + kb*m + i`` minus ``a_zero_point``; ``W_kb`` is
    weight rows ``w_base + kb*R .. + R-1`` (K index order) minus ``w_zero_point``; kb runs
    over ``k_blocks``. With ``accumulate`` clear the first K block overwrites the
    accumulators. ``m = 0`` or ``k_blocks = 0`` is a no-op. Addresses wrap.
    """
    return data.StructLayout({
        "m": unsigned(params.acc_depth.bit_length()),
        "k_blocks": unsigned((params.w_depth // params.array.rows).bit_length()),
        "a_base": unsigned(_addr(params.a_depth)),
        "w_base": unsigned(_addr(params.w_depth)),
        "acc_base": unsigned(_addr(params.acc_depth)),
        "accumulate": unsigned(1),
        "a_zero_point": signed(8),
        "w_zero_point": signed(8),
    })


def requant_command_layout(params: EngineParams) -> data.StructLayout:
    """A requantise command: rows ``acc_base .. + m-1`` out of ``o``, row by row, lane
    group by lane group, with channel parameters ``qp[qp_base + group]``."""
    return data.StructLayout({
        "m": unsigned(params.acc_depth.bit_length()),
        "acc_base": unsigned(_addr(params.acc_depth)),
        "qp_base": unsigned(_addr(params.qp_depth)),
        "out_zero_point": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
        "bypass": unsigned(1),
    })


class GemmEngine(wiring.Component):
    """Computes int8 GEMM tiles on a systolic array and requantises them (TFLite int8).

    Scratchpads (``amaranth.lib.memory``, written through the ``*_wr`` ports, one row per
    cycle with ``en``): activations ``a`` (rows of R int8), weights ``w`` (rows of C int8),
    channel parameters ``qp`` (``requant_lanes`` × bias/multiplier/shift) and the
    accumulators (rows of C int32). Writes go to separate ports from the engine's reads, so
    a loader fills one half of a scratchpad while a command computes from the other
    (double buffering by address); writing rows a running command reads is the issuer's
    hazard to avoid.

    Protocol:

    - ``cmd`` (stream of :func:`compute_command_layout`): taken when the weight loader is
      free, which is while the previous command's last K block still computes, so commands
      stream back to back. ``done`` pulses for one cycle when a command's last accumulator
      row is written (in command order); ``busy`` is high from acceptance until every
      accepted command is done.
    - ``rq_cmd`` (stream of :func:`requant_command_layout`): taken when the requantise
      sequencer is idle; it emits m × C/lanes beats on ``o``, each ``requant_lanes`` results
      (int8 sign-extended, or raw int32 with ``bypass``), honouring backpressure.
      ``rq_busy`` is high until the last beat has left ``o``. Compute and requantise run
      concurrently; requantising rows a running compute writes is the issuer's hazard.
    - A reset abandons every command and beat in flight; scratchpad contents survive.

    Attributes
    ----------
    a_wr, w_wr, qp_wr : Out(memory.WritePort.Signature(...))
        Scratchpad write ports, as a memory presents them (``Out`` of a port signature
        whose members are ``In`` from the memory's side: ``addr``, ``data``, ``en`` are
        inputs of the engine).
    cmd : In(stream.Signature(compute_command_layout(params)))
    rq_cmd : In(stream.Signature(requant_command_layout(params)))
    o : Out(stream.Signature(ArrayLayout(signed(32), requant_lanes)))
    busy, done, rq_busy : Out(1)
    """

    def __init__(self, params: EngineParams = EngineParams()):
        if not isinstance(params, EngineParams):
            raise TypeError(f"Expected EngineParams, not {params!r}")
        self.params = params
        p, arr = params, params.array
        self.a_row = data.ArrayLayout(signed(8), arr.rows)
        self.w_row = data.ArrayLayout(signed(8), arr.cols)
        self.acc_row = data.ArrayLayout(signed(32), arr.cols)
        self.qp_entry = data.ArrayLayout(channel_layout, p.requant_lanes)
        super().__init__({
            "a_wr": Out(memory.WritePort.Signature(addr_width=_addr(p.a_depth),
                                                  shape=self.a_row)),
            "w_wr": Out(memory.WritePort.Signature(addr_width=_addr(p.w_depth),
                                                  shape=self.w_row)),
            "qp_wr": Out(memory.WritePort.Signature(addr_width=_addr(p.qp_depth),
                                                   shape=self.qp_entry)),
            "cmd": In(stream.Signature(compute_command_layout(p))),
            "rq_cmd": In(stream.Signature(requant_command_layout(p))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(32), p.requant_lanes))),
            "busy": Out(1),
            "done": Out(1),
            "rq_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, arr = self.params, self.params.array
        rows, cols = arr.rows, arr.cols

        m.submodules.a_mem = a_mem = memory.Memory(shape=self.a_row, depth=p.a_depth, init=[])
        m.submodules.w_mem = w_mem = memory.Memory(shape=self.w_row, depth=p.w_depth, init=[])
        m.submodules.qp_mem = qp_mem = memory.Memory(shape=self.qp_entry, depth=p.qp_depth,
                                                     init=[])
        m.submodules.acc_mem = acc_mem = memory.Memory(shape=self.acc_row, depth=p.acc_depth,
                                                       init=[])
        for mem, port in ((a_mem, self.a_wr), (w_mem, self.w_wr), (qp_mem, self.qp_wr)):
            write = mem.write_port()
            m.d.comb += [write.addr.eq(port.addr), write.data.eq(port.data),
                         write.en.eq(port.en)]
        a_rd = a_mem.read_port()
        w_rd = w_mem.read_port()
        acc_wr = acc_mem.write_port()
        acc_rd = acc_mem.read_port()
        rq_acc_rd = acc_mem.read_port()
        qp_rd = qp_mem.read_port()

        m.submodules.array = array = SystolicArray(arr)

        cmd_layout = compute_command_layout(p)
        cmd = Signal(cmd_layout)

        # --- Weight loader: one K block's weights into the shadow chain at a time. -------
        pass_layout = data.StructLayout({
            "a_ptr": cmd_layout["a_base"].shape,
            "final": cmd_layout["m"].shape,      # m − 1: the index of the last row
            "acc_base": cmd_layout["acc_base"].shape,
            "first": unsigned(1),
            "last": unsigned(1),
            "a_zero_point": signed(8),
        })
        pending = Signal(pass_layout)      # the loaded pass, waiting for the feeder
        shadow_full = Signal()
        hold = Signal(range(arr.swap_hold + 1))   # cycles until the shadow may move
        w_ptr = Signal.like(cmd.w_base)
        a_ptr = Signal.like(cmd.a_base)
        kb = Signal.like(cmd.k_blocks)
        first = Signal()
        j = Signal(range(rows))
        w_issue = Signal()
        loader_busy = Signal()

        with m.If(hold != 0):
            m.d.sync += hold.eq(hold - 1)

        state = Signal(_Loader)
        with m.If(state == _Loader.IDLE):
            m.d.comb += self.cmd.ready.eq(1)
            with m.If(self.cmd.valid & (self.cmd.payload.m != 0)
                      & (self.cmd.payload.k_blocks != 0)):
                m.d.sync += [cmd.eq(self.cmd.payload), w_ptr.eq(self.cmd.payload.w_base),
                             a_ptr.eq(self.cmd.payload.a_base), kb.eq(0),
                             first.eq(~self.cmd.payload.accumulate), state.eq(_Loader.WAIT)]
        with m.Elif(state == _Loader.WAIT):
            m.d.comb += loader_busy.eq(1)
            with m.If(~shadow_full & (hold == 0)):
                m.d.sync += [j.eq(0), state.eq(_Loader.LOAD)]
        with m.Else():
            m.d.comb += [loader_busy.eq(1), w_issue.eq(1),
                         w_rd.addr.eq(w_ptr + (rows - 1) - j)]
            m.d.sync += j.eq(j + 1)
            with m.If(j == rows - 1):
                m.d.sync += [
                    shadow_full.eq(1),
                    pending.a_ptr.eq(a_ptr), pending.final.eq(cmd.m - 1),
                    pending.acc_base.eq(cmd.acc_base), pending.first.eq(first),
                    pending.last.eq(kb == cmd.k_blocks - 1),
                    pending.a_zero_point.eq(cmd.a_zero_point),
                    w_ptr.eq(w_ptr + rows), a_ptr.eq(a_ptr + cmd.m), kb.eq(kb + 1),
                    first.eq(0),
                ]
                with m.If(kb == cmd.k_blocks - 1):
                    m.d.sync += state.eq(_Loader.IDLE)
                with m.Else():
                    m.d.sync += state.eq(_Loader.WAIT)

        # Weights reach the array two cycles after the read (the memory's output is
        # registered first), zero point subtracted.
        w_load = Signal(2)
        w_zero_point = Signal(signed(8))
        w_zero_point2 = Signal(signed(8))
        w_row = Signal(self.w_row)
        m.d.sync += [w_load.eq(Cat(w_issue, w_load[0])), w_zero_point.eq(cmd.w_zero_point),
                     w_zero_point2.eq(w_zero_point), w_row.eq(w_rd.data)]
        m.d.comb += array.w_load.eq(w_load[1])
        for c in range(cols):
            m.d.comb += array.w[c].eq(w_row[c] - w_zero_point2)

        # --- Feeder: streams the pending pass's activation rows into the array. ----------
        current = Signal(pass_layout)
        feeding = Signal()
        i = Signal.like(cmd.m)
        last_row = Signal()
        take = Signal()
        # (``final`` comes with the pass, so no subtractor sits before the compare: the
        # last row decides ``take``, which loads every feeder register.)
        m.d.comb += [last_row.eq(feeding & (i == current.final)),
                     take.eq(shadow_full & (~feeding | last_row))]
        # The A read address ``a_ptr + i`` is kept in a register of its own, stepped with
        # ``i``: Yosys emulates the block RAM's read-before-write behaviour by comparing the
        # read address with the write a cycle late, and behind an adder that compare was
        # 9 LUT levels (the deepest register input of the package).
        a_addr = Signal.like(a_rd.addr)
        with m.If(take):
            m.d.sync += [current.eq(pending), feeding.eq(1), i.eq(0), shadow_full.eq(0),
                         hold.eq(arr.swap_hold), a_addr.eq(pending.a_ptr)]
        with m.Elif(last_row):
            m.d.sync += feeding.eq(0)
        with m.Elif(feeding):
            m.d.sync += [i.eq(i + 1), a_addr.eq(a_addr + 1)]

        # Row issue: address now, data (and these flags, registered) next cycle.
        issue_layout = data.StructLayout({
            "valid": unsigned(1),
            "first": unsigned(1),
            "last": unsigned(1),
            "acc_addr": cmd_layout["acc_base"].shape,
        })
        issue = Signal(issue_layout)
        m.d.comb += [a_rd.addr.eq(a_addr),
                     issue.valid.eq(feeding), issue.first.eq(current.first),
                     issue.last.eq(last_row & current.last),
                     issue.acc_addr.eq(current.acc_base + i)]
        # The row reaches the array two cycles after its read (the memory's output is
        # registered first), with its flags.
        swap = Signal(2)
        a_valid = Signal(2)
        a_zero_point = Signal(signed(8))
        a_zero_point2 = Signal(signed(8))
        a_row = Signal(self.a_row)
        m.d.sync += [a_valid.eq(Cat(feeding, a_valid[0])),
                     swap.eq(Cat(feeding & (i == 0), swap[0])),
                     a_zero_point.eq(current.a_zero_point), a_zero_point2.eq(a_zero_point),
                     a_row.eq(a_rd.data)]
        m.d.comb += [array.a_valid.eq(a_valid[1]), array.swap.eq(swap[1])]
        for r in range(rows):
            m.d.comb += array.a[r].eq(a_row[r] - a_zero_point2)

        # --- Accumulate: the row's flags travel beside it through the array. -------------
        line = [issue]
        for stage in range(arr.latency + 2):
            reg = Signal(issue_layout, name=f"line_{stage + 1}")
            m.d.sync += reg.eq(line[-1])
            line.append(reg)
        # The accumulator row is read three cycles before it is written: the memory's
        # output goes straight into a register (``acc_q``), and then, forwarded, into
        # ``held``, so no path runs from the memory through a mux or the adder (a DP16KD's
        # output is slow). A row written while a later row with the same address is between
        # its read and ``held`` is forwarded to it: the write of this cycle, of the cycle
        # before, or of the one before that (the read saw none of them).
        read_at, data_at, write_at = (line[arr.latency - 1], line[arr.latency + 1],
                                      line[arr.latency + 2])
        m.d.comb += acc_rd.addr.eq(read_at.acc_addr)
        m.d.comb += [acc_wr.addr.eq(write_at.acc_addr), acc_wr.en.eq(write_at.valid),
                     self.done.eq(write_at.valid & write_at.last)]
        held = Signal(self.acc_row)
        acc_q = Signal(self.acc_row)
        m.d.sync += acc_q.eq(acc_rd.data)
        write_layout = data.StructLayout({"en": 1, "addr": len(acc_wr.addr),
                                          "data": self.acc_row})
        last_write = Signal(write_layout)
        last_write2 = Signal(write_layout)
        m.d.sync += [last_write.en.eq(acc_wr.en), last_write.addr.eq(acc_wr.addr),
                     last_write.data.eq(acc_wr.data), last_write2.eq(last_write)]
        with m.If(acc_wr.en & (acc_wr.addr == data_at.acc_addr)):
            m.d.sync += held.eq(acc_wr.data)
        with m.Elif(last_write.en & (last_write.addr == data_at.acc_addr)):
            m.d.sync += held.eq(last_write.data)
        with m.Elif(last_write2.en & (last_write2.addr == data_at.acc_addr)):
            m.d.sync += held.eq(last_write2.data)
        with m.Else():
            m.d.sync += held.eq(acc_q)
        for c in range(cols):
            previous = Mux(write_at.first, 0, held[c])
            m.d.comb += acc_wr.data[c].eq((previous + array.o[c])[:32])
        m.d.comb += self.busy.eq(loader_busy | shadow_full | feeding |
                                 _any(line[1:], "valid"))
        # --- Requantise sequencer. -------------------------------------------------------
        self._requantise(m, rq_acc_rd, qp_rd)
        return m

    def _requantise(self, m, acc_rd, qp_rd):
        p = self.params
        lanes, groups = p.requant_lanes, p.groups
        m.submodules.requantiser = rq = Requantiser(RequantParams(lanes=lanes))
        rq_cmd = Signal(requant_command_layout(p))
        active = Signal()
        row = Signal.like(rq_cmd.m)
        group = Signal(range(groups))
        valid1 = Signal()
        group1 = Signal(range(groups))
        # Stage 2: the memories' outputs registered, then the lane group selected.
        valid2 = Signal()
        group2 = Signal(range(groups))
        acc_row = Signal(self.acc_row)
        qp_entry = Signal(self.qp_entry)
        advance = Signal()
        m.d.comb += [advance.eq(~valid2 | rq.i.ready),
                     self.rq_cmd.ready.eq(~active)]
        with m.If(self.rq_cmd.valid & ~active & (self.rq_cmd.payload.m != 0)):
            m.d.sync += [rq_cmd.eq(self.rq_cmd.payload), active.eq(1), row.eq(0),
                         group.eq(0)]
        m.d.comb += [acc_rd.addr.eq(rq_cmd.acc_base + row), acc_rd.en.eq(advance),
                     qp_rd.addr.eq(rq_cmd.qp_base + group), qp_rd.en.eq(advance)]
        config = data.StructLayout({name: rq_cmd.shape()[name].shape for name in
                                    ("out_zero_point", "act_min", "act_max", "bypass")})
        config1 = Signal(config)   # travels with the beat: a new command may be taken
        config2 = Signal(config)
        with m.If(advance):
            m.d.sync += [valid1.eq(active), group1.eq(group), valid2.eq(valid1),
                         group2.eq(group1), config2.eq(config1), acc_row.eq(acc_rd.data),
                         qp_entry.eq(qp_rd.data)]
            m.d.sync += [getattr(config1, name).eq(getattr(rq_cmd, name))
                         for name in config.members]
            with m.If(active):
                m.d.sync += group.eq(group + 1)
                with m.If(group == groups - 1):
                    m.d.sync += [group.eq(0), row.eq(row + 1)]
                    with m.If(row == rq_cmd.m - 1):
                        m.d.sync += active.eq(0)
        acc_bits = acc_row.as_value().word_select(group2, 32 * lanes)
        payload = rq.i.payload
        for lane in range(lanes):
            m.d.comb += [payload.acc[lane].eq(acc_bits[32 * lane:32 * (lane + 1)]),
                         payload.channel[lane].eq(qp_entry[lane])]
        m.d.comb += [payload.out_zero_point.eq(config2.out_zero_point),
                     payload.act_min.eq(config2.act_min), payload.act_max.eq(config2.act_max),
                     payload.bypass.eq(config2.bypass), rq.i.valid.eq(valid2)]
        wiring.connect(m, rq.o, wiring.flipped(self.o))
        # Beats inside the requantiser, to know when the command has fully left.
        inside = Signal(range(REQUANT_LATENCY + 2))
        m.d.sync += inside.eq(inside + (rq.i.valid & rq.i.ready) - (rq.o.valid & rq.o.ready))
        m.d.comb += self.rq_busy.eq(active | valid1 | valid2 | (inside != 0))


def _any(signals, name):
    result = 0
    for signal in signals:
        result = result | getattr(signal, name)
    return result
