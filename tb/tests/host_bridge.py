"""cocotb tests of :class:`chipknit.rtl.host.bridge.HostBridge`, byte for byte.

Scoreboard: :class:`chipknit.tb.models.host.BridgeModel` is fed the same bytes (and told of
the same silences) as the bridge; every byte the bridge sends must be the model's, in order,
and its counters must end equal to the model's. Behind the bridge, a
:class:`~chipknit.tb.tests.host_common.MemoryTarget` serves a memory with random
backpressure, random latency, error statuses by address region and late answers. The
bridge's own byte streams stall at random too.

Tests: random commands (reads, writes, masked writes, counter reads, error regions,
unaligned and out-of-range bursts, over-long commands); damaged input (garbage, truncated
frames, flipped bits, unknown ops); bus timeouts with late responses; the host API
(:class:`chipknit.host.AsyncHost`) over :class:`chipknit.host.sim.StreamTransport`, with a
transport that corrupts frames.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.host import AsyncHost, NakError, TransactionError
from chipknit.host.protocol import (
    OP_COUNTERS,
    OP_READ,
    OP_WRITE,
    OP_WRITE_MASKED,
    STATUS_DECODE_ERROR,
    STATUS_TARGET_ERROR,
    STATUS_TIMEOUT,
    encode_command,
)
from chipknit.host.scripts import memory_test
from chipknit.host.sim import StreamTransport
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.host import (
    COUNTERS,
    DECODE_ERROR,
    TARGET_ERROR,
    TIMEOUT,
    MemoryModel,
    Region,
)
from chipknit.tb.stream import StreamSink, StreamSource, random_pauses
from chipknit.tb.tests.host_common import MemoryTarget, bridge_model, bridge_params

TIMEOUT_US = 4000
MEMORY_BYTES = 4096
REGIONS = (Region(0x1000, 0x100, DECODE_ERROR), Region(0x1100, 0x100, TARGET_ERROR),
           Region(0x1200, 0x100, TIMEOUT), Region(0x1300, 0x100, "slow"))
SLOW = 0x1300


class BridgeBench:
    def __init__(self, dut, *, pause=0.3, rng=None):
        self.dut = dut
        self.params = design_params()
        self.p = bridge_params(**self.params)
        self.rng = rng or random.Random(random.getrandbits(32))
        start_clock(dut)
        transport = (self.rng.randrange(1 << 16), self.rng.randrange(1 << 16))
        dut.transport_errors.value, dut.transport_overruns.value = transport
        self.model = bridge_model(self.params, MemoryModel(
            beat_bytes=self.p.beat_bytes, size=MEMORY_BYTES, regions=REGIONS),
            transport=transport)
        self.memory = MemoryModel(beat_bytes=self.p.beat_bytes, size=MEMORY_BYTES,
                                  regions=REGIONS)
        self.slow_delay = 2 * self.p.bus_timeout + 100
        self.target = MemoryTarget(dut, "bus", dut.clk, self.p.transaction, self.memory,
                                   pause=pause, slow_delay=self.slow_delay, rng=self.rng)
        self.pause = pause
        self.source = StreamSource(dut, "rx", dut.clk, random_pauses(pause, self.rng))
        self.out = bytearray()
        self.expected = bytearray()
        self.sink = StreamSink(dut, "tx", dut.clk, random_pauses(pause, self.rng),
                               callback=self.out.append)
        self.tag = 0

    def next_tag(self):
        self.tag = (self.tag + 1) & 0xFF
        return self.tag

    async def send(self, data: bytes, what: str = "") -> None:
        """Send bytes; wait until the bridge has said all the model says it should."""
        self.expected += self.model.feed(data)
        self.source.send_all(data)
        await self.source.wait()
        await self.settle(what or data.hex())

    async def settle(self, what: str) -> None:
        for _ in range(20000):
            if len(self.out) >= len(self.expected):
                break
            await RisingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, 30)   # and nothing more comes
        if self.out != self.expected:
            at = next((i for i, (a, b) in enumerate(zip(self.out, self.expected, strict=False))
                       if a != b), min(len(self.out), len(self.expected)))
            raise AssertionError(
                f"after {what}: bridge sent {len(self.out)} bytes, model {len(self.expected)}; "
                f"first difference at byte {at}: bridge {bytes(self.out[at:at + 16]).hex()} "
                f"model {bytes(self.expected[at:at + 16]).hex()}")

    async def gap(self) -> None:
        """Silence past the frame timeout."""
        await ClockCycles(self.dut.clk, self.p.frame_timeout + 10)
        self.model.gap()

    def frame(self, op, addr, words=(), strobes=None, length=None):
        return encode_command(op, self.next_tag(), addr, words, strobes=strobes,
                              beat_bytes=self.p.beat_bytes, length=length)

    def random_words(self, n):
        return [self.rng.getrandbits(8 * self.p.beat_bytes) for _ in range(n)]

    def random_addr(self, beats):
        span = MEMORY_BYTES // self.p.beat_bytes - beats
        return self.rng.randrange(max(span, 1)) * self.p.beat_bytes

    def random_command(self):
        rng, p = self.rng, self.p
        kind = rng.random()
        buffer_beats, max_read = p.buffer_beats, p.max_read_beats
        beats = rng.randint(1, buffer_beats) if rng.random() < 0.9 else \
            rng.randint(buffer_beats + 1, min(256, buffer_beats + 8))
        addr = self.random_addr(beats)
        where = rng.random()
        if where < 0.06:
            addr = rng.choice(REGIONS[:3]).base + rng.randrange(16) * p.beat_bytes
        elif where < 0.08:
            addr += rng.randint(1, p.beat_bytes - 1)          # unaligned
        elif where < 0.10:
            addr = MEMORY_BYTES - p.beat_bytes                # runs off the end
        if kind < 0.35:
            return self.frame(OP_WRITE, addr, self.random_words(beats))
        if kind < 0.5:
            return self.frame(OP_WRITE_MASKED, addr, self.random_words(beats),
                              [rng.getrandbits(p.beat_bytes) for _ in range(beats)])
        if kind < 0.93:
            beats = rng.randint(1, min(64, max_read)) if rng.random() < 0.85 else \
                rng.randint(1, min(256, max_read + 4))
            return self.frame(OP_READ, self.random_addr(min(beats, 64)), length=beats - 1)
        return self.frame(OP_COUNTERS, 0)

    async def check_counters(self) -> None:
        await ClockCycles(self.dut.clk, 5)
        for name in COUNTERS[:7]:
            got = int(getattr(self.dut, name).value)
            assert got == self.model.counters[name], \
                f"counter {name}: bridge {got}, model {self.model.counters[name]}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_commands(dut):
    """Random reads, writes, masked writes and counter reads, with error statuses, unaligned
    and over-long bursts; backpressure everywhere; byte-exact against the model."""
    bench = BridgeBench(dut)
    await reset(dut)
    for index in range(int(bench.params.get("commands", 150))):
        frame = bench.random_command()
        await bench.send(frame, f"command {index} ({frame[:8].hex()}...)")
    # A read of everything written, in the largest reads the bridge takes.
    for addr in range(0, 1024, bench.p.max_read_beats * bench.p.beat_bytes):
        await bench.send(bench.frame(OP_READ, addr, length=bench.p.max_read_beats - 1))
    await bench.send(bench.frame(OP_COUNTERS, 0), "final counter read")
    await bench.check_counters()
    assert bench.model.counters["commands"] > 100
    assert bench.model.counters["naks"] > 0, "no over-long command was drawn"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def damaged_input(dut):
    """Garbage between frames, truncated frames, flipped bits, unknown ops, over-long
    commands, addresses past addr_width: each gets its defined answer (NAK, silence) and
    count, and the next good command works."""
    bench = BridgeBench(dut)
    rng = bench.rng
    await reset(dut)
    good = [0]

    async def good_command():
        good[0] += 1
        words = bench.random_words(rng.randint(1, bench.p.buffer_beats))
        addr = bench.random_addr(len(words))
        await bench.send(bench.frame(OP_WRITE, addr, words), "a write after damage")
        await bench.send(bench.frame(OP_READ, addr, length=len(words) - 1),
                         "a read after damage")

    for round_ in range(60):
        case = round_ % 6
        frame = bench.random_command()
        if case == 0:       # garbage (sync bytes included), then silence
            garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
            await bench.send(garbage, f"garbage {garbage.hex()}")
            await bench.gap()
        elif case == 1:     # a frame cut short, then silence
            cut = frame[:rng.randint(1, len(frame) - 1)]
            await bench.send(cut, f"truncated frame {cut.hex()}")
            await bench.gap()
        elif case == 2:     # a bit flipped anywhere after the sync byte
            damaged = bytearray(frame)
            damaged[rng.randrange(1, len(frame))] ^= 1 << rng.randrange(8)
            await bench.send(bytes(damaged), f"damaged frame {bytes(damaged).hex()}")
            await bench.gap()
        elif case == 3:     # an unknown op with a good CRC
            op = rng.choice([0x00, 0x05, 0x7F, 0x81, 0xFF])
            await bench.send(encode_command(op, bench.next_tag(), 0), f"op {op:#x}")
        elif case == 4:     # too long for the buffer (writes) or the network (reads)
            beats = rng.randint(bench.p.buffer_beats + 1, 256)
            await bench.send(bench.frame(OP_WRITE, 0, bench.random_words(beats)),
                             f"{beats}-beat write")
            if bench.p.max_read_beats < 256:
                await bench.send(bench.frame(OP_READ, 0, length=bench.p.max_read_beats),
                                 "over-long read")
        else:               # garbage straight before a good frame (no silence)
            garbage = bytes(rng.choice([b for b in range(256) if b != 0xA5])
                            for _ in range(rng.randint(1, 8)))
            await bench.send(garbage + frame, "garbage then a frame")
        await good_command()
    addr_width = bench.p.transaction.addr_width
    if addr_width < 32:
        # Each bit above the network's address is refused, whatever byte it arrives in; the
        # bridge keeps only the bits the network has and whether any other is set.
        for bit in sorted({addr_width, rng.randrange(addr_width, 32), 31}):
            low = rng.randrange(1 << addr_width)
            await bench.send(bench.frame(OP_READ, (1 << bit) | low, length=0),
                             "address too wide")
            await good_command()
    await bench.send(bench.frame(OP_COUNTERS, 0), "final counter read")
    await bench.check_counters()
    counters = bench.model.counters
    for name in ("garbage_bytes", "crc_errors", "frame_timeouts", "naks"):
        assert counters[name] > 0, f"no {name} were provoked: {counters}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def bus_timeouts(dut):
    """A target that answers after the bus timeout: the command ends with BUS_TIMEOUT (a
    read padded to its length), the late beats are dropped as stale, and later commands
    are unaffected."""
    bench = BridgeBench(dut)
    rng = bench.rng
    await reset(dut)
    for _ in range(8):
        beats = rng.randint(1, bench.p.buffer_beats)
        if rng.random() < 0.5:
            await bench.send(bench.frame(OP_READ, SLOW, length=beats - 1), "slow read")
        else:
            await bench.send(bench.frame(OP_WRITE, SLOW, bench.random_words(beats)),
                             "slow write")
        await ClockCycles(dut.clk, bench.slow_delay + 200)   # the late answer drains
        words = bench.random_words(rng.randint(1, bench.p.buffer_beats))
        addr = bench.random_addr(len(words))
        await bench.send(bench.frame(OP_WRITE, addr, words))
        await bench.send(bench.frame(OP_READ, addr, length=len(words) - 1))
    await bench.send(bench.frame(OP_COUNTERS, 0), "final counter read")
    await bench.check_counters()
    assert bench.model.counters["bus_timeouts"] == 8
    assert bench.model.counters["stale_responses"] >= 8


def _corrupter(rng, probability):
    """Damages a fraction of the frames the host sends: a bit flip, or a cut."""
    def corrupt(data: bytes) -> bytes:
        if rng.random() >= probability:
            return data
        if rng.random() < 0.5:
            damaged = bytearray(data)
            damaged[rng.randrange(1, len(data))] ^= 1 << rng.randrange(8)
            return bytes(damaged)
        return data[:rng.randint(1, len(data) - 1)]
    return corrupt


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def host_api(dut):
    """The host API against the bridge through the simulation transport: the shared memory
    test script, error statuses as exceptions, NAKs retried, and a transport that damages
    one frame in five (the host retries; the data still comes out right)."""
    params = design_params()
    p = bridge_params(**params)
    rng = random.Random(random.getrandbits(32))
    start_clock(dut)
    dut.transport_errors.value = 0
    dut.transport_overruns.value = 0
    memory = MemoryModel(beat_bytes=p.beat_bytes, size=MEMORY_BYTES, regions=REGIONS)
    MemoryTarget(dut, "bus", dut.clk, p.transaction, memory, rng=rng,
                 slow_delay=2 * p.bus_timeout + 100)
    transport = StreamTransport(dut, dut.clk, rx_pauses=random_pauses(0.3, rng),
                                tx_pauses=random_pauses(0.3, rng))
    options = {"beat_bytes": p.beat_bytes, "max_read_beats": p.max_read_beats,
               "max_write_beats": p.buffer_beats, "timeout": 100e-6,
               "resync": 2 * p.frame_timeout * 10e-9, "retries": 8}
    host = AsyncHost(transport, **options)
    await reset(dut)

    result = await memory_test(host, base=0, n_words=300, seed=rng.getrandbits(32))
    assert result["errors"] == 0, result
    counters = await host.read_counters()
    assert counters["commands"] > 0 and counters["naks"] == 0, counters

    for base, status in ((0x1000, STATUS_DECODE_ERROR), (0x1100, STATUS_TARGET_ERROR),
                         (0x1200, STATUS_TIMEOUT)):
        try:
            await host.read(base, 2)
        except TransactionError as error:
            assert error.status == status, f"{error} (expected status {status})"
        else:
            raise AssertionError(f"a read at {base:#x} did not fail")

    # Longer writes than the bridge buffers: refused every time, as a NAK with the reason.
    greedy = AsyncHost(transport, **{**options, "max_write_beats": p.buffer_beats + 1,
                                     "retries": 1})
    try:
        await greedy.write(0, [1] * (p.buffer_beats + 1))
    except NakError as error:
        assert error.status_name == "BAD_LENGTH", error
    else:
        raise AssertionError("an over-long write was not refused")

    # One frame in five damaged on its way in: retried until it gets through.
    transport.corrupt = _corrupter(rng, 0.2)
    flaky = AsyncHost(transport, **options, retry_writes=True)
    result = await memory_test(flaky, base=0x400, n_words=200, seed=rng.getrandbits(32))
    transport.corrupt = None
    assert result["errors"] == 0, result
    assert flaky.stats["retries"] > 0, flaky.stats
    counters = await host.read_counters()
    assert counters["naks"] + counters["frame_timeouts"] > 0, counters
    dut._log.info(f"host stats with damage: {flaky.stats}; bridge counters: {counters}")
