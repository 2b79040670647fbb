"""cocotb tests of :class:`chipknit.rtl.npu.requant.Requantiser` against the TFLite model.

Scoreboard: :func:`chipknit.tb.models.npu.requantize`, beat by beat in order. Random and
extreme int32 values, exact ties of both roundings, multipliers >= 1 (positive shifts),
every shift, ReLU/ReLU6 clamps, bypass; random backpressure on both streams; a reset with
beats in flight.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.rtl.npu.requant import requant_input_layout
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.credit import InOrderScoreboard
from chipknit.tb.models.npu import INT32_MAX, INT32_MIN, requantize
from chipknit.tb.stream import StreamMonitor, StreamSink, StreamSource, random_pauses
from chipknit.tb.tests.npu_driver import pack, unpack_signed

TIMEOUT_US = 3000
HALF = 1 << 30
EDGES = [INT32_MIN, INT32_MIN + 1, -HALF, -1, 0, 1, HALF, INT32_MAX - 1, INT32_MAX]


def expected(beat) -> int:
    """The model's output beat (packed) for an input beat (dict)."""
    values = []
    for acc, channel in zip(beat["acc"], beat["channel"], strict=True):
        if beat["bypass"]:
            values.append(acc)
        else:
            values.append(int(requantize(np.array([acc]), [channel["bias"]],
                                         [channel["multiplier"]], [channel["shift"]],
                                         beat["out_zero_point"], beat["act_min"],
                                         beat["act_max"])[0]))
    return sum((value & 0xFFFFFFFF) << (32 * lane) for lane, value in enumerate(values))


class RequantBench:
    def __init__(self, dut, source_pauses=None, sink_pauses=None, *, clock=True):
        self.dut = dut
        self.lanes = design_params()["lanes"]
        self.layout = requant_input_layout(self.lanes)
        self.scoreboard = InOrderScoreboard("requantiser")
        if clock:
            start_clock(dut)
        self.source = StreamSource(dut, "i", dut.clk, source_pauses)
        self.sink = StreamSink(dut, "o", dut.clk, sink_pauses, callback=self.observe)
        self.beats = {}
        self.monitor = StreamMonitor(dut, "i", dut.clk, callback=self.accepted)

    def accepted(self, bits):
        self.scoreboard.expect(expected(self.beats[bits]))

    def observe(self, bits):
        try:
            self.scoreboard.observe(bits)
        except AssertionError:
            got = unpack_signed(bits, 32, self.lanes)
            want = unpack_signed(self.scoreboard.expected[0], 32, self.lanes) \
                if self.scoreboard.expected else None
            raise AssertionError(f"requantiser gave {got}, model {want}") from None

    def send(self, beat):
        bits = pack(self.layout, beat)
        self.beats[bits] = beat
        self.source.send_nowait(bits)

    def lane(self, acc, bias, multiplier, shift):
        return acc, {"bias": bias, "multiplier": multiplier, "shift": shift}

    def beat(self, lanes, out_zero_point=0, act_min=-128, act_max=127, bypass=0):
        return {"acc": [lane[0] for lane in lanes], "channel": [lane[1] for lane in lanes],
                "out_zero_point": out_zero_point, "act_min": act_min, "act_max": act_max,
                "bypass": bypass}

    async def drain(self):
        await self.source.wait()
        await ClockCycles(self.dut.clk, 40)
        self.scoreboard.drain_check()


def random_int32(rng):
    return rng.choice(EDGES) if rng.random() < 0.25 else rng.randint(INT32_MIN, INT32_MAX)


