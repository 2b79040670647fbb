"""The NPU's host compiler and driver: GEMMs and 2-D convolutions into command programs.

:func:`compile_gemm` tiles any M×K by K×N quantised GEMM onto a tile of the given shape
(:class:`~chipknit.npu.isa.Limits`): K is padded to the array's rows with the activation
zero point (padding adds nothing), N to its columns, M is split into tiles that fit the
accumulators. Two ways to feed the tile:

- ``dma=True`` (default): the operands are laid out in remote memory (:attr:`Program.memory`)
  and the program LOADs them, double buffered: the next step's operands load into one half
  of each scratchpad while the current step computes from the other, a FENCE between steps.
  Results are STOREd to remote memory, row-major. Any size fits, only the operands' remote
  memory grows.
- ``dma=False``: the scratchpads are written by the host before the program runs
  (:attr:`Program.preload`) and the results stream out of the tile's ``o`` port
  (REQUANTISE). The whole GEMM must fit the scratchpads.

:func:`compile_conv2d` lowers a 2-D convolution (NHWC, stride, zero padding with the input's
zero point, per-output-channel quantisation) to a GEMM by im2col on the host.

:func:`run` executes a program on a backend and returns the int8 result: :class:`ModelBackend`
(the golden :class:`~chipknit.npu.machine.TileModel`) here; the cocotb backend
(``chipknit.tb.tests.npu_dma.CocotbBackend``) runs the same :class:`Program` on the RTL.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import isa
from .isa import Limits, Target
from .machine import RemoteMemory, TileModel

__all__ = ["Quantisation", "Program", "NpuError", "compile_gemm", "compile_conv2d", "im2col",
           "scratchpad_images",
           "run", "check_statuses", "ModelBackend", "Execution"]


class NpuError(RuntimeError):
    """A command of a program finished with an error status."""


@dataclass(frozen=True)
class Quantisation:
    """Per-output-channel requantisation and zero points of one layer (TFLite int8)."""
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    a_zero_point: int = 0
    w_zero_point: int = 0
    out_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127

    def check(self, n: int) -> None:
        for name in ("bias", "multiplier", "shift"):
            value = np.asarray(getattr(self, name))
            if value.shape != (n,):
                raise ValueError(f"{name} must have one value per output channel ({n}), "
                                 f"not shape {value.shape}")
        if np.any(np.abs(np.asarray(self.shift)) > 31):
            raise ValueError("shift must be in [-31, 31]")
        for name in ("a_zero_point", "w_zero_point", "out_zero_point", "act_min", "act_max"):
            if not -128 <= int(getattr(self, name)) <= 127:
                raise ValueError(f"{name} must be int8, not {getattr(self, name)}")
        if self.act_min > self.act_max:
            raise ValueError(f"act_min {self.act_min} > act_max {self.act_max}")

    @property
    def configure(self) -> int:
        return isa.configure(a_zero_point=self.a_zero_point, w_zero_point=self.w_zero_point,
                             out_zero_point=self.out_zero_point, act_min=self.act_min,
                             act_max=self.act_max)


@dataclass
class Program:
    """Commands plus what the host provides and reads back.

    Attributes
    ----------
    limits : Limits
        The tile it was compiled for.
    commands : list of int
        64-bit command words.
    preload : dict
        ``{"a"|"w"|"qp": {row: values}}``: scratchpad rows the host writes first
        (``values``: R or C int8, or ``lanes`` × (bias, multiplier, shift)).
    memory : dict
        ``{beat address: bytes}``: remote memory the host fills first.
    shape : tuple
        Shape of the result (M×N, or OH×OW×Cout for a convolution).
    output : "memory" or "stream"
        Where the results are: STOREd at ``out_base`` (row-major, ``out_pitch`` beats per
        row, ``C`` results per column block padded to whole beats), or REQUANTISEd out of
        ``o`` in ``blocks`` order.
    """
    limits: Limits
    commands: list[int]
    shape: tuple
    n: int
    bypass: bool = False
    preload: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    output: str = "memory"
    out_base: int = 0
    out_pitch: int = 0
    m: int = 0
    blocks: list = field(default_factory=list)     # (m0, rows, column block) per REQUANTISE

    @property
    def out_target(self) -> str:
        return "out32" if self.bypass else "out"

    def result(self, *, beats=None, memory: RemoteMemory | None = None) -> np.ndarray:
        """The result from the ``o`` beats (stream) or the remote memory (memory)."""
        lim = self.limits
        nb = math.ceil(self.n / lim.cols)
        out = np.zeros((self.m, nb * lim.cols), dtype=np.int64)
        if self.output == "stream":
            expected = sum(rows for _, rows, _ in self.blocks) * lim.groups
            if len(beats) != expected:
                raise NpuError(f"{len(beats)} result beats, expected {expected}")
            index = 0
            for m0, rows, col in self.blocks:
                for i in range(rows):
                    for group in range(lim.groups):
                        first = col * lim.cols + group * lim.lanes
                        out[m0 + i, first:first + lim.lanes] = beats[index]
                        index += 1
        else:
            row_beats = lim.row_beats(self.out_target)
            for i in range(self.m):
                blob = memory.read(self.out_base + i * self.out_pitch, nb * row_beats)
                rows = isa.unpack_rows(lim, self.out_target, blob, nb, lim.cols)
                out[i] = np.concatenate(rows)
        return out[:, :self.n].reshape(self.shape)


@dataclass
class _Plan:
    """How a GEMM is cut: M tiles of ``mt`` rows, K chunks of ``kc`` blocks."""
    m: int
    kb: int
    nb: int
    mt: int
    kc: int
    a_resident: bool

    @property
    def chunks(self) -> int:
        return math.ceil(self.kb / self.kc)


def _check_operands(a, w, quant: Quantisation):
    a, w = np.asarray(a, dtype=np.int64), np.asarray(w, dtype=np.int64)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0] or 0 in a.shape + w.shape:
        raise ValueError(f"Shapes do not multiply: a {a.shape}, w {w.shape}")
    for name, value in (("a", a), ("w", w)):
        if value.min() < -128 or value.max() > 127:
            raise ValueError(f"{name} must be int8")
    quant.check(w.shape[1])
    return a, w


def _padded(a, w, quant, lim):
    m, k = a.shape
    n = w.shape[1]
    kb, nb = math.ceil(k / lim.rows), math.ceil(n / lim.cols)
    a_pad = np.full((m, kb * lim.rows), quant.a_zero_point, dtype=np.int64)
    a_pad[:, :k] = a
    w_pad = np.full((kb * lim.rows, nb * lim.cols), quant.w_zero_point, dtype=np.int64)
    w_pad[:k, :n] = w
    chan = np.zeros((nb * lim.cols, 3), dtype=np.int64)
    chan[:n, 0], chan[:n, 1], chan[:n, 2] = quant.bias, quant.multiplier, quant.shift
    qp = chan.reshape(nb * lim.groups, lim.lanes, 3)
    return a_pad, w_pad, qp, kb, nb


def compile_gemm(a, w, quant: Quantisation, limits: Limits, *, dma: bool = True,
                 bypass: bool = False, memory_base: int = 0) -> Program:
    """A program computing ``requantize((a - a_zp) @ (w - w_zp))`` (or the raw int32 GEMM
    with ``bypass``) on a tile shaped ``limits``; see the module documentation."""
    a, w = _check_operands(a, w, quant)
    if dma:
        return _compile_dma(a, w, quant, limits, bypass, memory_base)
    return _compile_preload(a, w, quant, limits, bypass)


def _compile_preload(a, w, quant, lim, bypass) -> Program:
    m = a.shape[0]
    n = w.shape[1]
    a_pad, w_pad, qp, kb, nb = _padded(a, w, quant, lim)
    mt = min(m, max(lim.acc_depth // 2, 1))
    needs = {"a_depth": m * kb, "w_depth": nb * kb * lim.rows, "qp_depth": nb * lim.groups}
    for name, need in needs.items():
        if need > getattr(lim, name):
            raise ValueError(f"GEMM {m}x{a.shape[1]}x{n} needs {name} >= {need} without "
                             f"the DMA")
    if kb > 255:
        raise ValueError(f"K of {kb} blocks exceeds a COMPUTE's 255")
    preload = scratchpad_images(a, w, quant, lim, m_tile=mt)
    tiles = [(m0, min(mt, m - m0)) for m0 in range(0, m, mt)]
    words, blocks = [quant.configure], []
    for m0, rows in tiles:
        for col in range(nb):
            half = (len(blocks) % 2) * (lim.acc_depth // 2)
            words += [isa.compute(m=rows, k_blocks=kb, a_base=m0 * kb,
                                  w_base=col * kb * lim.rows, acc_base=half),
                      isa.fence(),
                      isa.requantise(m=rows, acc_base=half, qp_base=col * lim.groups,
                                     bypass=bypass)]
            blocks.append((m0, rows, col))
    return Program(limits=lim, commands=words, shape=(m, n), n=n, m=m, bypass=bypass,
                   preload=preload, output="stream", blocks=blocks)


def scratchpad_images(a, w, quant: Quantisation, limits: Limits, *, m_tile: int) -> dict:
    """The scratchpad rows of a whole GEMM, for the host to write: ``{"a"|"w"|"qp":
    {row: values}}``. M tile t (``m_tile`` rows) has its activations at ``t·m_tile·kb``,
    K block major (``+ kb·rows + i``); column block j's weights at ``j·kb·R`` (K order), its
    channel parameters at ``j·C/lanes``. K is padded with the zero points, N with zeros."""
    lim = limits
    a, w = _check_operands(a, w, quant)
    m = a.shape[0]
    a_pad, w_pad, qp, kb, nb = _padded(a, w, quant, lim)
    images = {"a": {}, "w": {}, "qp": {}}
    for m0 in range(0, m, m_tile):
        rows = min(m_tile, m - m0)
        for block in range(kb):
            for i in range(rows):
                images["a"][m0 * kb + block * rows + i] = \
                    a_pad[m0 + i, block * lim.rows:(block + 1) * lim.rows]
    for col in range(nb):
        for r in range(kb * lim.rows):
            images["w"][col * kb * lim.rows + r] = w_pad[r, col * lim.cols:(col + 1) * lim.cols]
    for entry in range(nb * lim.groups):
        images["qp"][entry] = qp[entry]
    return images


def _plan(m, kb, nb, lim) -> _Plan:
    a_half, w_half, acc_half = lim.a_depth // 2, lim.w_depth // 2, lim.acc_depth // 2
    if w_half < lim.rows or lim.qp_depth // 2 < lim.groups or acc_half < 1 or a_half < 1:
        raise ValueError("Double buffering needs w_depth >= 2 R, qp_depth >= 2 C/lanes, "
                         "a_depth >= 2 and acc_depth >= 2")
    kc = min(kb, w_half // lim.rows, 255)
    plans = []
    if kb <= a_half and kb <= 255:
        # All of K for an M tile stays in the A half; only weights stream.
        mt = min(m, acc_half, a_half // kb)
        plans.append(_Plan(m, kb, nb, mt, kc, a_resident=True))
    # Or M tiles as tall as the accumulators allow, A reloaded per K chunk.
    mt = min(m, acc_half, a_half)
    plans.append(_Plan(m, kb, nb, mt, min(kc, a_half // mt), a_resident=False))

    def cost(plan):    # COMPUTE steps, then remote beats moved
        steps = math.ceil(m / plan.mt) * nb * plan.chunks
        a_loads = 1 if plan.a_resident else nb
        return steps, a_loads
    return min(plans, key=cost)


@dataclass
class _Op:
    """One command of a DMA program, with the scratchpad rows it reads and writes
    (``(space, first, stop)``; spaces ``a``, ``w``, ``qp``, ``acc``)."""
    kind: str                       # "compute", "load" or "store"
    word: int
    reads: tuple = ()
    writes: tuple = ()
    shape: tuple | None = None      # the STRIDE a LOAD/STORE needs
    emitted: bool = False
    index: int = -1                 # among COMPUTEs, or among LOAD/STOREs, once emitted


def _overlap(x, y) -> bool:
    return x[0] == y[0] and x[1] < y[2] and y[1] < x[2]


def _conflict(first: _Op, second: _Op) -> bool:
    """The two touch the same rows and one of them writes them."""
    return any(_overlap(x, y) for x in first.writes for y in second.reads + second.writes) \
        or any(_overlap(x, y) for x in first.reads for y in second.writes)


def _must_wait(earlier: _Op, later: _Op) -> bool:
    """``later`` may not start until ``earlier`` has completed. COMPUTEs run in order in the
    engine (an accumulating COMPUTE reads rows the one before wrote, safely); LOAD/STOREs
    run in order in the DMA, and a LOAD is accepted only after the STORE before it has sent
    its data, so only a STORE reading rows a LOAD writes has to wait for it."""
    if earlier.kind == "compute" and later.kind == "compute":
        return False
    if earlier.kind != "compute" and later.kind != "compute":
        return earlier.kind == "load" and later.kind == "store" and _conflict(earlier, later)
    return _conflict(earlier, later)


class _Emitter:
    """Emits ops in the order asked and puts before each the partial FENCE (if any) that
    makes it wait for exactly the earlier ops it depends on (see :func:`_must_wait`)."""

    def __init__(self, words):
        self.words = words
        self.computes = self.transfers = 0        # issued
        self.done_computes = self.done_transfers = 0   # known complete (a prefix of each)
        self.running: list[_Op] = []              # emitted, not known complete
        self.shape = None        # unknown: an earlier program may have left any STRIDE

    def needs(self, op: _Op) -> tuple[int, int]:
        """How many COMPUTEs and LOAD/STOREs (prefixes) must have completed first."""
        computes = transfers = 0
        for earlier in self.running:
            if _must_wait(earlier, op):
                if earlier.kind == "compute":
                    computes = max(computes, earlier.index + 1)
                else:
                    transfers = max(transfers, earlier.index + 1)
        return computes, transfers

    def emit(self, op: _Op) -> None:
        computes, transfers = self.needs(op)
        wait_c, wait_t = computes > self.done_computes, transfers > self.done_transfers
        if wait_c or wait_t:
            self.words.append(isa.fence(
                computes=self.computes - computes if wait_c else None,
                transfers=self.transfers - transfers if wait_t else None))
            self.done_computes = max(self.done_computes, computes)
            self.done_transfers = max(self.done_transfers, transfers)
            self.running = [e for e in self.running if e.index >= (
                self.done_computes if e.kind == "compute" else self.done_transfers)]
        if op.shape is not None and op.shape != self.shape:
            self.shape = op.shape
            self.words.append(isa.stride(line_rows=op.shape[0], stride=op.shape[1]))
        self.words.append(op.word)
        if op.kind == "compute":
            op.index, self.computes = self.computes, self.computes + 1
        else:
            op.index, self.transfers = self.transfers, self.transfers + 1
        op.emitted = True
        self.running.append(op)


#: How many COMPUTEs ahead the compiler issues LOADs (as far as the scratchpads allow).
LOOKAHEAD = 8


def _compile_dma(a, w, quant, lim, bypass, base) -> Program:
    m, n = a.shape[0], w.shape[1]
    a_pad, w_pad, qp, kb, nb = _padded(a, w, quant, lim)
    plan = _plan(m, kb, nb, lim)
    ra, rw, rq = (lim.row_beats(t) for t in (Target.A, Target.W, Target.QP))
    out_target = "out32" if bypass else "out"
    ro = lim.row_beats(out_target)
    # Remote layout, in beats: results first (STORE addresses are 20 bits), then the
    # channel parameters [nb][groups], A [kb][m], W [nb][kb*R].
    out_base, out_pitch = base, nb * ro
    q_base = out_base + m * out_pitch
    a_base = q_base + nb * lim.groups * rq
    w_base = a_base + kb * m * ra
    end = w_base + nb * kb * lim.rows * rw
    if out_base + m * out_pitch > 1 << 20 or end > lim.remote_beats:
        raise ValueError(f"GEMM needs {end} beats of remote memory from {base}")
    a_rows = [a_pad[i, block * lim.rows:(block + 1) * lim.rows]
              for block in range(kb) for i in range(m)]
    w_rows = [w_pad[r, col * lim.cols:(col + 1) * lim.cols]
              for col in range(nb) for r in range(kb * lim.rows)]
    memory = {q_base: isa.pack_rows(lim, Target.QP, qp),
              a_base: isa.pack_rows(lim, Target.A, a_rows),
              w_base: isa.pack_rows(lim, Target.W, w_rows)}
    ops = _schedule(lim, plan, m, kb, nb, bypass,
                    {"out": out_base, "out_pitch": out_pitch, "qp": q_base, "a": a_base,
                     "w": w_base, "ra": ra, "rw": rw, "rq": rq, "ro": ro})
    words = [quant.configure]
    emitter = _Emitter(words)
    _emit(emitter, ops)
    words.append(isa.fence())
    return Program(limits=lim, commands=words, shape=(m, n), n=n, m=m, bypass=bypass,
                   memory=memory, output="memory", out_base=out_base, out_pitch=out_pitch)


def _steps(plan: _Plan, m, kb, nb, lim, acc_slots):
    """COMPUTE steps in order: ``(m0, mt, col, k0, kc, first, last)``.

    With A resident, the first ``group`` column blocks of an M tile are interleaved over K
    (one short K chunk of all of them, then the next), so the first COMPUTE waits only for
    one chunk of A, and computing those columns hides loading the rest of A. The group is
    as wide as the accumulators allow while one more column block can compute."""
    steps = []
    for m0 in range(0, m, plan.mt):
        mt = min(plan.mt, m - m0)
        group = min(nb, acc_slots - 1) if plan.a_resident else 1
        if group > 1 or (plan.a_resident and kb > 1):
            chunk = min(plan.kc, max(1, -(-128 // mt)))
            # The first two chunks are one K block each: the first COMPUTE waits for as
            # little as can be (one block of A, one of W), and the next block of A arrives
            # while the group computes the first; the rest come in chunks of ``chunk``
            # (fabric bench, B = 1: 93.5 % of the roofline with chunks of 2 only, 92.9 %
            # with a first chunk of 1, 94.1 % with two).
            starts = [0, 1] + list(range(2, kb, chunk)) if chunk > 1 and kb > 2 \
                else list(range(kb))
            for k0, k1 in zip(starts, starts[1:] + [kb], strict=True):
                for col in range(group):
                    steps.append((m0, mt, col, k0, k1 - k0, k0 == 0, k1 >= kb))
        else:
            group = 0
        for col in range(group, nb):
            for k0 in range(0, kb, plan.kc):
                steps.append((m0, mt, col, k0, min(plan.kc, kb - k0), k0 == 0,
                              k0 + plan.kc >= kb))
    return steps


def _schedule(lim, plan, m, kb, nb, bypass, remote) -> list[_Op]:
    """The ops in dependency order: each step's LOADs, its COMPUTE, then the STOREs of the
    column blocks the step before completed. Scratchpads are rings: A in two halves (one
    per M tile, or per K chunk when A is not resident), W and QP allocated round robin,
    the accumulators in slots of one M tile."""
    a_half = lim.a_depth // 2
    mt_max = plan.mt
    acc_slots = lim.acc_depth // mt_max
    q_slots = lim.qp_depth // lim.groups
    ops: list[_Op] = []
    w_next = 0
    a_tiles: dict[int, tuple[int, set]] = {}      # resident: M tile → (base, K blocks in)
    a_count = 0
    columns = {}                  # (m0, col) → accumulator slot
    column_count = 0
    pending_stores: list[dict] = []       # finished columns, oldest first
    q_count = [0]
    budget = 0                            # COMPUTE cycles not yet used to hide a STORE

    def stores(column, *, with_qp):
        """[LOAD QP, STORE] of a finished column (the QP slot is taken when with_qp), or
        [STORE] with the slot taken before."""
        if with_qp:
            column["q_at"] = (q_count[0] % q_slots) * lim.groups
            q_count[0] += 1
        q_at, acc_at, mt = column["q_at"], column["slot"] * mt_max, column["mt"]
        line = 0 if nb == 1 else 1
        store = _Op("store", isa.store(
            m=mt, acc_base=acc_at, qp_base=q_at, bypass=bypass,
            remote=remote["out"] + column["m0"] * remote["out_pitch"]
            + column["col"] * remote["ro"]),
            reads=(("acc", acc_at, acc_at + mt), ("qp", q_at, q_at + lim.groups)),
            shape=(line, remote["out_pitch"] if line else 0))
        if not with_qp:
            return [store]
        load = _Op("load", isa.load(
            Target.QP, spad_base=q_at, rows=lim.groups,
            remote=remote["qp"] + column["col"] * lim.groups * remote["rq"]),
            writes=(("qp", q_at, q_at + lim.groups),), shape=(0, 0))
        return [load, store]
    steps = _steps(plan, m, kb, nb, lim, acc_slots)
    for m0, mt, col, k0, kc, first, last in steps:
        loads = []
        # A: for the whole M tile (resident, loaded K chunk by K chunk as first needed) or
        # for this K chunk (two halves, alternating).
        if plan.a_resident:
            if m0 not in a_tiles:
                a_tiles[m0] = ((len(a_tiles) % 2) * a_half, set())
            region, present = a_tiles[m0]
            a_at = region + k0 * mt
            missing = [b for b in range(k0, k0 + kc) if b not in present]
            present.update(missing)
            load_from, count = (missing[0], k0 + kc - missing[0]) if missing else (k0, 0)
        else:
            a_at = (a_count % 2) * a_half
            a_count += 1
            load_from, count = k0, kc
        if count:
            spad = a_at + (load_from - k0) * mt
            line = 0 if mt == m or count == 1 else mt
            loads.append(_Op("load", isa.load(
                Target.A, spad_base=spad, rows=count * mt,
                remote=remote["a"] + (load_from * m + m0) * remote["ra"]),
                writes=(("a", spad, spad + count * mt),),
                shape=(line, m * remote["ra"] if line else 0)))
        # W: kc·R rows, round robin.
        rows = kc * lim.rows
        if w_next + rows > lim.w_depth:
            w_next = 0
        w_at, w_next = w_next, w_next + rows
        loads.append(_Op("load", isa.load(
            Target.W, spad_base=w_at, rows=rows,
            remote=remote["w"] + (col * kb + k0) * lim.rows * remote["rw"]),
            writes=(("w", w_at, w_at + rows),), shape=(0, 0)))
        if first:
            slot = column_count % acc_slots
            column_count += 1
            columns[(m0, col)] = slot
            # The slot's last STORE must come before this column overwrites it.
            while slot in [pending["slot"] for pending in pending_stores]:
                ops += stores(pending_stores.pop(0), with_qp=True)
        slot = columns[(m0, col)]
        acc_at = slot * mt_max
        # The oldest finished column's STORE follows this COMPUTE once the COMPUTEs since
        # the last STORE take as long as the requantiser needs for it (mt·C/lanes cycles;
        # a STORE holds the queue until the one before has left), so the STOREs of a
        # group spread over the next steps. Its QP loads with this step.
        # As many STOREs as this COMPUTE's cycles cover (at most one per QP slot, whose
        # QP entries all load before the COMPUTE), so no backlog is left for the end.
        budget = budget + mt * kc if pending_stores else 0
        popped = []
        while pending_stores and len(popped) < q_slots \
                and budget >= pending_stores[0]["mt"] * lim.groups:
            popped.append(pending_stores.pop(0))
            budget -= popped[-1]["mt"] * lim.groups
        ops += loads + [op for column in popped for op in stores(column, with_qp=True)[:1]]
        ops.append(_Op("compute", isa.compute(
            m=mt, k_blocks=kc, a_base=a_at, w_base=w_at, acc_base=acc_at,
            accumulate=not first),
            reads=(("a", a_at, a_at + kc * mt), ("w", w_at, w_at + rows),
                   ("acc", acc_at, acc_at + mt)),
            writes=(("acc", acc_at, acc_at + mt),)))
        for column in popped:
            ops += stores(column, with_qp=False)
        if last:
            pending_stores.append({"m0": m0, "mt": mt, "col": col, "slot": slot})
    while pending_stores:
        ops += stores(pending_stores.pop(0), with_qp=True)
    return ops


def _emit(emitter: _Emitter, ops: list[_Op]) -> None:
    """Emit ``ops`` in order, except that LOADs move up to :data:`LOOKAHEAD` COMPUTEs
    earlier, as long as no op they would pass touches their rows and they make the engine
    wait for no COMPUTE but earlier ones: right after each COMPUTE (it streams on behind
    the one they wait for). Never right before it: the queue dispatches in order, so a LOAD
    the DMA cannot take yet (its requests in flight are all taken by a long transfer)
    would hold up the COMPUTE behind it, which needs none of it (measured: B = 1 on the
    fabric bench, 94.1 against 94.35 % of the roofline, and every other point better too)."""
    def hoist(position):
        passed, computes = [], 0
        for later in ops[position + 1:]:
            if later.emitted:
                continue
            if later.kind == "compute":
                computes += 1
                if computes > LOOKAHEAD:
                    return
            elif later.kind == "load" and not any(_conflict(x, later) for x in passed):
                needed_c, _ = emitter.needs(later)
                if needed_c <= emitter.computes - 1:
                    emitter.emit(later)
                    continue
            passed.append(later)

    for position, op in enumerate(ops):
        if op.emitted:
            continue
        emitter.emit(op)
        if op.kind == "compute":
            hoist(position)


def im2col(x, kernel: tuple[int, int], *, stride: int = 1, padding: int = 0,
           pad_value: int = 0) -> np.ndarray:
    """Patches of an H×W×C input as rows (OH·OW, KH·KW·C), ordered (kh, kw, c)."""
    x = np.asarray(x, dtype=np.int64)
    kh, kw = kernel
    h, w_, c = x.shape
    padded = np.full((h + 2 * padding, w_ + 2 * padding, c), pad_value, dtype=np.int64)
    padded[padding:padding + h, padding:padding + w_] = x
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w_ + 2 * padding - kw) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"A {kh}x{kw} kernel does not fit a {h}x{w_} input padded by "
                         f"{padding}")
    rows = [padded[y * stride:y * stride + kh, x_ * stride:x_ * stride + kw].reshape(-1)
            for y in range(oh) for x_ in range(ow)]
    return np.array(rows, dtype=np.int64).reshape(oh * ow, kh * kw * c)


def compile_conv2d(x, weights, quant: Quantisation, limits: Limits, *, stride: int = 1,
                   padding: int = 0, dma: bool = True, bypass: bool = False,
                   memory_base: int = 0) -> Program:
    """A 2-D convolution: ``x`` H×W×Cin int8, ``weights`` KH×KW×Cin×Cout int8, per-output-
    channel ``quant``; padding uses the input zero point. Result OH×OW×Cout."""
    x, weights = np.asarray(x), np.asarray(weights)
    if x.ndim != 3 or weights.ndim != 4 or weights.shape[2] != x.shape[2]:
        raise ValueError(f"Expected x H×W×Cin and weights KH×KW×Cin×Cout, not {x.shape} "
                         f"and {weights.shape}")
    if stride < 1 or padding < 0:
        raise ValueError(f"Stride must be >= 1 and padding >= 0, not {stride}, {padding}")
    kh, kw, cin, cout = weights.shape
    patches = im2col(x, (kh, kw), stride=stride, padding=padding,
                     pad_value=quant.a_zero_point)
    program = compile_gemm(patches, weights.reshape(kh * kw * cin, cout), quant, limits,
                           dma=dma, bypass=bypass, memory_base=memory_base)
    oh = (x.shape[0] + 2 * padding - kh) // stride + 1
    ow = (x.shape[1] + 2 * padding - kw) // stride + 1
    program.shape = (oh, ow, cout)
    return program


@dataclass
class Execution:
    """What a backend observed running a program."""
    statuses: list[tuple[int, int, int]]
    beats: list[list[int]]
    memory: RemoteMemory
    cycles: int | None = None


class ModelBackend:
    """Runs programs on the golden :class:`~chipknit.npu.machine.TileModel`."""

    def __init__(self, memory: RemoteMemory | None = None):
        self.memory = memory

    def execute(self, program: Program) -> Execution:
        memory = self.memory or RemoteMemory(program.limits.beat_bytes)
        for address, blob in program.memory.items():
            memory.write(address, blob)
        tile = TileModel(program.limits, memory)
        tile.preload(program.preload)
        statuses = tile.run(program.commands)
        return Execution(statuses=statuses, beats=tile.beats, memory=memory)


def check_statuses(program: Program, statuses) -> None:
    """Raise :class:`NpuError` unless every command got OK, in order, numbered."""
    if len(statuses) != len(program.commands):
        raise NpuError(f"{len(statuses)} statuses for {len(program.commands)} commands")
    for index, (word, (code, opcode, seq)) in enumerate(zip(program.commands, statuses,
                                                            strict=True)):
        if code != isa.Status.OK or opcode != word & 15 or seq != index % 256:
            raise NpuError(f"command {index} ({word:#018x}): status "
                           f"{isa.Status(code).name if code in set(isa.Status) else code}, "
                           f"opcode {opcode}, seq {seq}")


def run(program: Program, backend=None) -> np.ndarray:
    """Execute ``program`` on ``backend`` (default: the golden model); return the result.

    Raises :class:`NpuError` if a command fails. For the cocotb backend use
    ``await backend.run(program)``, which decodes the same way.
    """
    execution = (backend or ModelBackend()).execute(program)
    check_statuses(program, execution.statuses)
    return program.result(beats=execution.beats, memory=execution.memory)
