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

    a_half, w_half, q_half, acc_half = (lim.a_depth // 2, lim.w_depth // 2,
                                        lim.qp_depth // 2, lim.acc_depth // 2)
    # Steps: one COMPUTE each; what it needs loaded first.
    steps = []
    for m0 in range(0, m, plan.mt):
        mt = min(plan.mt, m - m0)
        for col in range(nb):
            for chunk in range(plan.chunks):
                k0 = chunk * plan.kc
                steps.append({"m0": m0, "mt": mt, "col": col, "k0": k0,
                              "kc": min(plan.kc, kb - k0), "first": chunk == 0,
                              "last": chunk == plan.chunks - 1})
    slots = {"a": -1, "w": -1, "qp": -1, "acc": -1}
    loaded = {"a": None, "w": None, "qp": None}
    shape = [0, 0]            # the current STRIDE

    def stride(line_rows, pitch):
        if [line_rows, pitch] != shape:
            shape[:] = [line_rows, pitch]
            return [isa.stride(line_rows=line_rows, stride=pitch)]
        return []

    def loads(step):
        words = []
        a_key = (step["m0"], None if plan.a_resident else step["k0"])
        if loaded["a"] != a_key:
            loaded["a"] = a_key
            slots["a"] += 1
            k0, count = (0, kb) if plan.a_resident else (step["k0"], step["kc"])
            line = 0 if step["mt"] == m or count == 1 else step["mt"]
            words += stride(line, m * ra)
            words.append(isa.load(Target.A, spad_base=(slots["a"] % 2) * a_half,
                                  rows=count * step["mt"],
                                  remote=a_base + (k0 * m + step["m0"]) * ra))
        w_key = (step["col"], step["k0"])
        if loaded["w"] != w_key:
            loaded["w"] = w_key
            slots["w"] += 1
            words += stride(0, 0)
            words.append(isa.load(Target.W, spad_base=(slots["w"] % 2) * w_half,
                                  rows=step["kc"] * lim.rows,
                                  remote=w_base + (step["col"] * kb + step["k0"])
                                  * lim.rows * rw))
        if step["first"] and loaded["qp"] != step["col"]:
            loaded["qp"] = step["col"]
            slots["qp"] += 1
            words += stride(0, 0)
            words.append(isa.load(Target.QP, spad_base=(slots["qp"] % 2) * q_half,
                                  rows=lim.groups, remote=q_base + step["col"] * lim.groups * rq))
        step.update(a_slot=slots["a"] % 2, w_slot=slots["w"] % 2, qp_slot=slots["qp"] % 2)
        return words

    def store(block):
        line = 0 if nb == 1 else 1
        return stride(line, out_pitch) + [isa.store(
            m=block["mt"], acc_base=block["acc_slot"] * acc_half,
            qp_base=block["qp_slot"] * q_half, bypass=bypass,
            remote=out_base + block["m0"] * out_pitch + block["col"] * ro)]

    words = [quant.configure] + loads(steps[0]) + [isa.fence()]
    pending = None
    for index, step in enumerate(steps):
        if step["first"]:
            slots["acc"] += 1
        step["acc_slot"] = slots["acc"] % 2
        k_in_a = step["k0"] if plan.a_resident else 0
        words.append(isa.compute(m=step["mt"], k_blocks=step["kc"],
                                 a_base=step["a_slot"] * a_half + k_in_a * step["mt"],
                                 w_base=step["w_slot"] * w_half,
                                 acc_base=step["acc_slot"] * acc_half,
                                 accumulate=not step["first"]))
        if pending is not None:
            words += store(pending)
            pending = None
        if index + 1 < len(steps):
            words += loads(steps[index + 1])
        if step["last"]:
            pending = step
        words.append(isa.fence())
    words += store(pending) + [isa.fence()]
    return Program(limits=lim, commands=words, shape=(m, n), n=n, m=m, bypass=bypass,
                   memory=memory, output="memory", out_base=out_base, out_pitch=out_pitch)


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
