"""cocotb driver for the bare NPU GEMM engine: packs its commands, loads its scratchpads.

Not a test module itself; ``npu_engine`` and ``npu_rate`` use it. The scratchpad layout
(K and N padded to the array, activations padded with their zero point) is the host
compiler's, :func:`chipknit.npu.compiler.scratchpad_images`; here it is sequenced with the
engine's own compute and requantise streams (no command queue).
"""

import math
from dataclasses import dataclass

import cocotb
import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from chipknit.npu import isa
from chipknit.npu.compiler import Quantisation, scratchpad_images
from chipknit.rtl.npu.array import ArrayParams
from chipknit.rtl.npu.engine import (
    EngineParams,
    compute_command_layout,
    requant_command_layout,
)
from chipknit.rtl.npu.requant import channel_layout
from chipknit.tb.dut import CLOCK_PERIOD_NS
from chipknit.tb.stream import StreamSink, StreamSource

__all__ = ["pack", "unpack_signed", "engine_params", "EngineDriver", "GemmRun"]


def pack(layout, value) -> int:
    """An integer holding ``value`` (nested dicts/lists/ints) laid out as ``layout``."""
    if isinstance(layout, data.Layout):
        bits = 0
        for key, member in layout:
            if isinstance(value, dict):
                item = value.get(key, 0)
            else:
                item = value[key]
            bits |= pack(member.shape, item) << member.offset
        return bits
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)


def unpack_signed(bits: int, width: int, count: int) -> list[int]:
    """``count`` signed ``width``-bit values from an integer, lowest first."""
    out = []
    for index in range(count):
        value = (bits >> (width * index)) & ((1 << width) - 1)
        out.append(value - (1 << width) if value >> (width - 1) else value)
    return out


def engine_params(params: dict) -> EngineParams:
    """The engine's parameters from the testbench's (JSON) parameters."""
    return EngineParams(
        array=ArrayParams(rows=params["rows"], cols=params["cols"], mac=params["mac"]),
        a_depth=params["a_depth"], w_depth=params["w_depth"], acc_depth=params["acc_depth"],
        qp_depth=params["qp_depth"], requant_lanes=params["lanes"])


def cycle() -> int:
    return int(get_sim_time("ns")) // CLOCK_PERIOD_NS


@dataclass
class GemmRun:
    """What :meth:`EngineDriver.gemm` measured."""
    result: np.ndarray
    start: int
    compute_end: int
    end: int

    @property
    def compute_cycles(self) -> int:
        return self.compute_end - self.start

    @property
    def total_cycles(self) -> int:
        return self.end - self.start


