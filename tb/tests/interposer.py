"""cocotb tests of :class:`chipknit.rtl.link.interposer.Interposer`.

Scoreboard: :class:`~chipknit.tb.models.interposer.InterposerModel`, stepped in lockstep
with the DUT, predicts ``rx`` bit-exact every cycle (the error pattern included) and the
``errors`` counter. Directed tests check delay, skew, reversal and stuck-at against
hand-written expectations too, so the model and the RTL cannot share a misreading of the
spec; the BER test checks the measured error rate against the setting within 5 sigma.
"""

import math
import os
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from chipknit.tb.dut import CLOCK_PERIOD_NS, design_params, start_clock
from chipknit.tb.models.interposer import (
    COUNTER_LAG,
    ErrorLfsr,
    InterposerModel,
    LaneWord,
    threshold_for_ber,
)

TIMEOUT_US = 20_000
#: Environment of a BER sweep: comma-separated BERs, and the most cycles per BER point.
BERS_ENV = "CHIPKNIT_INTERPOSER_BERS"
CYCLES_ENV = "CHIPKNIT_INTERPOSER_CYCLES"
CONTROLS = ("delay", "error_threshold", "stuck_mask", "stuck_value", "reverse")


class InterposerBench:
    """Clock, reset, controls and the lockstep scoreboard around the DUT."""

    def __init__(self, dut):
        self.dut = dut
        self.params = design_params()
        p = self.params
        self.lanes, self.bits = p["lanes"], p["bits_per_lane"]
        self.width = self.lanes * self.bits
        self.model = InterposerModel(lanes=self.lanes, bits_per_lane=self.bits,
                                     max_delay=p["max_delay"], error_bits=p["error_bits"],
                                     seed=p["seed"], counter_width=p["counter_width"])
        self.delay_bits = self.model.delay_bits
        self.controls = dict.fromkeys(CONTROLS, 0)
        self.cycles = 0
        self._expected = LaneWord()
        self._expected_errors = [0] * (COUNTER_LAG + 1)
        start_clock(dut)
        self.drive(LaneWord())
        self.set_controls()

    # -- inputs ------------------------------------------------------------------------------
    def drive(self, tx: LaneWord) -> None:
        self.dut.tx__data.value = tx.data
        self.dut.tx__valid.value = tx.valid
        self.tx = tx

    def set_controls(self, **controls) -> None:
        for name, value in controls.items():
            if name not in CONTROLS:
                raise KeyError(name)
            if name == "delay" and not isinstance(value, int):
                value = self.pack_delays(value)
            self.controls[name] = int(value)
        for name, value in self.controls.items():
            getattr(self.dut, name).value = value

    def pack_delays(self, delays) -> int:
        return sum(d << (lane * self.delay_bits) for lane, d in enumerate(delays))

    def random_word(self, valid_probability: float = 0.8) -> LaneWord:
        valid = sum(1 << lane for lane in range(self.lanes)
                    if random.random() < valid_probability)
        return LaneWord(random.getrandbits(self.width), valid)

    # -- outputs -----------------------------------------------------------------------------
    def observed(self) -> LaneWord:
        return LaneWord(int(self.dut.rx__data.value), int(self.dut.rx__valid.value))

    def errors(self) -> int:
        return int(self.dut.errors.value)

    # -- lockstep ----------------------------------------------------------------------------
    async def reset(self) -> None:
        """Synchronous reset of the DUT and the model together."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        self.model.reset()
        self._expected = LaneWord()
        self._expected_errors = [0] * (COUNTER_LAG + 1)

    async def step(self, tx: LaneWord | None = None, check: bool = True) -> LaneWord:
        """One rising edge with ``tx`` (default: what is driven now); checks what the DUT
        showed before the edge against the model and returns it."""
        if tx is not None:
            self.drive(tx)
        await RisingEdge(self.dut.clk)
        self.cycles += 1
        seen = self.observed()
        errors = self.errors()
        if check:
            expected = self._expected
            if seen != expected:
                diff = seen.data ^ expected.data
                lanes = sorted({bit // self.bits for bit in range(self.width)
                                if diff >> bit & 1})
                raise AssertionError(
                    f"cycle {self.cycles}: rx data {seen.data:#x} valid {seen.valid:#x}, model "
                    f"says data {expected.data:#x} valid {expected.valid:#x} (data differs on "
                    f"rx lanes {lanes}); controls {self.controls}")
            if errors != self._expected_errors[0]:
                raise AssertionError(
                    f"cycle {self.cycles}: errors counter {errors}, model says "
                    f"{self._expected_errors[0]}")
        self._expected = self.model.step(self.tx, **self.controls_for_model())
        self._expected_errors = self._expected_errors[1:] + [self.model.errors]
        return seen

    def controls_for_model(self) -> dict:
        c = self.controls
        return {"delay": c["delay"], "error_threshold": c["error_threshold"],
                "stuck_mask": c["stuck_mask"], "stuck_value": c["stuck_value"],
                "reverse": bool(c["reverse"])}

    def random_controls(self, thresholds) -> dict:
        max_code = (1 << self.delay_bits) - 1
        delays = [random.randint(0, max_code) for _ in range(self.lanes)]
        stuck = min(self.lanes, random.choice([0, 0, 1, 2]))
        stuck_lanes = random.sample(range(self.lanes), stuck)
        return {
            "delay": delays,
            "error_threshold": random.choice(thresholds),
            "stuck_mask": sum(1 << lane for lane in stuck_lanes),
            "stuck_value": random.getrandbits(self.lanes),
            "reverse": random.random() < 0.5,
        }


def _thresholds(k: int) -> list[int]:
    top = (1 << k) - 1
    return [0, 0, threshold_for_ber(1e-2, k) or 1, threshold_for_ber(0.1, k) or 1,
            1 << (k - 1), top]


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_traffic_and_faults_match_model(dut):
    """Random lanes under random delays, stuck-at, reversal and BERs, changed at run time,
    and a reset mid-traffic: rx and the counter match the model every cycle."""
    bench = InterposerBench(dut)
    await bench.reset()
    thresholds = _thresholds(bench.params["error_bits"])
    seen = {"stuck": False, "reverse": False, "delays": set(), "errors": False}
    for segment in range(40):
        if segment == 25:
            await bench.reset()
        controls = bench.random_controls(thresholds)
        bench.set_controls(**controls)
        seen["stuck"] |= controls["stuck_mask"] != 0
        seen["reverse"] |= controls["reverse"]
        seen["delays"] |= set(controls["delay"])
        for _ in range(random.randint(10, 120)):
            await bench.step(bench.random_word())
    for _ in range(bench.params["max_delay"] + COUNTER_LAG + 2):
        await bench.step(LaneWord())
    seen["errors"] = bench.errors() > 0
    assert all(seen.values()), f"stimulus did not cover everything: {seen}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def zero_errors_at_threshold_zero(dut):
    """Threshold 0: rx is exactly tx, delayed, whatever the data; the counter stays at 0."""
    bench = InterposerBench(dut)
    await bench.reset()
    pipeline = []
    for segment in range(10):
        bench.set_controls(delay=[random.randint(0, bench.params["max_delay"])
                                  for _ in range(bench.lanes)], error_threshold=0)
        for _ in range(200):
            await bench.step(bench.random_word(valid_probability=1.0))
        if segment == 0:
            # Independently of the model: with all delays equal to d, rx is tx shifted by
            # 1 + d cycles.
            d = random.randint(0, bench.params["max_delay"])
            bench.set_controls(delay=[d] * bench.lanes)
            for _ in range(60):
                tx = bench.random_word()
                pipeline.append(tx)
                seen = await bench.step(tx)
                if len(pipeline) > d + 1:
                    sent = pipeline[-(d + 2)]
                    assert seen == sent, f"delay {d}: rx {seen}, sent {sent}"
    assert bench.errors() == 0, f"{bench.errors()} errors counted at threshold 0"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def skew_and_reversal_directed(dut):
    """One pulse on every lane: wire i arrives 1 + delay[i] cycles later, on lane i, or on
    lane N-1-i when reversed."""
    bench = InterposerBench(dut)
    max_delay = bench.params["max_delay"]
    for reverse in (False, True):
        await bench.reset()
        delays = [lane % (max_delay + 1) for lane in range(bench.lanes)]
        random.shuffle(delays)
        bench.set_controls(delay=delays, reverse=reverse, error_threshold=0, stuck_mask=0)
        arrivals = {}
        pulse = LaneWord((1 << bench.width) - 1, (1 << bench.lanes) - 1)
        for cycle in range(max_delay + 4):
            seen = await bench.step(pulse if cycle == 0 else LaneWord())
            for lane in range(bench.lanes):
                if seen.valid >> lane & 1:
                    assert lane not in arrivals, f"lane {lane} valid twice"
                    arrivals[lane] = cycle
                    lane_bits = (seen.data >> (lane * bench.bits)) & ((1 << bench.bits) - 1)
                    assert lane_bits == (1 << bench.bits) - 1, f"lane {lane} data lost"
        # step() returns what was on rx before edge `cycle`, i.e. after edge cycle - 1;
        # the pulse was sampled at edge 0, so it shows at index 1 + delay.
        expected = {(bench.lanes - 1 - wire if reverse else wire): 1 + delays[wire]
                    for wire in range(bench.lanes)}
        assert arrivals == expected, f"reverse={reverse}: arrivals {arrivals}, want {expected}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def stuck_lanes_directed(dut):
    """Stuck wires read their stuck level on every bit, whatever is sent; valid passes."""
    bench = InterposerBench(dut)
    await bench.reset()
    mask = sum(1 << lane for lane in range(0, bench.lanes, 3))
    value = sum(1 << lane for lane in range(0, bench.lanes, 2))
    bench.set_controls(stuck_mask=mask, stuck_value=value, delay=0,
                       error_threshold=(1 << bench.params["error_bits"]) - 1)
    lane_ones = (1 << bench.bits) - 1
    for cycle in range(200):
        tx = bench.random_word(valid_probability=1.0)
        seen = await bench.step(tx)
        if cycle < 2:
            continue
        assert seen.valid == (1 << bench.lanes) - 1, "valid must not be affected"
        for lane in range(bench.lanes):
            if mask >> lane & 1:
                got = (seen.data >> (lane * bench.bits)) & lane_ones
                want = lane_ones if value >> lane & 1 else 0
                assert got == want, f"stuck lane {lane} reads {got:#x}, want {want:#x}"


@cocotb.test()
async def ber_matches_setting(dut):
    """Free-running at several BERs: the count equals the model's exactly (short runs) and
    the measured rate is within 5 sigma of threshold / 2**k."""
    bench = InterposerBench(dut)
    p = bench.params
    k = p["error_bits"]
    limit = (1 << p["counter_width"]) - 1
    long_runs = "verilator" in cocotb.SIM_NAME.lower()
    # A sweep (slow tests) names its BERs and cycle budget in the environment.
    bers = os.environ.get(BERS_ENV)
    bers = ([float(b) for b in bers.split(",")] if bers else
            [1e-1, 1e-2, 1e-3, 1e-4] if long_runs else [1e-1, 1e-2, 1e-3])
    budget = int(os.environ.get(CYCLES_ENV, 300_000 if long_runs else 4_000))
    report = []
    for ber in bers:
        threshold = threshold_for_ber(ber, k)
        if threshold == 0:
            continue
        setting = threshold / (1 << k)
        # Enough cycles for ~400 expected errors, within the simulator's budget.
        cycles = min(math.ceil(400 / (setting * bench.width)), budget)
        mean = setting * bench.width * cycles
        if mean > limit / 2:
            cycles = max(1, int(limit / 2 / (setting * bench.width)))
            mean = setting * bench.width * cycles
        await bench.reset()
        bench.set_controls(error_threshold=threshold, stuck_mask=0, delay=0)
        await _edges(dut, cycles)
        bench.set_controls(error_threshold=0)
        await ClockCycles(dut.clk, COUNTER_LAG + 2)
        count = bench.errors()
        if cycles * bench.width <= 400_000:
            exact = _model_count(bench.model, threshold, cycles)
            assert count == exact, f"BER {ber:g}: counted {count}, model says {exact}"
        sigma = math.sqrt(mean * (1 - setting))
        report.append(f"BER {setting:.3g}: {count} errors in {cycles * bench.width} bits "
                      f"(expected {mean:.1f} +- {sigma:.1f})")
        assert abs(count - mean) <= 5 * sigma + 1, report[-1]
    dut._log.info("; ".join(report))


async def _edges(dut, count: int) -> None:
    """``count`` rising edges without waking Python at each (from just after an edge)."""
    if count > 1:
        await Timer((count - 1) * CLOCK_PERIOD_NS + CLOCK_PERIOD_NS // 2, unit="ns")
    await RisingEdge(dut.clk)


def _model_count(model: InterposerModel, threshold: int, cycles: int) -> int:
    """Errors injected with ``threshold`` set for the first ``cycles`` cycles after reset
    (decisions are registered: they use the LFSR values of cycles 2 .. cycles + 1)."""
    count = 0
    for lane_lfsrs in model.lfsrs:
        for live in lane_lfsrs:
            lfsr = ErrorLfsr(model.seed, 0, model.error_bits)
            lfsr.state = live.state
            lfsr.step()
            for _ in range(cycles):
                count += lfsr.value < threshold
                lfsr.step()
    return count


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def error_counter_saturates(dut):
    """With a narrow counter: it stops at its maximum (skipped for wide counters)."""
    bench = InterposerBench(dut)
    width = bench.params["counter_width"]
    if width > 12:
        return
    limit = (1 << width) - 1
    await bench.reset()
    bench.set_controls(error_threshold=(1 << bench.params["error_bits"]) - 1)
    cycles = 4 * limit // bench.width + 8
    for _ in range(cycles):
        await bench.step(bench.random_word())
    assert bench.errors() == limit, f"counter at {bench.errors()}, want saturated {limit}"
    for _ in range(20):
        await bench.step()
    assert bench.errors() == limit
