"""cocotb tests of :class:`~chipknit.rtl.host.uart.UartRx` and
:class:`~chipknit.rtl.host.uart.UartTx` at the bit level.

The pins are driven and decoded by the bit-level UART models of :mod:`chipknit.host.sim`
at the design's baud rate (``divisor`` clock cycles per bit). Checks: random bytes in both
directions with random gaps, a sender 2 % fast and 2 % slow, framing errors (dropped,
counted, the next byte fine), glitches shorter than half a bit (ignored), overruns (a
stalled consumer: counted), and the transmitter's every edge on the exact bit grid.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, Edge, Timer
from cocotb.utils import get_sim_time

from chipknit.host.sim import UartDriver, UartMonitor
from chipknit.tb.dut import CLOCK_PERIOD_NS, design_params, reset, start_clock
from chipknit.tb.stream import StreamSink, StreamSource, random_pauses

TIMEOUT_US = 20000


def bit_time() -> float:
    return design_params()["divisor"] * CLOCK_PERIOD_NS * 1e-9


async def setup(dut, pause=0.3):
    start_clock(dut)
    driver = UartDriver(dut.rx, bit_time())
    sink = StreamSink(dut, "o", dut.clk, random_pauses(pause))
    dut.i__valid.value = 0
    await reset(dut)
    await ClockCycles(dut.clk, 5)
    return driver, sink


async def wait_bytes(dut, sink, n, limit_bits=40):
    for _ in range(limit_bits):
        if sink.count >= n:
            break
        await Timer(round(bit_time() * 1e12), unit="ps")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def rx_baud_error(dut):
    """Random bytes, back to back and with random gaps, from a sender at the nominal rate,
    2 % fast and 2 % slow: all received, no errors counted."""
    driver, sink = await setup(dut)
    rng = random.Random(random.getrandbits(32))
    sent = []
    for error in (0.0, 0.02, -0.02, 0.0):
        for _ in range(60):
            byte = rng.getrandbits(8)
            sent.append(byte)
            await driver.send_byte(byte, bit_time=bit_time() * (1 + error))
            if rng.random() < 0.2:
                await Timer(rng.randint(1, 3000), unit="ns")
    await wait_bytes(dut, sink, len(sent))
    assert list(sink.received) == sent, \
        f"received {bytes(sink.received).hex()}\nsent     {bytes(sent).hex()}"
    assert int(dut.framing_errors.value) == 0 and int(dut.overruns.value) == 0


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def rx_framing_errors_and_glitches(dut):
    """Frames with a 0 stop bit are dropped and counted; low glitches shorter than half a bit
    are ignored; the bytes around them arrive intact."""
    driver, sink = await setup(dut)
    rng = random.Random(random.getrandbits(32))
    good, framing = [], 0
    divisor = design_params()["divisor"]
    for _ in range(80):
        case = rng.random()
        if case < 0.2:
            await driver.send_byte(rng.getrandbits(8), stop=0)
            framing += 1
        elif case < 0.3:
            dut.rx.value = 0
            await Timer(rng.randint(1, divisor // 2 - 3) * CLOCK_PERIOD_NS, unit="ns")
            dut.rx.value = 1
            await Timer(2 * round(bit_time() * 1e9), unit="ns")
        else:
            byte = rng.getrandbits(8)
            good.append(byte)
            await driver.send_byte(byte)
    await wait_bytes(dut, sink, len(good))
    assert list(sink.received) == good, \
        f"received {bytes(sink.received).hex()}\nexpected {bytes(good).hex()}"
    assert int(dut.framing_errors.value) == framing, \
        f"{int(dut.framing_errors.value)} framing errors counted, {framing} sent"
    assert int(dut.overruns.value) == 0


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def rx_overrun(dut):
    """A consumer that stalls for several byte times keeps the first byte, and each byte
    that completes meanwhile is dropped and counted."""
    start_clock(dut)
    driver = UartDriver(dut.rx, bit_time())
    dut.o__ready.value = 0
    dut.i__valid.value = 0
    await reset(dut)
    data = [random.getrandbits(8) for _ in range(4)]
    await driver.send(bytes(data))
    await Timer(round(bit_time() * 1e9), unit="ns")
    assert int(dut.o__valid.value) == 1 and int(dut.o__payload.value) == data[0]
    assert int(dut.overruns.value) == 3, f"{int(dut.overruns.value)} overruns, 3 expected"
    sink = StreamSink(dut, "o", dut.clk)
    await ClockCycles(dut.clk, 4)
    assert list(sink.received) == data[:1]


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def tx_bit_timing(dut):
    """Random bytes into the transmitter with random gaps: decoded right by the model, and
    every edge on the pin lies on the bit grid of its frame (divisor cycles per bit, a full
    stop bit before the next start)."""
    start_clock(dut)
    dut.rx.value = 1
    dut.o__ready.value = 1
    rng = random.Random(random.getrandbits(32))
    source = StreamSource(dut, "i", dut.clk, random_pauses(0.5, rng))
    received = []
    UartMonitor(dut.tx, bit_time(), received.append)
    edges = []

    async def record():
        while True:
            await Edge(dut.tx)
            edges.append((get_sim_time("ps"), int(dut.tx.value)))
    await reset(dut)
    cocotb.start_soon(record())
    data = [rng.getrandbits(8) for _ in range(120)]
    for byte in data:
        source.send_nowait(byte)
        if rng.random() < 0.1:
            await source.wait()
            await ClockCycles(dut.clk, rng.randint(1, 200))
    await source.wait()
    await Timer(12 * round(bit_time() * 1e9), unit="ns")
    assert received == data, f"decoded {bytes(received).hex()}\nsent    {bytes(data).hex()}"
    bit = round(bit_time() * 1e12)
    frame_end, frames = 0, 0
    for when, value in edges:
        if when >= frame_end:
            assert value == 0, f"a rising edge at {when} ps outside a frame"
            start, frame_end, frames = when, when + 10 * bit, frames + 1
        assert (when - start) % bit == 0, \
            f"edge at {when} ps is {(when - start) / bit:.3f} bits into its frame"
    assert frames == len(data), f"{frames} frames on the pin, {len(data)} bytes sent"
