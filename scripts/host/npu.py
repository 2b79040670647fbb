"""NPU programs through a package's host bridge, written once for the simulation and the
boards.

:class:`NpuClient` drives one NPU tile's register window
(:data:`~chipknit.rtl.tiles.npu.NPU_REGISTERS`) and the memory tile its DMA reads and
writes: it loads a compiled program's operand images into memory, writes its commands
(asking ``free`` before it could overrun the queue), collects every status and checks it
against the program, and reads the result back. :func:`gemm_demo` is the end-to-end demo
(random int8 GEMMs on every NPU of a package and a small convolution layer, compared with
NumPy); a cocotb test awaits it
with an :class:`~chipknit.host.AsyncHost` on a simulation transport, ``python -m
chipknit.host gemm`` runs it on a board's serial port.

Everything here is ``async`` over the host API; nothing knows whether a simulator or a
serial cable is behind it. Waiting between status polls is the caller's ``pause`` (a
simulation passes clock cycles; on a board a host round trip is wait enough).
"""

from dataclasses import dataclass

import numpy as np

from chipknit.npu import isa
from chipknit.npu.compiler import Quantisation, check_statuses, compile_conv2d, compile_gemm
from chipknit.npu.machine import RemoteMemory
from chipknit.npu.model import qconv2d, qgemm, quantize_multiplier
from chipknit.rtl.package.config import Package
from chipknit.rtl.package.top import PackageTop
from chipknit.rtl.tiles.npu import NPU_REGISTERS

__all__ = ["WINDOW", "NpuClient", "NpuError", "npu_limits", "random_quantisation", "gemm_demo",
           "DEMO_SHAPES", "PROGRAM_BASE", "program_end"]

#: Byte offset of each register of an NPU tile's window.
WINDOW = {register.name: 4 * index for index, register in enumerate(NPU_REGISTERS)}
#: Where the demo's programs start in the memory tile (beats); below it stays free for
#: other host traffic.
PROGRAM_BASE = 1024
#: The demo's GEMM shapes (M, K, N), as multiples of the array: a tile edge, several K
#: chunks, ragged N.
DEMO_SHAPES = ((1, 1, 1), (2.0, 3.0, 1.5), (3.5, 2.5, 2.25))


def npu_limits(top: PackageTop, name: str) -> isa.Limits:
    """The compiler's view of NPU tile ``name`` of ``top``."""
    p = top.tile_params[name].queue
    e, t = p.engine, p.transaction
    return isa.Limits(rows=e.array.rows, cols=e.array.cols, lanes=e.requant_lanes,
                      a_depth=e.a_depth, w_depth=e.w_depth, acc_depth=e.acc_depth,
                      qp_depth=e.qp_depth, beat_bytes=t.beat_bytes, addr_width=t.addr_width,
                      max_beats=t.max_beats)


class NpuError(RuntimeError):
    """An NPU program did not finish as compiled (a status missing or wrong)."""


