"""cocotb test of :class:`~chipknit.rtl.host.top.UartHostBridge`: the host API over the
UART pins.

:class:`chipknit.host.AsyncHost` runs the shared memory test script
(:func:`chipknit.host.scripts.memory_test`, the one ``python -m chipknit.host memtest`` runs
on a board) through :class:`chipknit.host.sim.UartPinTransport` at the design's baud rate,
then again with the host 2 % slow; a memory target with random backpressure and latency
sits behind the bridge. A frame sent with a bad stop bit shows up in the bridge's transport
counter; an error status comes back as an exception.
"""

import random

import cocotb

from chipknit.host import AsyncHost, TransactionError
from chipknit.host.scripts import memory_test
from chipknit.host.sim import UartPinTransport
from chipknit.tb.dut import CLOCK_PERIOD_NS, design_params, reset, start_clock
from chipknit.tb.models.host import TARGET_ERROR, MemoryModel, Region
from chipknit.tb.tests.host_common import MemoryTarget, bridge_params

TIMEOUT_US = 40000


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def host_over_uart(dut):
    """Memory test over the pins at the nominal and a 2 % slow baud rate; counters."""
    params = design_params()
    p = bridge_params(**params)
    rng = random.Random(random.getrandbits(32))
    start_clock(dut)
    bit_time = params["divisor"] * CLOCK_PERIOD_NS * 1e-9
    memory = MemoryModel(beat_bytes=p.beat_bytes, size=4096,
                         regions=(Region(0x2000, 0x100, TARGET_ERROR),))
    MemoryTarget(dut, "bus", dut.clk, p.transaction, memory, rng=rng)
    transport = UartPinTransport(dut.rx, dut.tx, bit_time)
    host = AsyncHost(transport, beat_bytes=p.beat_bytes, max_write_beats=p.buffer_beats,
                     timeout=2e-3, resync=3 * p.frame_timeout * CLOCK_PERIOD_NS * 1e-9)
    await reset(dut)

    first = await memory_test(host, base=0, n_words=48, seed=rng.getrandbits(32))
    assert first["errors"] == 0, first
    transport.driver.bit_time = bit_time * 1.02
    second = await memory_test(host, base=0x400, n_words=32, seed=rng.getrandbits(32))
    assert second["errors"] == 0, second
    transport.driver.bit_time = bit_time

    counters = await host.read_counters()
    assert counters["transport_errors"] == 0 and counters["naks"] == 0, counters
    await transport.driver.send_byte(0x55, stop=0)
    counters = await host.read_counters()
    assert counters["transport_errors"] == 1, counters
    # Every command the scripts made, and the two counter reads, one frame each.
    assert counters["commands"] == first["commands"] + second["commands"] + 2, counters
    assert int(dut.ok.value) == 0, "ok LED still on after a framing error"

    try:
        await host.read(0x2000, 1)
    except TransactionError as error:
        assert error.status_name == "TARGET_ERROR", error
    else:
        raise AssertionError("a read of the error region did not fail")
