"""Measures the NPU tile fed over the fabric (``chipknit bench npu``, *utilisation over
fabric*): an S×S×S GEMM compiled to a LOAD/COMPUTE/STORE program, its operands and results
moving through the DMA to a :class:`~chipknit.tb.tests.npu_dma.MemoryTarget` that delivers
at most B bytes per cycle with a fixed latency.

``CHIPKNIT_NPU_FABRIC`` (JSON) gives ``{"size": S, "bandwidths": [B, ...], "latency": L}``;
per B it writes to ``CHIPKNIT_RESULT_FILE`` the cycles from the first command to the last
status, the remote bytes moved, the beats the memory served, and whether the result matched
the model (it asserts it did, so a benchmark never reports a wrong computation).

``CHIPKNIT_NPU_FABRIC_TRACE`` (a path; Verilator, which makes internal signals visible):
also writes a per-cycle trace of each point, one character per cycle and signal (see
:data:`TRACE_SIGNALS`), for finding where the cycles go.
"""

import json
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from chipknit.npu.compiler import compile_gemm
from chipknit.npu.machine import RemoteMemory
from chipknit.tb.dut import reset
from chipknit.tb.tests.npu_dma import (
    BENCH_ENV,
    RESULT_ENV,
    CocotbBackend,
    TileBench,
    expected,
    random_quant,
)

TRACE_ENV = "CHIPKNIT_NPU_FABRIC_TRACE"

#: Traced per cycle: name → path from the top (all 1-bit).
TRACE_SIGNALS = {
    "array": "engine.array.a_valid",          # an activation row enters the array
    "ecmd_v": "engine.cmd__valid", "ecmd_r": "engine.cmd__ready",
    "dcmd_v": "dma.cmd__valid", "dcmd_r": "dma.cmd__ready",
    "storing": "dma.storing",
    "cur": "cur_valid", "fence": "cur_fence",
    "req_v": "bus__request__valid", "req_r": "bus__request__ready",
    "rsp_v": "bus__response__valid", "wd_v": "bus__wdata__valid", "wd_r": "bus__wdata__ready",
    "rq_v": "engine.o__valid", "rq_r": "engine.o__ready",
}


async def _trace(dut, rows):
    handles = {}
    for name, path in TRACE_SIGNALS.items():
        handle = dut
        for part in path.split("."):
            handle = getattr(handle, part)
        handles[name] = handle
    while True:
        await RisingEdge(dut.clk)
        rows.append("".join(str(int(h.value)) for h in handles.values()))


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def utilisation_over_fabric(dut):
    config = json.loads(os.environ.get(BENCH_ENV, '{"size": 16, "bandwidths": [1.0]}'))
    size, latency = config["size"], config.get("latency", 20)
    gen = np.random.default_rng(random.getrandbits(32))
    bench = TileBench(dut, pauses=0, memory_kwargs={"latency": (latency, latency)})
    await reset(dut)
    lim = bench.limits
    a, w = gen.integers(-128, 128, (size, size)), gen.integers(-128, 128, (size, size))
    q = random_quant(gen, size)
    program = compile_gemm(a, w, q, lim)
    points, traces = [], []
    for bandwidth in config["bandwidths"]:
        bench.memory = bench.target.memory = RemoteMemory(lim.beat_bytes)
        bench.target.bytes_per_cycle = bandwidth
        bench.target.beats = 0
        backend = CocotbBackend(bench)
        first = len(bench.statuses)
        rows = []
        tracer = cocotb.start_soon(_trace(dut, rows)) if TRACE_ENV in os.environ else None
        got, _ = await backend.run(program)
        if tracer is not None:
            tracer.cancel()
            traces.append({"bytes_per_cycle": bandwidth, "signals": list(TRACE_SIGNALS),
                           "status_cycles": bench.status_cycles[first:],
                           "statuses": bench.statuses[first:], "rows": rows})
        start = bench.status_cycles[first] if len(bench.status_cycles) > first else 0
        # When each COMPUTE's status left, from the first status: the per-step trace.
        trace = [cycle - start for (_, opcode, _), cycle in
                 zip(bench.statuses[first:], bench.status_cycles[first:], strict=True)
                 if opcode == 2]
        # The memory never served more than B bytes per cycle (plus its bucket).
        served = bench.target.beats * lim.beat_bytes
        assert served <= bandwidth * backend.cycles + 2 * max(lim.beat_bytes, 2 * bandwidth), \
            f"{served} bytes in {backend.cycles} cycles is more than {bandwidth} B/cycle"
        exact = bool(np.array_equal(got, expected(a, w, q)))
        assert exact, f"{size}^3 GEMM over the fabric at {bandwidth} B/cycle differs"
        points.append({"bytes_per_cycle": bandwidth, "cycles": backend.cycles,
                       "beats": bench.target.beats, "commands": len(program.commands),
                       "bit_exact": exact, "compute_done_cycles": trace})
        dut._log.info(f"B={bandwidth}: {backend.cycles} cycles, bit exact {exact}")
    if traces:
        with open(os.environ[TRACE_ENV], "w") as file:
            json.dump({"commands": program.commands, "points": traces}, file)
    if RESULT_ENV in os.environ:
        with open(os.environ[RESULT_ENV], "w") as file:
            json.dump({"points": points, "beat_bytes": lim.beat_bytes}, file)
