"""cocotb tests of :class:`chipknit.rtl.register_slice.RegisterSlice`.

Scoreboard: :class:`~chipknit.tb.models.credit.InOrderScoreboard` (every transfer out once,
in order, bit-exact). Also checked every cycle: ``i.ready`` is low only while the slice
holds two entries, so it never refuses a transfer it has room for, and the rate is one
transfer a cycle whenever the consumer takes. A reset mid-transfer empties the slice.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.credit import InOrderScoreboard
from chipknit.tb.stream import (
    StreamMonitor,
    StreamSink,
    StreamSource,
    burst_pauses,
    random_pauses,
)

TIMEOUT_US = 1000


class SliceBench:
    def __init__(self, dut, *, source_pauses=None, sink_pauses=None):
        self.dut = dut
        self.width = design_params()["width"]
        self.mask = (1 << self.width) - 1
        self.scoreboard = InOrderScoreboard("register slice")
        start_clock(dut)
        self.source = StreamSource(dut, "i", dut.clk, source_pauses)
        self.sink = StreamSink(dut, "o", dut.clk, sink_pauses, callback=self.scoreboard.observe)
        self.inputs = StreamMonitor(dut, "i", dut.clk, callback=self.scoreboard.expect)
        self.held = 0   # entries the slice holds, counted from the transfers at each edge
        self.max_held = 0
        cocotb.start_soon(self._check_occupancy())

    async def _check_occupancy(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.clk)
            if int(dut.rst.value):
                self.held = 0
                continue
            # Between edges: what the slice offers and accepts must match what it holds.
            assert int(dut.o__valid.value) == (self.held > 0), (
                f"o.valid {int(dut.o__valid.value)} with {self.held} entries held")
            assert int(dut.i__ready.value) == (self.held < 2), (
                f"i.ready {int(dut.i__ready.value)} with {self.held} entries held")
            taken_in = int(dut.i__valid.value) and int(dut.i__ready.value)
            taken_out = int(dut.o__valid.value) and int(dut.o__ready.value)
            await RisingEdge(dut.clk)
            if not int(dut.rst.value):
                self.held += taken_in - taken_out
                self.max_held = max(self.max_held, self.held)

    def payloads(self, count):
        return [random.getrandbits(self.width) & self.mask for _ in range(count)]

    async def drain(self):
        """Until the source has sent everything and the slice is empty (or 500 cycles)."""
        await self.source.wait()
        for _ in range(500):
            await RisingEdge(self.dut.clk)
            if not self.scoreboard.expected and self.held == 0:
                break
        await ClockCycles(self.dut.clk, 2)
        self.scoreboard.drain_check()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_traffic_random_backpressure(dut):
    """Random gaps on both sides: every transfer out once, in order, exact."""
    bench = SliceBench(dut, source_pauses=random_pauses(0.3),
                       sink_pauses=burst_pauses(6, 5))
    await reset(dut)
    count = 4000
    bench.source.send_all(bench.payloads(count))
    await bench.drain()
    assert bench.scoreboard.matched == count
    assert bench.max_held == 2, f"the spare was never used (max held {bench.max_held})"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def full_rate(dut):
    """No pauses: one transfer a cycle, out one cycle after in."""
    bench = SliceBench(dut)
    await reset(dut)
    count = 500
    bench.source.send_all(bench.payloads(count))
    first_in = first_out = None
    cycle = 0
    while bench.sink.count < count:
        await RisingEdge(dut.clk)
        cycle += 1
        if first_in is None and bench.inputs.count:
            first_in = cycle
        if first_out is None and bench.sink.count:
            first_out = cycle
    assert first_out - first_in == 1, f"first out {first_out - first_in} cycles after in"
    assert cycle - first_out == count - 1, (
        f"{count} transfers came out over {cycle - first_out + 1} cycles")
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def stalled_consumer_loses_nothing(dut):
    """The consumer stops for long stretches: the slice fills, holds, and resumes."""
    bench = SliceBench(dut, sink_pauses=burst_pauses(3, 40))
    await reset(dut)
    count = 600
    bench.source.send_all(bench.payloads(count))
    await bench.drain()
    assert bench.scoreboard.matched == count


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def corner_payloads(dut):
    """All-zero, all-one and walking-one payloads pass bit-exact."""
    bench = SliceBench(dut, sink_pauses=random_pauses(0.5))
    await reset(dut)
    payloads = [0, bench.mask] + [1 << bit for bit in range(bench.width)]
    bench.source.send_all(payloads)
    await bench.drain()
    assert bench.scoreboard.matched == len(payloads)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_mid_transfer_empties_the_slice(dut):
    """A reset with both entries full: the slice comes out empty and passes new traffic.

    Defined outcome: what the slice held at the reset is lost (as in a router's buffers,
    the reset covers the network); nothing stale comes out afterwards.
    """
    bench = SliceBench(dut, sink_pauses=burst_pauses(2, 30))
    await reset(dut)
    bench.source.send_all(bench.payloads(40))
    for _ in range(400):
        await RisingEdge(dut.clk)
        if bench.held == 2:
            break
    assert bench.held == 2, "the slice never filled before the reset"
    bench.source.stop()
    bench.sink.stop()
    dut.o__ready.value = 0
    await reset(dut)
    await FallingEdge(dut.clk)
    assert int(dut.o__valid.value) == 0 and int(dut.i__ready.value) == 1
    # Everything from before the reset is written off; new traffic is exact.
    bench.scoreboard.expected.clear()
    bench.source = StreamSource(dut, "i", dut.clk, random_pauses(0.2))
    before = bench.scoreboard.matched
    bench.sink = StreamSink(dut, "o", dut.clk, random_pauses(0.2),
                            callback=bench.scoreboard.observe)
    bench.source.send_all(bench.payloads(200))
    await bench.drain()
    assert bench.scoreboard.matched - before == 200
