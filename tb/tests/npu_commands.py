"""cocotb tests of :class:`chipknit.rtl.npu.commands.CommandQueue`, bit-exact against NumPy.

Programs are encoded with :mod:`chipknit.tb.models.npu_isa`; results are checked against
:func:`~chipknit.tb.models.npu.qgemm` / :func:`~chipknit.tb.models.npu.gemm_int32`, statuses
against :func:`~chipknit.tb.models.npu_isa.expected_status` (one per command, in order, with
consecutive sequence numbers). Random pauses on the command, status and result streams.
"""

import math
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models import npu_isa as isa
from chipknit.tb.models.npu import gemm_int32, qgemm
from chipknit.tb.stream import StreamSink, StreamSource, random_pauses
from chipknit.tb.tests.npu_driver import EngineDriver, cycle, engine_params, unpack_signed
from chipknit.tb.tests.npu_engine import _compare, random_layer, random_output_stage

TIMEOUT_US = 5000


def rng() -> np.random.Generator:
    return np.random.default_rng(random.getrandbits(32))


def hold_then(cycles, then):
    """Pause for ``cycles`` cycles, then as ``then``."""
    for _ in range(cycles):
        yield True
    yield from then


class QueueBench:
    """Drives the queue's command stream and collects statuses and results."""

    # The scratchpad loaders of the engine's driver (they use only p, dut and write).
    write = EngineDriver.write
    check_fits = EngineDriver.check_fits
    load_gemm = EngineDriver.load_gemm

    def __init__(self, dut, status_pauses=None, out_pauses=None):
        self.dut = dut
        self.p = engine_params(design_params())
        p = self.p
        self.limits = isa.Limits(rows=p.array.rows, cols=p.array.cols, lanes=p.requant_lanes,
                                 a_depth=p.a_depth, w_depth=p.w_depth,
                                 acc_depth=p.acc_depth, qp_depth=p.qp_depth)
        start_clock(dut)
        self.start(status_pauses, out_pauses)

    def start(self, status_pauses=None, out_pauses=None):
        for port in ("a_wr", "w_wr", "qp_wr"):
            getattr(self.dut, f"{port}__en").value = 0
        self.sent: list[int] = []
        self.statuses: list[tuple[int, int, int, int]] = []    # code, opcode, seq, cycle
        self.beats: list[list[int]] = []
        self.beat_cycles: list[int] = []
        self.cmd = StreamSource(self.dut, "cmd", self.dut.clk, random_pauses(0.2))
        self.status = StreamSink(self.dut, "status", self.dut.clk, status_pauses,
                                 callback=self._status)
        self.out = StreamSink(self.dut, "o", self.dut.clk, out_pauses, callback=self._beat)

    def stop(self):
        for driver in (self.cmd, self.status, self.out):
            driver.stop()

    def _status(self, word):
        self.statuses.append((*isa.decode_status(word), cycle()))

    def _beat(self, payload):
        self.beats.append(unpack_signed(payload, 32, self.p.requant_lanes))
        self.beat_cycles.append(cycle())

    def send(self, words):
        self.sent.extend(words)
        self.cmd.send_all(words)

    async def wait_until(self, condition):
        while not condition():
            await RisingEdge(self.dut.clk)

    async def finish(self):
        """Wait for every status; check each against the ISA's rules, in order."""
        await self.wait_until(lambda: len(self.statuses) == len(self.sent))
        await ClockCycles(self.dut.clk, 3)
        assert len(self.statuses) == len(self.sent), "a status without a command"
        assert not int(self.dut.busy.value), "busy after every status"
        pairs = zip(self.sent, self.statuses, strict=True)
        for index, (word, (code, opcode, seq, _)) in enumerate(pairs):
            expected = isa.expected_status(word, self.limits)
            assert (code, opcode, seq) == (expected, word & 15, index % 256), \
                f"command {index} ({word:#018x}): status {code} opcode {opcode} seq {seq}, " \
                f"expected {expected!r} opcode {word & 15} seq {index % 256}"

    def gemm_program(self, m, k, n, config, *, bypass=False, gen=None, extra=None):
        """CONFIGURE, then per column block COMPUTE (maybe split over K, accumulating),
        FENCE, REQUANTISE; accumulator halves alternate (block j+1 computes while j
        requantises). ``extra(col)`` may return words to put after the compute."""
        rows, cols, groups = self.p.array.rows, self.p.array.cols, self.p.groups
        kb, nb = math.ceil(k / rows), math.ceil(n / cols)
        assert 2 * m <= self.p.acc_depth
        words = [isa.configure(**config)]
        for col in range(nb):
            half = (col % 2) * m
            w_base = col * kb * rows
            split = int(gen.integers(1, kb)) if gen is not None and kb > 1 else kb
            words.append(isa.compute(m=m, k_blocks=split, w_base=w_base, acc_base=half))
            if split < kb:
                words.append(isa.compute(m=m, k_blocks=kb - split, a_base=split * m,
                                         w_base=w_base + split * rows, acc_base=half,
                                         accumulate=True))
            if extra is not None:
                words.extend(extra(col))
            words += [isa.fence(), isa.requantise(m=m, acc_base=half, qp_base=col * groups,
                                                  bypass=bypass)]
        return words

    def results(self, first_beat, m, n):
        cols, groups, lanes = self.p.array.cols, self.p.groups, self.p.requant_lanes
        nb = math.ceil(n / cols)
        beats = self.beats[first_beat:]
        assert len(beats) == nb * m * groups, f"{len(beats)} beats, expected {nb * m * groups}"
        out = np.zeros((m, nb * cols), dtype=np.int64)
        for col in range(nb):
            for i in range(m):
                for group in range(groups):
                    first = col * cols + group * lanes
                    out[i, first:first + lanes] = beats[(col * m + i) * groups + group]
        return out[:, :n]

    def random_shape(self, gen):
        p = self.p
        return (int(gen.integers(1, p.acc_depth // 4 + 1)),
                int(gen.integers(1, 3 * p.array.rows + 1)),
                int(gen.integers(1, 3 * p.array.cols + 1)))

    async def check_gemm(self, m, k, n, gen, *, extra=None):
        """Load a random layer; run it requantised and raw; compare with the model."""
        a, w, bias, multiplier, shift = random_layer(gen, m, k, n)
        a_zp, w_zp = (int(v) for v in gen.integers(-128, 128, 2))
        out_zp, act_min, act_max = random_output_stage(gen)
        await self.load_gemm(a, w, bias, multiplier, shift, a_zero_point=a_zp,
                             w_zero_point=w_zp)
        config = {"a_zero_point": a_zp, "w_zero_point": w_zp, "out_zero_point": out_zp,
                  "act_min": act_min, "act_max": act_max}
        first = len(self.beats)
        self.send(self.gemm_program(m, k, n, config, gen=gen, extra=extra))
        await self.finish()
        _compare(self.results(first, m, n),
                 qgemm(a, w, bias, multiplier, shift, a_zero_point=a_zp, w_zero_point=w_zp,
                       out_zero_point=out_zp, act_min=act_min, act_max=act_max),
                 f"{m}x{k}x{n} {config}")
        first = len(self.beats)
        self.send(self.gemm_program(m, k, n, config, bypass=True, gen=gen, extra=extra))
        await self.finish()
        _compare(self.results(first, m, n), gemm_int32(a, w, a_zp, w_zp),
                 f"raw {m}x{k}x{n} {config}")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_programs_bit_exact(dut):
    """Random GEMM programs of legal commands; status and results streams stall at random."""
    bench = QueueBench(dut, random_pauses(0.4), random_pauses(0.3))
    await reset(dut)
    gen = rng()
    for _ in range(3):
        await bench.check_gemm(*bench.random_shape(gen), gen)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def illegal_and_out_of_range_commands(dut):
    """Errors get their status, are not executed, and the legal commands around them run."""
    bench = QueueBench(dut, random_pauses(0.3), random_pauses(0.2))
    await reset(dut)
    gen = rng()
    lim = bench.limits

    def errors(col):
        words = [
            isa.raw(0, int(gen.integers(1 << 56))),
            isa.raw(int(gen.integers(8, 16)), int(gen.integers(1 << 56)), 1),
            # Would overwrite accumulator row 0 (addresses wrap) if it ran.
            isa.compute(m=2, k_blocks=1, acc_base=lim.acc_depth - 1),
            isa.compute(m=1, k_blocks=1, a_base=lim.a_depth),
            isa.compute(m=1, k_blocks=lim.w_depth // lim.rows + 1),
            isa.compute(m=lim.acc_depth + 1, k_blocks=1),
            isa.requantise(m=1, acc_base=lim.acc_depth),
            isa.requantise(m=1, qp_base=lim.qp_depth - lim.cols // lim.lanes + 1),
            isa.configure(act_min=5, act_max=4),
            a_range_compute(gen, lim, over=1), a_range_compute(gen, lim, over=1, high=True),
            a_range_compute(gen, lim, over=int(gen.integers(2, 4096))),
        ]
        if lim.acc_depth * (lim.w_depth // lim.rows) > lim.a_depth:
            # The product alone is past the end.
            words.append(isa.compute(m=lim.acc_depth, k_blocks=lim.w_depth // lim.rows))
        gen.shuffle(words)
        return words[:int(gen.integers(3, len(words) + 1))]

    for _ in range(2):
        await bench.check_gemm(*bench.random_shape(gen), gen, extra=errors)
    codes = [code for code, *_ in bench.statuses]
    assert isa.Status.ILLEGAL_OPCODE in codes and isa.Status.OUT_OF_RANGE in codes
    # Zero-length commands are legal no-ops.
    bench.send([isa.compute(m=0, k_blocks=3), isa.compute(m=3, k_blocks=0),
                isa.requantise(m=0), isa.fence()])
    beats = len(bench.beats)
    await bench.finish()
    assert len(bench.beats) == beats
    # The A range check (``a_base + k_blocks·m``, computed in halves as a command enters the
    # FIFO) at its boundary, back to back: exactly at the end is legal, one row over is not;
    # K blocks past 15 use the product's high half. ``finish`` checks every status.
    words = [a_range_compute(gen, lim, over=over, high=high)
             for _ in range(6) for over in (0, 1) for high in (False, True)]
    bench.send(words)
    await bench.finish()
    codes = [code for code, *_ in bench.statuses[-len(words):]]
    assert codes.count(isa.Status.OK) == codes.count(isa.Status.OUT_OF_RANGE) == 12, codes


def a_range_compute(gen, lim, *, over, high=False):
    """A COMPUTE whose A rows end ``over`` rows past the A scratchpad (0: exactly at its
    end), in range otherwise; ``high``: 16 K blocks or more where the W scratchpad allows."""
    k_max = lim.w_depth // lim.rows
    k_low = 16 if high and k_max >= 16 else 1
    k_blocks = int(gen.integers(k_low, k_max + 1))
    m = int(gen.integers(1, min(lim.acc_depth, max(lim.a_depth // k_blocks, 1)) + 1))
    a_base = min(lim.a_depth - k_blocks * m + over, 4095)    # (a 12-bit field)
    return isa.compute(m=m, k_blocks=k_blocks, a_base=a_base)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def fence_orders_commands(dut):
    """Without FENCE a requantise overlaps the compute before it; with FENCE it starts only
    after that compute's status has left, even while the status stream is held."""
    gen = rng()
    hold = 300
    bench = QueueBench(dut, hold_then(hold, random_pauses(0.3)))
    await reset(dut)
    p, lim = bench.p, bench.limits
    kb = min(lim.w_depth // lim.rows, lim.a_depth // 4)
    m, k, n = 4, kb * lim.rows, lim.cols
    a, w, bias, multiplier, shift = random_layer(gen, m, k, n)
    await bench.load_gemm(a, w, bias, multiplier, shift)
    start = cycle()
    bench.send([isa.compute(m=m, k_blocks=kb), isa.fence(),
                isa.requantise(m=m, bypass=True)])
    await bench.finish()
    compute_status = bench.statuses[0][3]
    assert compute_status >= start + hold, "status left while the stream was held"
    assert bench.beat_cycles[0] > compute_status, \
        f"requantise after FENCE started at {bench.beat_cycles[0]}, before the compute's " \
        f"status at {compute_status}"
    _compare(bench.results(0, m, n), gemm_int32(a, w), "fenced raw")
    # No FENCE: the requantise is dispatched at once and reads while the compute runs.
    first = len(bench.beats)
    bench.send([isa.compute(m=m, k_blocks=kb, acc_base=m), isa.requantise(m=m, bypass=True)])
    await bench.finish()
    assert bench.beat_cycles[first] < bench.statuses[-2][3], \
        "an unfenced requantise waited for the compute"
    assert p.groups * m == len(bench.beats) - first


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_mid_program_then_clean_rerun(dut):
    """A reset with commands queued, computing and requantising; the rerun is exact."""
    bench = QueueBench(dut, random_pauses(0.3), random_pauses(0.3))
    await reset(dut)
    gen = rng()
    p = bench.p
    m, k, n = p.acc_depth // 2, 3 * p.array.rows, 3 * p.array.cols
    a, w, bias, multiplier, shift = random_layer(gen, m, k, n)
    await bench.load_gemm(a, w, bias, multiplier, shift, a_zero_point=3)
    program = bench.gemm_program(m, k, n, {"a_zero_point": 3}, gen=gen)
    bench.send(program)
    await bench.wait_until(lambda: len(bench.beats) >= 2)
    assert int(dut.busy.value), "nothing running at the reset"
    bench.stop()
    await reset(dut)
    await RisingEdge(dut.clk)
    for name in ("busy", "status__valid", "o__valid"):
        assert not int(getattr(dut, name).value), f"{name} high after reset"
    bench.start(random_pauses(0.3), random_pauses(0.3))
    bench.send(program)
    await bench.finish()
    _compare(bench.results(0, m, n), qgemm(a, w, bias, multiplier, shift, a_zero_point=3),
             "rerun after reset")