class EngineDriver:
    """Drives a :class:`~chipknit.rtl.npu.engine.GemmEngine` (the clock must be running)."""

    def __init__(self, dut, params: EngineParams, sink_pauses=None):
        self.dut = dut
        self.p = params
        self.cmd_layout = compute_command_layout(params)
        self.rq_layout = requant_command_layout(params)
        for port in ("a_wr", "w_wr", "qp_wr"):
            getattr(dut, f"{port}__en").value = 0
        self.cmd = StreamSource(dut, "cmd", dut.clk)
        self.rq_cmd = StreamSource(dut, "rq_cmd", dut.clk)
        self.beats: list[list[int]] = []
        self.out = StreamSink(dut, "o", dut.clk, sink_pauses, callback=self._beat)
        self.done_count = 0
        self.last_done = 0
        self._tasks = [cocotb.start_soon(self._count_done())]

    def stop(self):
        for driver in (self.cmd, self.rq_cmd, self.out):
            driver.stop()
        for task in self._tasks:
            task.cancel()

    def _beat(self, payload):
        self.beats.append(unpack_signed(payload, 32, self.p.requant_lanes))

    async def _count_done(self):
        while True:
            await RisingEdge(self.dut.clk)
            if int(self.dut.done.value):
                self.done_count += 1
                self.last_done = cycle()

    async def wait_until(self, condition):
        while not condition():
            await RisingEdge(self.dut.clk)

    async def write(self, port: str, rows: dict[int, int]):
        """Write packed rows ``{address: bits}`` through a scratchpad write port."""
        addr, payload, en = (getattr(self.dut, f"{port}__{name}")
                             for name in ("addr", "data", "en"))
        for address, bits in rows.items():
            addr.value = address
            payload.value = bits
            en.value = 1
            await RisingEdge(self.dut.clk)
        en.value = 0

    def compute(self, **fields):
        self.cmd.send_nowait(pack(self.cmd_layout, fields))

    def requantise(self, **fields):
        self.rq_cmd.send_nowait(pack(self.rq_layout, fields))

    def check_fits(self, m, k, n):
        """Raise ValueError unless an M×K by K×N GEMM fits the scratchpads in one go."""
        rows, cols = self.p.array.rows, self.p.array.cols
        kb, nb = math.ceil(k / rows), math.ceil(n / cols)
        needs = {"a_depth": m * kb, "w_depth": nb * kb * rows,
                 "qp_depth": nb * self.p.groups, "acc_depth": m}
        for name, need in needs.items():
            if need > getattr(self.p, name):
                raise ValueError(f"GEMM {m}x{k}x{n} needs {name} >= {need}")

    async def load_gemm(self, a, w, bias, multiplier, shift, *, a_zero_point=0,
                        w_zero_point=0):
        """Write A, W and the channel parameters in the layout :meth:`run_gemm` uses."""
        p = self.p
        rows, cols, lanes = p.array.rows, p.array.cols, p.requant_lanes
        m, k = a.shape
        self.check_fits(m, k, w.shape[1])
        limits = isa.Limits(rows=rows, cols=cols, lanes=lanes, a_depth=p.a_depth,
                            w_depth=p.w_depth, acc_depth=p.acc_depth, qp_depth=p.qp_depth)
        quant = Quantisation(bias=np.asarray(bias), multiplier=np.asarray(multiplier),
                             shift=np.asarray(shift), a_zero_point=a_zero_point,
                             w_zero_point=w_zero_point)
        images = scratchpad_images(a, w, quant, limits, m_tile=m)   # one M tile
        layouts = {"a": data.ArrayLayout(8, rows), "w": data.ArrayLayout(8, cols),
                   "qp": data.ArrayLayout(channel_layout, lanes)}
        for name, image in images.items():
            if name == "qp":
                rows_bits = {r: pack(layouts[name], [
                    {"bias": b, "multiplier": mu, "shift": sh} for b, mu, sh in values])
                    for r, values in image.items()}
            else:
                rows_bits = {r: pack(layouts[name], list(values)) for r, values in image.items()}
            await self.write(f"{name}_wr", rows_bits)

    async def run_gemm(self, m, k, n, *, a_zero_point=0, w_zero_point=0, out_zero_point=0,
                       act_min=-128, act_max=127, bypass=False) -> GemmRun:
        """Compute and requantise a GEMM loaded by :meth:`load_gemm`; returns M×N results.

        One compute command per column block (all K blocks), requantised while the next
        block computes when the accumulators hold two blocks (double buffering).
        """
        rows, cols, groups = self.p.array.rows, self.p.array.cols, self.p.groups
        kb, nb = math.ceil(k / rows), math.ceil(n / cols)
        double = 2 * m <= self.p.acc_depth
        beats_before = len(self.beats)
        done_before = self.done_count
        per_block = m * groups
        finished = [False] * nb

        async def requantise_all():
            for col in range(nb):
                await self.wait_until(lambda col=col: self.done_count - done_before > col)
                self.requantise(m=m, acc_base=(col % 2) * m if double else 0,
                                qp_base=col * groups, out_zero_point=out_zero_point,
                                act_min=act_min, act_max=act_max, bypass=int(bypass))
                await self.wait_until(lambda col=col: len(self.beats) - beats_before
                                      >= (col + 1) * per_block)
                finished[col] = True

        start = cycle()
        task = cocotb.start_soon(requantise_all())
        for col in range(nb):
            lag = 2 if double else 1
            if col >= lag:
                await self.wait_until(lambda col=col, lag=lag: finished[col - lag])
            self.compute(m=m, k_blocks=kb, a_base=0, w_base=col * kb * rows,
                         acc_base=(col % 2) * m if double else 0, accumulate=0,
                         a_zero_point=a_zero_point, w_zero_point=w_zero_point)
        await task
        end = cycle()
        compute_end = self.last_done
        beats = self.beats[beats_before:]
        out = np.zeros((m, nb * cols), dtype=np.int64)
        for col in range(nb):
            for i in range(m):
                for group in range(groups):
                    beat = beats[col * per_block + i * groups + group]
                    first = col * cols + group * self.p.requant_lanes
                    out[i, first:first + len(beat)] = beat
        return GemmRun(result=out[:, :n], start=start, compute_end=compute_end, end=end)
