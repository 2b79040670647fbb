"""Measures a credit channel's rate (for ``chipknit bench credit``; asserts only sanity).

Writes ``{"saturated": flits/cycle, "backpressured": flits/cycle, ...}`` as JSON to the file
named by ``CHIPKNIT_RESULT_FILE``. Saturated: the source always has a flit and the sink is
always ready. Backpressured: the sink is ready half the time at random.
"""

import json
import os
import random

import cocotb
from cocotb.triggers import ClockCycles

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.credit import InOrderScoreboard
from chipknit.tb.stream import StreamMonitor, StreamSink, StreamSource, random_pauses

RESULT_ENV = "CHIPKNIT_RESULT_FILE"
WARMUP, WINDOW = 200, 4000


async def _measure(dut, sink_pauses) -> float:
    params = design_params()
    scoreboard = InOrderScoreboard()
    source = StreamSource(dut, "i", dut.clk)
    sink = StreamSink(dut, "o", dut.clk, sink_pauses, callback=scoreboard.observe)
    monitor = StreamMonitor(dut, "i", dut.clk, callback=scoreboard.expect)
    await reset(dut)
    source.send_all(random.getrandbits(params["payload_width"])
                    for _ in range(WARMUP + WINDOW + 100))
    await ClockCycles(dut.clk, WARMUP)
    start = sink.count
    await ClockCycles(dut.clk, WINDOW)
    rate = (sink.count - start) / WINDOW
    await source.wait()
    await ClockCycles(dut.clk, 200)
    scoreboard.drain_check()
    for driver in (source, sink, monitor):
        driver.stop()
    return rate


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def measure_rate(dut):
    for fault in ("drop_credit", "extra_credit", "sender_reset", "receiver_reset"):
        getattr(dut, fault).value = 0
    start_clock(dut)
    figures = {
        "saturated": await _measure(dut, None),
        "backpressured": await _measure(dut, random_pauses(0.5)),
        "window_cycles": WINDOW,
    }
    assert 0 < figures["saturated"] <= 1 and 0 < figures["backpressured"] <= 1, figures
    with open(os.environ[RESULT_ENV], "w") as file:
        json.dump(figures, file)