def random_beat(bench, rng):
    lanes = []
    for _ in range(bench.lanes):
        kind = rng.random()
        if kind < 0.3:      # a realistic layer: small bias, Q31 multiplier in [0.5, 1)
            lane = bench.lane(rng.randint(-(1 << 20), 1 << 20), rng.randint(-5000, 5000),
                              rng.randint(HALF, INT32_MAX), rng.randint(-20, 4))
        elif kind < 0.5:    # exact ties: a multiple of 2**(e-1) and a power-of-two scale
            exponent = rng.randint(1, 12)
            lane = bench.lane((2 * rng.randint(-100, 100) + 1) << (exponent - 1), 0,
                              HALF if rng.random() < 0.5 else INT32_MAX,
                              -exponent + rng.choice([0, 1]))
        else:               # anything at all
            lane = bench.lane(random_int32(rng), random_int32(rng), random_int32(rng),
                              rng.randint(-31, 31))
        lanes.append(lane)
    zero_point = rng.randint(-128, 127)
    if rng.random() < 0.7:  # most beats unclamped, so rounding errors show
        return bench.beat(lanes, rng.randint(-20, 20), bypass=int(rng.random() < 0.05))
    low = rng.randint(-128, 127)
    return bench.beat(lanes, zero_point, low, rng.randint(low, 127))


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_beats_with_backpressure(dut):
    """Thousands of random beats (realistic, ties, anything); both ends stall at random."""
    bench = RequantBench(dut, random_pauses(0.3), random_pauses(0.4))
    await reset(dut)
    rng = random.Random(random.getrandbits(32))
    for _ in range(2000):
        bench.send(random_beat(bench, rng))
    await bench.drain()
    assert bench.scoreboard.matched == 2000


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def directed_corners(dut):
    """Ties both ways, the INT32_MIN² saturation, multipliers >= 1, wraps, ReLU and ReLU6."""
    bench = RequantBench(dut)
    await reset(dut)
    cases = [
        # (acc, bias, multiplier, shift)
        (5, 0, HALF, 0), (-5, 0, HALF, 0),            # high-mul ties: 2.5 -> 3, -2.5 -> -2
        (6, 0, INT32_MAX, -2), (-6, 0, INT32_MAX, -2),  # near-ties in the shift
        (3, 0, HALF, -1), (5, 0, HALF, -1), (-5, 0, HALF, -1),   # double rounding
        (INT32_MIN, 0, INT32_MIN, 0),                 # saturates to INT32_MAX
        (INT32_MIN, 0, INT32_MIN, -31),
        (INT32_MAX, 1, INT32_MAX, 0),                 # acc + bias wraps
        (3, 0, HALF, 1), (100, 0, HALF + 12345, 5),   # multipliers >= 1
        (HALF, 0, HALF, 2), (1, 0, INT32_MAX, 31),    # the left shift wraps
        (-100, 0, INT32_MAX, -31), (100, 0, INT32_MAX, -31),
        (1000, -50, 1518500250, -3), (-1000, 50, 1518500250, -3),
    ]
    for acc, bias, multiplier, shift in cases:
        lanes = [bench.lane(acc, bias, multiplier, shift)] * bench.lanes
        for out_zero_point, act_min, act_max in ((0, -128, 127), (-3, -3, 127),  # ReLU
                                                 (-3, -3, 21), (127, -128, 127),  # ReLU6
                                                 (-128, -128, 127)):
            bench.send(bench.beat(lanes, out_zero_point, act_min, act_max))
    bench.send(bench.beat([bench.lane(INT32_MIN, 7, 0, 0)] * bench.lanes, bypass=1))
    await bench.drain()
    assert bench.scoreboard.matched == len(cases) * 5 + 1


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_with_beats_in_flight(dut):
    """A reset drops the beats inside; afterwards the pipeline is empty and exact again."""
    bench = RequantBench(dut, sink_pauses=random_pauses(0.5))
    await reset(dut)
    rng = random.Random(random.getrandbits(32))
    for _ in range(200):
        bench.send(random_beat(bench, rng))
    await ClockCycles(dut.clk, 60)
    bench.source.stop()
    bench.sink.stop()
    bench.monitor.stop()
    await reset(dut)
    await RisingEdge(dut.clk)
    assert not int(dut.o__valid.value), "output valid after reset"
    bench = RequantBench(dut, random_pauses(0.2), random_pauses(0.2), clock=False)
    for _ in range(300):
        bench.send(random_beat(bench, rng))
    await bench.drain()
    assert bench.scoreboard.matched == 300
