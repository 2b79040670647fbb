"""cocotb tests of :class:`chipknit.rtl.npu.engine.GemmEngine`, bit-exact against NumPy.

Scoreboard: :func:`chipknit.tb.models.npu.qgemm` (requantised int8) and
:func:`~chipknit.tb.models.npu.gemm_int32` (raw accumulators, read out with ``bypass``).
Random shapes (K and N not multiples of the array, M from 1), zero points, per-channel
scales including multipliers >= 1, ReLU/ReLU6 clamps, accumulation across K blocks and
across commands, random backpressure on the output stream, a reset mid-computation.
"""

import random

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.npu import gemm_int32, qgemm, quantize_multiplier
from chipknit.tb.stream import burst_pauses, random_pauses
from chipknit.tb.tests.npu_driver import EngineDriver, cycle, engine_params, pack

TIMEOUT_US = 5000


def rng() -> np.random.Generator:
    return np.random.default_rng(random.getrandbits(32))


def random_layer(gen, m, k, n, *, extreme=False):
    """Operands and per-channel parameters of a random quantised layer."""
    if extreme:
        a = gen.choice([-128, 127], (m, k))
        w = gen.choice([-128, 127], (k, n))
    else:
        a = gen.integers(-128, 128, (m, k))
        w = gen.integers(-128, 128, (k, n))
    bias = gen.integers(-(1 << 14), 1 << 14, n)
    pairs = [quantize_multiplier(float(scale))
             for scale in np.exp(gen.uniform(np.log(1e-5), np.log(4.0), n))]
    multiplier = np.array([pair[0] for pair in pairs])
    shift = np.array([pair[1] for pair in pairs])
    # Some raw int32 multipliers and shifts too: any value must match the model.
    wild = gen.random(n) < 0.2
    multiplier[wild] = gen.integers(-(1 << 31), 1 << 31, wild.sum())
    shift[wild] = gen.integers(-31, 8, wild.sum())
    return a, w, bias, multiplier, shift


def random_output_stage(gen):
    out_zero_point = int(gen.integers(-128, 128))
    kind = gen.integers(3)
    if kind == 0:
        return out_zero_point, -128, 127                      # no activation
    if kind == 1:
        return out_zero_point, out_zero_point, 127            # ReLU
    six = int(min(127, out_zero_point + gen.integers(1, 100)))
    return out_zero_point, out_zero_point, six                # ReLU6


class EngineBench:
    def __init__(self, dut, sink_pauses=None):
        self.dut = dut
        self.params = engine_params(design_params())
        start_clock(dut)
        self.driver = EngineDriver(dut, self.params, sink_pauses)

    def max_shape(self):
        p = self.params
        return p.acc_depth // 2, p.array.rows * 3, p.array.cols * 2 + 1

    async def check_layer(self, m, k, n, *, extreme=False, gen=None):
        gen = gen or rng()
        a, w, bias, multiplier, shift = random_layer(gen, m, k, n, extreme=extreme)
        a_zp, w_zp = (int(v) for v in gen.integers(-128, 128, 2))
        out_zp, act_min, act_max = random_output_stage(gen)
        driver = self.driver
        await driver.load_gemm(a, w, bias, multiplier, shift, a_zero_point=a_zp,
                               w_zero_point=w_zp)
        got = await driver.run_gemm(m, k, n, a_zero_point=a_zp, w_zero_point=w_zp,
                                    out_zero_point=out_zp, act_min=act_min, act_max=act_max)
        expected = qgemm(a, w, bias, multiplier, shift, a_zero_point=a_zp,
                         w_zero_point=w_zp, out_zero_point=out_zp, act_min=act_min,
                         act_max=act_max)
        _compare(got.result, expected, f"{m}x{k}x{n} zp a {a_zp} w {w_zp} out {out_zp} "
                 f"clamp [{act_min}, {act_max}]")
        raw = await driver.run_gemm(m, k, n, a_zero_point=a_zp, w_zero_point=w_zp,
                                    bypass=True)
        _compare(raw.result, gemm_int32(a, w, a_zp, w_zp), f"raw accumulators {m}x{k}x{n}")
        return got