@dataclass
class NpuClient:
    """One NPU tile behind a host: its window at ``window_base``, operands and results in
    the memory tile at ``memory_base`` (byte addresses of the package's map).

    ``pause`` is awaited between status polls that found nothing (``None``: poll again at
    once). ``max_polls`` bounds the wait, so a dead tile is an error, not a hang. A tile that
    restarted under a program (its die was reset) is found at the first poll that finds no
    status: its ``issued`` count is below what this program brought it to.
    """
    host: object
    name: str
    window_base: int
    memory_base: int
    pause: object = None
    max_polls: int = 10_000

    async def _read(self, register: str) -> int:
        (value,) = await self.host.read(self.window_base + WINDOW[register], 1)
        return value

    async def collect(self, statuses: list) -> None:
        """Pop every waiting status record into ``statuses`` (decoded)."""
        while True:
            value = await self._read("status")
            if not value >> 31:
                return
            statuses.append(isa.decode_status(value & 0xFFFF))

    async def load(self, program) -> None:
        """Write the program's operand images into the memory tile."""
        for beat, blob in sorted(program.memory.items()):
            words = [int.from_bytes(blob[i:i + 4], "little") for i in range(0, len(blob), 4)]
            await self.host.write(self.memory_base + 4 * beat, words)

    async def issue(self, program, statuses: list) -> None:
        """Write every command; ``free`` is read only when the commands it last allowed are
        written (statuses arriving meanwhile go into ``statuses``)."""
        free = 0
        for index, word in enumerate(program.commands):
            polls = 0
            while not free:
                free = await self._read("free")
                if free:
                    break
                await self.collect(statuses)
                polls += 1
                if polls >= self.max_polls:
                    raise NpuError(f"{self.name}: the command queue stayed full for "
                                   f"{polls} polls at command {index} of "
                                   f"{len(program.commands)}")
                if self.pause is not None:
                    await self.pause()
            await self.host.write(self.window_base + WINDOW["command_lo"],
                                  [word & 0xFFFF_FFFF, word >> 32])
            free -= 1

    async def finish(self, program, statuses: list, first: int = 0,
                     issued: int | None = None) -> None:
        """Collect statuses until the program's are all in, then check them. With
        ``issued`` (the tile's count once every command was written), a poll that finds no
        new status also reads the count: lower means the tile restarted and lost them."""
        for _ in range(self.max_polls):
            before = len(statuses)
            await self.collect(statuses)
            if len(statuses) - first >= len(program.commands):
                break
            if issued is not None and len(statuses) == before:
                now = await self._read("issued")
                if now < issued:
                    raise NpuError(
                        f"{self.name}: the tile restarted under the program ({now} commands "
                        f"issued since its reset, {issued} expected): {len(program.commands)} "
                        f"commands, {len(statuses) - first} statuses came")
            if self.pause is not None:
                await self.pause()
        mine = statuses[first:]
        if len(mine) != len(program.commands):
            raise NpuError(f"{self.name}: {len(mine)} statuses for {len(program.commands)} "
                           f"commands after {self.max_polls} polls")
        base = mine[0][2]
        try:
            check_statuses(program, [(c, o, (s - base) % 256) for c, o, s in mine])
        except Exception as error:   # the compiler's own complaint, with the tile's name
            raise NpuError(f"{self.name}: {error}") from error

    async def execute(self, program, statuses: list | None = None) -> None:
        """Issue the commands and wait for every status; check them."""
        statuses = [] if statuses is None else statuses
        first = len(statuses)
        issued = await self._read("issued") + len(program.commands)
        await self.issue(program, statuses)
        await self.finish(program, statuses, first, issued)

    async def read_result(self, program) -> np.ndarray:
        lim = program.limits
        blocks = -(-program.n // lim.cols)
        row_beats = lim.row_beats(program.out_target)
        remote = RemoteMemory(lim.beat_bytes)
        for i in range(program.m):
            beat = program.out_base + i * program.out_pitch
            words = await self.host.read(self.memory_base + 4 * beat, blocks * row_beats)
            remote.write(beat, b"".join(w.to_bytes(4, "little") for w in words))
        return program.result(memory=remote)

    async def run(self, program, statuses: list | None = None) -> np.ndarray:
        """Load, execute, read back: the program's result."""
        await self.load(program)
        await self.execute(program, statuses)
        return await self.read_result(program)


def random_quantisation(gen: np.random.Generator, n: int) -> Quantisation:
    """A plausible int8 layer's requantisation for ``n`` output channels: per-channel
    scales from 2^-16 to 4, biases, zero points and a ReLU-like clamp."""
    pairs = [quantize_multiplier(float(s)) for s in np.exp2(gen.uniform(-16, 2, n))]
    out_zp = int(gen.integers(-128, 128))
    return Quantisation(bias=gen.integers(-(1 << 14), 1 << 14, n),
                        multiplier=np.array([p[0] for p in pairs]),
                        shift=np.array([p[1] for p in pairs]),
                        a_zero_point=int(gen.integers(-128, 128)),
                        w_zero_point=int(gen.integers(-128, 128)),
                        out_zero_point=out_zp, act_min=out_zp, act_max=127)


def _shape(shape, limits) -> tuple[int, int, int]:
    m, k, n = shape
    return (max(1, round(m * limits.acc_depth)), max(1, round(k * limits.rows)),
            max(1, round(n * limits.cols)))


def program_end(program) -> int:
    """The first memory beat above ``program``'s operand images and its result."""
    beat_bytes = program.limits.beat_bytes
    end = max(beat + -(-len(blob) // beat_bytes) for beat, blob in program.memory.items())
    return max(end, program.out_base + program.m * program.out_pitch)


def _end(program, what, memory) -> int:
    """:func:`program_end`, refusing a program that runs past the memory tile."""
    end = program_end(program)
    if program.limits.beat_bytes * end > memory.size:
        raise ValueError(f"{what} does not fit the memory tile ({memory.size} B)")
    return end


async def gemm_demo(host, package: Package | PackageTop, *, shapes=DEMO_SHAPES, seed: int = 1,
                    conv: bool = True, pause=None, log=print) -> dict:
    """Random int8 GEMMs on every NPU of ``package``, operands and results in its memory
    tile, each compared with NumPy (:func:`~chipknit.npu.model.qgemm`).

    ``shapes`` are (M, K, N) as fractions of each tile's accumulator depth, rows and
    columns (so the same demo fits any array); they run round robin over the NPU tiles,
    each program above the last in memory; then (``conv``) a 3x3 convolution layer on the
    next tile, lowered by im2col (:func:`~chipknit.npu.compiler.compile_conv2d`) and
    compared with :func:`~chipknit.npu.model.qconv2d`. Returns ``{"gemms": [...], "convs":
    [...], "exact": bool}``; a wrong result is reported (first difference), not raised.
    """
    top = package if isinstance(package, PackageTop) else PackageTop(package)
    memory = top.region("memory")
    npus = [entry for entry in top.map if entry.kind == "npu"]
    if not npus:
        raise ValueError(f"Package {top.package.name!r} has no NPU tile")
    gen = np.random.default_rng(seed)
    base, results = PROGRAM_BASE, []

    def record(npu, what, kind, shape, program, got, want):
        entry = {"npu": npu, "kind": kind, "shape": shape, "commands": len(program.commands),
                 "exact": bool(np.array_equal(got, want))}
        if not entry["exact"]:
            where = tuple(int(i) for i in np.argwhere(got != want)[0])
            entry["first_difference"] = {"at": list(where), "got": int(got[where]),
                                         "want": int(want[where])}
        results.append(entry)
        if log is not None:
            log(f"{npu}: {what}, {len(program.commands)} commands, "
                f"{'exact' if entry['exact'] else 'WRONG'}")
    for index, shape in enumerate(shapes):
        window = npus[index % len(npus)]
        limits = npu_limits(top, window.name)
        m, k, n = _shape(shape, limits)
        a = gen.integers(-128, 128, (m, k))
        w = gen.integers(-128, 128, (k, n))
        quant = random_quantisation(gen, n)
        program = compile_gemm(a, w, quant, limits, memory_base=base)
        end = _end(program, f"{m}x{k}x{n}", memory)
        client = NpuClient(host, window.name, window.base, memory.base, pause=pause)
        got = await client.run(program)
        want = qgemm(a, w, quant.bias, quant.multiplier, quant.shift,
                     a_zero_point=quant.a_zero_point, w_zero_point=quant.w_zero_point,
                     out_zero_point=quant.out_zero_point, act_min=quant.act_min,
                     act_max=quant.act_max)
        record(window.name, f"{m}x{k}x{n} GEMM", "gemm", [m, k, n], program, got, want)
        base = end
    if conv:
        # A small 3x3 convolution layer (NHWC, padding 1), lowered by im2col on the host.
        window = npus[len(shapes) % len(npus)]
        limits = npu_limits(top, window.name)
        cin, cout = 3, limits.cols + 1
        x = gen.integers(-128, 128, (6, 6, cin))
        weights = gen.integers(-128, 128, (3, 3, cin, cout))
        quant = random_quantisation(gen, cout)
        program = compile_conv2d(x, weights, quant, limits, padding=1, memory_base=base)
        _end(program, "the convolution", memory)
        client = NpuClient(host, window.name, window.base, memory.base, pause=pause)
        got = await client.run(program)
        want = qconv2d(x, weights, quant.bias, quant.multiplier, quant.shift, padding=1,
                       x_zero_point=quant.a_zero_point, w_zero_point=quant.w_zero_point,
                       out_zero_point=quant.out_zero_point, act_min=quant.act_min,
                       act_max=quant.act_max)
        record(window.name, f"6x6x{cin} 3x3 conv to {cout} channels", "conv", list(x.shape),
               program, np.asarray(got).reshape(want.shape), want)
    return {"gemms": [r for r in results if r["kind"] == "gemm"],
            "convs": [r for r in results if r["kind"] == "conv"],
            "exact": all(r["exact"] for r in results)}
