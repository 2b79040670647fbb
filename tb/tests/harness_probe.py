"""A cocotb module that checks the harness itself (tests/test_harness.py runs it).

It drives the credit channel for a while with a seeded random stream and logs a digest of
what it drew, so a test can check that one seed reproduces the same run; it fails on purpose
when ``CHIPKNIT_PROBE_FAIL`` is set, so a test can check what a failure leaves behind.
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.stream import StreamSink, StreamSource, random_pauses

FAIL_ENV = "CHIPKNIT_PROBE_FAIL"


@cocotb.test(timeout_time=200, timeout_unit="us")
async def probe(dut):
    params = design_params()
    for fault in ("drop_credit", "extra_credit", "sender_reset", "receiver_reset"):
        getattr(dut, fault).value = 0
    start_clock(dut)
    source = StreamSource(dut, "i", dut.clk, random_pauses(0.5))
    sink = StreamSink(dut, "o", dut.clk, random_pauses(0.5))
    await reset(dut)
    payloads = [random.getrandbits(params["payload_width"]) for _ in range(64)]
    source.send_all(payloads)
    await source.wait()
    await ClockCycles(dut.clk, 50)
    dut._log.info("probe digest %08x", hash(tuple(payloads)) & 0xFFFFFFFF)
    assert list(sink.received) == payloads
    assert not os.environ.get(FAIL_ENV), "failing on purpose (CHIPKNIT_PROBE_FAIL is set)"