def _compare(got, expected, what):
    if not np.array_equal(got, expected):
        where = np.argwhere(got != expected)
        i, j = where[0]
        raise AssertionError(f"{what}: {len(where)} of {expected.size} results differ; first "
                             f"at [{i}, {j}]: got {got[i, j]}, model {expected[i, j]}")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_layers_bit_exact(dut):
    """Random shapes, zero points, scales and clamps; the output stream stalls at random."""
    bench = EngineBench(dut, sink_pauses=random_pauses(0.3))
    await reset(dut)
    gen = rng()
    max_m, max_k, max_n = bench.max_shape()
    for _ in range(6):
        m = int(gen.integers(1, max_m + 1))
        k = int(gen.integers(1, max_k + 1))
        n = int(gen.integers(1, max_n + 1))
        await bench.check_layer(m, k, n, gen=gen)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def extremes_and_many_k_blocks(dut):
    """Operands all -128/127, extreme zero points, K spanning every K block the W pad holds."""
    bench = EngineBench(dut, sink_pauses=burst_pauses(6, 6))
    await reset(dut)
    gen = rng()
    p = bench.params
    rows, cols = p.array.rows, p.array.cols
    k_max = min(p.w_depth // 2, p.a_depth // 4)
    a = np.full((4, k_max), -128)
    w = np.full((k_max, cols), 127)
    bias = np.zeros(cols, dtype=np.int64)
    multiplier = np.full(cols, (1 << 31) - 1)
    shift = np.zeros(cols, dtype=np.int64)
    driver = bench.driver
    # (a - 127) * (w + 128) = -255 * 255 at every K: the most negative product there is.
    await driver.load_gemm(a, w, bias, multiplier, shift, a_zero_point=127,
                           w_zero_point=-128)
    raw = await driver.run_gemm(4, k_max, cols, a_zero_point=127, w_zero_point=-128,
                                bypass=True)
    _compare(raw.result, gemm_int32(a, w, 127, -128), f"raw 4x{k_max}x{cols}")
    assert raw.result[0, 0] == -255 * 255 * k_max
    for _ in range(2):
        await bench.check_layer(int(gen.integers(1, 9)), int(gen.integers(1, 4 * rows)),
                                int(gen.integers(1, 2 * cols + 1)), extreme=True, gen=gen)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def accumulate_across_commands(dut):
    """A GEMM split over K into commands; later ones accumulate with their own zero point."""
    bench = EngineBench(dut)
    await reset(dut)
    gen = rng()
    p = bench.params
    rows, cols = p.array.rows, p.array.cols
    m, blocks = 5, 3
    driver = bench.driver
    expected = np.zeros((m, cols), dtype=np.int64)
    a_all = gen.integers(-128, 128, (m, blocks * rows))
    w_all = gen.integers(-128, 128, (blocks * rows, cols))
    zero_points = [(int(gen.integers(-128, 128)), int(gen.integers(-128, 128)))
                   for _ in range(blocks)]
    a_row_bits, w_rows = {}, {}
    for block, (a_zp, w_zp) in enumerate(zero_points):
        a_part = a_all[:, block * rows:(block + 1) * rows]
        w_part = w_all[block * rows:(block + 1) * rows]
        expected += gemm_int32(a_part, w_part, a_zp, w_zp)
        for i in range(m):
            a_row_bits[block * m + i] = a_part[i]
        for r in range(rows):
            w_rows[block * rows + r] = w_part[r]
    await driver.write("a_wr", {addr: pack(data.ArrayLayout(8, rows), row)
                                for addr, row in a_row_bits.items()})
    await driver.write("w_wr", {addr: pack(data.ArrayLayout(8, cols), row)
                                for addr, row in w_rows.items()})
    # All three go in at once: the second and third are taken while the first computes.
    for block, (a_zp, w_zp) in enumerate(zero_points):
        driver.compute(m=m, k_blocks=1, a_base=block * m, w_base=block * rows, acc_base=3,
                       accumulate=int(block > 0), a_zero_point=a_zp, w_zero_point=w_zp)
    await driver.wait_until(lambda: driver.done_count == blocks)
    await ClockCycles(dut.clk, 2)
    assert not int(dut.busy.value), "busy after every command was done"
    driver.requantise(m=m, acc_base=3, bypass=1)
    await driver.wait_until(lambda: len(driver.beats) == m * p.groups)
    got = np.array([sum(driver.beats[i * p.groups:(i + 1) * p.groups], []) for i in range(m)])
    _compare(got, expected, "accumulated over commands")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def overlapping_accumulators_back_to_back(dut):
    """Back-to-back commands whose accumulator rows overlap the previous command's last
    rows: the next command's first row follows one cycle (then two, then three cycles)
    after the row it adds to, inside the accumulator's read-to-write pipeline (the engine
    forwards it)."""
    bench = EngineBench(dut)
    await reset(dut)
    gen = rng()
    p = bench.params
    rows, cols = p.array.rows, p.array.cols
    m = 2 * rows + cols + 1      # long enough that the weight reloads leave no gap
    # Command j's row 0 adds to the row command j-1 wrote 1 (j = 1), 2 (j = 2) and 3
    # (j = 3) cycles earlier.
    bases = [0, m - 1, 2 * m - 3, 3 * m - 6]
    assert bases[-1] + m <= p.acc_depth
    driver = bench.driver
    total = bases[-1] + m

    async def read_accumulators():
        driver.beats.clear()
        driver.requantise(m=total, acc_base=0, bypass=1)
        await driver.wait_until(lambda: len(driver.beats) == total * p.groups)
        return np.array([sum(driver.beats[i * p.groups:(i + 1) * p.groups], [])
                         for i in range(total)], dtype=np.int64)

    # Rows that only later commands write accumulate onto what is there already.
    expected = await read_accumulators()
    a_rows, w_rows = {}, {}
    commands = []
    for j, acc_base in enumerate(bases):
        a = gen.integers(-128, 128, (m, rows))
        w = gen.integers(-128, 128, (rows, cols))
        a_zp, w_zp = (int(v) for v in gen.integers(-128, 128, 2))
        product = gemm_int32(a, w, a_zp, w_zp)
        if j == 0:
            expected[acc_base:acc_base + m] = product
        else:
            expected[acc_base:acc_base + m] += product
        for i in range(m):
            a_rows[j * m + i] = pack(data.ArrayLayout(8, rows), a[i])
        for r in range(rows):
            w_rows[j * rows + r] = pack(data.ArrayLayout(8, cols), w[r])
        commands.append(dict(m=m, k_blocks=1, a_base=j * m, w_base=j * rows,
                             acc_base=acc_base, accumulate=int(j > 0), a_zero_point=a_zp,
                             w_zero_point=w_zp))
    await driver.write("a_wr", a_rows)
    await driver.write("w_wr", w_rows)
    done_cycles = []
    for command in commands:
        driver.compute(**command)
    while len(done_cycles) < len(commands):
        await RisingEdge(dut.clk)
        if int(dut.done.value):
            done_cycles.append(cycle())
    # Back to back: each command's last row m cycles after the previous one's.
    assert [done_cycles[j + 1] - done_cycles[j] for j in range(2)] == [m, m], \
        f"commands not back to back: done at {done_cycles}"
    expected = (expected + (1 << 31)) % (1 << 32) - (1 << 31)      # int32 wraps
    _compare(await read_accumulators(), expected, "overlapping accumulators")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def tiny_shapes_and_noop_commands(dut):
    """1x1x1 and other tiny GEMMs (the loader outruns the feeder); m=0 and k=0 are no-ops."""
    bench = EngineBench(dut, sink_pauses=random_pauses(0.5))
    await reset(dut)
    gen = rng()
    driver = bench.driver
    driver.compute(m=0, k_blocks=3)
    driver.compute(m=3, k_blocks=0)
    driver.requantise(m=0)
    await ClockCycles(dut.clk, 20)
    assert driver.done_count == 0 and not int(dut.busy.value) and not driver.beats, \
        "a zero-length command did something"
    for m, k, n in ((1, 1, 1), (1, 2, 1), (2, 1, 3), (3, 5, 2)):
        await bench.check_layer(m, k, n, gen=gen)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_mid_computation_then_clean_rerun(dut):
    """A reset while commands compute and results stream drops them all; the rerun is exact."""
    bench = EngineBench(dut, sink_pauses=random_pauses(0.3))
    await reset(dut)
    gen = rng()
    max_m, max_k, max_n = bench.max_shape()
    m, k, n = max_m, max_k, max_n
    a, w, bias, multiplier, shift = random_layer(gen, m, k, n)
    driver = bench.driver
    await driver.load_gemm(a, w, bias, multiplier, shift, a_zero_point=3)
    run = cocotb.start_soon(driver.run_gemm(m, k, n, a_zero_point=3))
    await driver.wait_until(lambda: driver.done_count >= 1 and len(driver.beats) >= 2)
    assert int(dut.busy.value) or int(dut.rq_busy.value), "nothing running at the reset"
    run.cancel()
    driver.stop()
    await reset(dut)
    await RisingEdge(dut.clk)
    for name in ("busy", "rq_busy", "done", "o__valid"):
        assert not int(getattr(dut, name).value), f"{name} high after reset"
    # Scratchpads survive a reset: rerun from what is already loaded.
    bench.driver = driver = EngineDriver(dut, bench.params, random_pauses(0.3))
    got = await driver.run_gemm(m, k, n, a_zero_point=3)
    _compare(got.result, qgemm(a, w, bias, multiplier, shift, a_zero_point=3),
             "rerun after reset")
