"""Link soak and measurements on :class:`~chipknit.rtl.link.soak.LinkSoak`.

Saturating traffic on every VC of both directions, at each bit error rate in
``CHIPKNIT_LINK_BERS`` (JSON list) for ``CHIPKNIT_LINK_CYCLES`` cycles each (one number, or a
JSON list with one per BER). Hardware
checkers count every flit delivered, lost, duplicated or corrupted; the test fails on any of
the last three, and writes the figures as JSON to ``CHIPKNIT_RESULT_FILE`` when set.
"""

import json
import os

import cocotb
from cocotb.triggers import ClockCycles

from chipknit.tb.dut import design_params, reset, start_clock

BERS_ENV = "CHIPKNIT_LINK_BERS"
CYCLES_ENV = "CHIPKNIT_LINK_CYCLES"
RESULT_ENV = "CHIPKNIT_RESULT_FILE"
WARMUP = 2000


def _streams(params):
    return [(end, vc) for end in ("a", "b") for vc in range(params["vcs"])]


def _read(dut, params, counter):
    return {f"{end}{vc}": int(getattr(dut, f"stream_{end}_{vc}_{counter}").value)
            for end, vc in _streams(params)}


def _status(dut, name):
    return sum(int(getattr(dut, f"{end}_{name}").value) for end in ("a", "b"))


@cocotb.test(timeout_time=10, timeout_unit="sec")
async def soak(dut):
    params = design_params()
    bers = json.loads(os.environ.get(BERS_ENV, "[0, 1e-4]"))
    cycles_setting = json.loads(os.environ.get(CYCLES_ENV, "20000"))
    cycle_counts = (cycles_setting if isinstance(cycles_setting, list)
                    else [cycles_setting] * len(bers))
    start_clock(dut)
    dut.tx_ready.value = 1
    dut.sink_ready.value = 1
    points = []
    for ber, cycles in zip(bers, cycle_counts, strict=True):
        dut.enable.value = 0
        dut.error_threshold.value = 0
        await reset(dut)
        dut.error_threshold.value = min(int(ber * params["beat_width"] * 2**32), 2**32 - 1)
        dut.enable.value = 1
        await ClockCycles(dut.clk, WARMUP)
        start = _read(dut, params, "received")
        await ClockCycles(dut.clk, cycles)
        end = _read(dut, params, "received")
        dut.enable.value = 0
        # Drain: everything sent must arrive (replays included) within a bounded time.
        for _ in range(200):
            await ClockCycles(dut.clk, 500)
            if _read(dut, params, "sent") == _read(dut, params, "received"):
                break
        sent, received = _read(dut, params, "sent"), _read(dut, params, "received")
        point = {
            "ber": ber,
            "cycles": cycles,
            "flits_per_cycle": {k: (end[k] - start[k]) / cycles for k in end},
            "sent": sum(sent.values()),
            "received": sum(received.values()),
            "lost": sum(_read(dut, params, "lost").values()),
            "duplicated": sum(_read(dut, params, "duplicated").values()),
            "corrupted": sum(_read(dut, params, "corrupted").values()),
            "undelivered": sum(sent.values()) - sum(received.values()),
            "bit_errors_injected": int(dut.a_errors.value) + int(dut.b_errors.value),
            "crc_errors": _status(dut, "rx_status__crc_errors"),
            "frames": _status(dut, "tx_status__frames"),
            "replayed_frames": _status(dut, "tx_status__replayed_frames"),
            "naks": _status(dut, "tx_status__naks"),
            "timeouts": _status(dut, "tx_status__timeouts"),
        }
        dut._log.info("BER %g: %s", ber, point)
        points.append(point)
    if os.environ.get(RESULT_ENV):
        with open(os.environ[RESULT_ENV], "w") as file:
            json.dump(points, file)
    for point in points:
        assert point["lost"] == point["duplicated"] == point["corrupted"] == 0, point
        assert point["undelivered"] == 0, f"flits still missing after the drain: {point}"
