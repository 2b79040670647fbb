"""cocotb tests of the board link self-test (:class:`LinkEndLoopback`): one end of a link
with its lanes looped back, as a board with a loopback cable runs it.

The design checks itself (hardware sequence checkers per VC); the tests check its status
outputs tell the truth: ``ok`` with clean lanes, still ``ok`` with bit errors (CRC and
replay repair them, the adapter counts them), and with a stuck lane no flit is delivered,
none is corrupted, and ``ok`` stays low without ``error`` (the link is down, not wrong).
"""

import cocotb
from cocotb.triggers import ClockCycles

from chipknit.tb.dut import reset, start_clock

RUN_CYCLES = 20000


def counts(dut, name):
    return [int(value.value) for value in _array(dut, name)]


def _array(dut, name):
    values = []
    vc = 0
    while hasattr(dut, f"{name}__{vc}"):
        values.append(getattr(dut, f"{name}__{vc}"))
        vc += 1
    assert values, f"no {name}__0 port"
    return values


async def start(dut, *, error_threshold=0, stuck_mask=0):
    start_clock(dut)
    dut.error_threshold.value = error_threshold
    dut.stuck_mask.value = stuck_mask
    dut.stuck_value.value = 0
    await reset(dut)


def assert_clean(dut):
    for name in ("lost", "duplicated", "corrupted"):
        assert not any(counts(dut, name)), f"{name}: {counts(dut, name)}"
    assert not int(dut.error.value), "error LED lit"


@cocotb.test()
async def clean_loopback(dut):
    await start(dut)
    await ClockCycles(dut.clk, RUN_CYCLES)
    received = counts(dut, "received")
    assert_clean(dut)
    assert int(dut.ok.value), f"ok LED dark, received {received}"
    # Two VCs share 16-bit beats of 64-bit flits, 15 per 63-beat frame, one idle cycle in
    # 256: about 0.94 flits every 4 cycles in all.
    assert sum(received) > RUN_CYCLES * 0.2, f"only {received} flits in {RUN_CYCLES} cycles"


@cocotb.test()
async def bit_errors_are_repaired(dut):
    await start(dut, error_threshold=(1 << 32) // 2000)   # BER 5e-4
    await ClockCycles(dut.clk, RUN_CYCLES)
    assert int(dut.wire_errors.value) > 0, "the interposer injected no errors"
    crc_errors = int(dut.rx_status__crc_errors.value)
    assert crc_errors > 0, "no CRC errors counted"
    assert_clean(dut)
    assert int(dut.ok.value), f"ok LED dark, received {counts(dut, 'received')}"


@cocotb.test()
async def stuck_lane_stops_the_link_visibly(dut):
    await start(dut, stuck_mask=1 << 3)
    await ClockCycles(dut.clk, RUN_CYCLES // 4)
    assert counts(dut, "received") == [0, 0]
    assert_clean(dut)
    assert not int(dut.ok.value), "ok LED lit with a dead lane"
    assert int(dut.rx_status__crc_errors.value) > 0, "the dead lane's damage is not counted"
