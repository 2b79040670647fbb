"""cocotb tests of :class:`chipknit.rtl.tiles.npu.NpuTile`: the NPU driven through its
register window, as a host on the network drives it.

A host coroutine issues reads and writes on the tile's target port (``control``) one at a
time with random stalls, polling ``free`` before it writes a command and ``status`` for
completions; the DMA fetches and stores through a memory-target model on ``dma`` (random
stalls and latency). Programs come from the host compiler (:mod:`chipknit.npu`) and the
results and statuses must equal the golden model's. Also: commands written while the tile
is full are dropped and counted exactly; requests outside the window are refused and
counted; results not stored are drained and counted.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.npu import isa
from chipknit.npu.compiler import check_statuses, compile_gemm
from chipknit.npu.machine import RemoteMemory
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.stream import random_pauses
from chipknit.tb.tests.npu_dma import MemoryTarget, compare, expected, random_quant, tile_params
from chipknit.tb.tests.register_bank import Fields

TIMEOUT_US = 20000
OKAY, TARGET_ERROR = 0, 2
ADDRESS = {"command_lo": 0x00, "command_hi": 0x04, "status": 0x08, "free": 0x0C,
           "pending": 0x10, "issued": 0x14, "lost": 0x18, "busy": 0x1C}


class _Renamed:
    """The DUT seen with ``dma__*`` signals named ``bus__*`` (what MemoryTarget drives)."""

    def __init__(self, dut):
        self._dut = dut

    def __getattr__(self, name):
        if name.startswith("bus__"):
            name = "dma__" + name[len("bus__"):]
        return getattr(self._dut, name)


class WindowMaster:
    """Reads and writes the tile's register window, one transaction at a time."""

    def __init__(self, dut, transaction, pause=0.3):
        self.dut = dut
        self.pause = pause
        p = transaction
        self.request = Fields(("write", 1), ("addr", p.addr_width), ("length", p.length_bits),
                              ("tag", p.tag_bits))
        self.wdata = Fields(("data", 32), ("strobe", 4), ("last", 1))
        self.response = Fields(("write", 1), ("tag", p.tag_bits), ("status", 2),
                               ("data", 32), ("last", 1))
        for stream in ("request", "wdata"):
            getattr(dut, f"control__{stream}__valid").value = 0
        dut.control__response__ready.value = 0
        self.tag = 0

    async def _pause(self):
        while random.random() < self.pause:
            await RisingEdge(self.dut.clk)

    async def _send(self, stream, payload):
        await self._pause()
        valid = getattr(self.dut, f"control__{stream}__valid")
        ready = getattr(self.dut, f"control__{stream}__ready")
        getattr(self.dut, f"control__{stream}__payload").value = payload
        valid.value = 1
        while True:
            await RisingEdge(self.dut.clk)
            if int(ready.value):
                break
        valid.value = 0

    async def _receive(self):
        beats = []
        while True:
            ready = int(random.random() >= self.pause)
            self.dut.control__response__ready.value = ready
            await RisingEdge(self.dut.clk)
            if ready and int(self.dut.control__response__valid.value):
                beat = self.response.unpack(int(self.dut.control__response__payload.value))
                assert beat["tag"] == self.tag, f"response tag {beat['tag']} != {self.tag}"
                beats.append(beat)
                if beat["last"]:
                    self.dut.control__response__ready.value = 0
                    return beats

    async def write(self, addr, words):
        self.tag = (self.tag + 1) % 16
        await self._send("request", self.request.pack(write=1, addr=addr,
                                                      length=len(words) - 1, tag=self.tag))
        for i, word in enumerate(words):
            await self._send("wdata", self.wdata.pack(data=word, strobe=0xF,
                                                      last=i == len(words) - 1))
        (beat,) = await self._receive()
        assert beat["write"] == 1
        return beat["status"]

    async def read(self, addr, count=1):
        self.tag = (self.tag + 1) % 16
        await self._send("request", self.request.pack(write=0, addr=addr, length=count - 1,
                                                      tag=self.tag))
        beats = await self._receive()
        assert len(beats) == count
        return [b["status"] for b in beats], [b["data"] for b in beats]

    async def register(self, name):
        (status,), (value,) = await self.read(ADDRESS[name])
        assert status == OKAY, f"reading {name}: status {status}"
        return value


class NpuTileBench:
    def __init__(self, dut, pause=0.3):
        self.dut = dut
        self.limits, self.transaction = tile_params(design_params())
        self.memory = RemoteMemory(self.limits.beat_bytes)
        start_clock(dut)
        self.target = MemoryTarget(_Renamed(dut), self.transaction, self.memory,
                                   request_pauses=random_pauses(pause),
                                   wdata_pauses=random_pauses(pause),
                                   response_pauses=random_pauses(pause))
        self.host = WindowMaster(dut, self.transaction, pause)
        self.statuses = []

    async def issue(self, word, *, check_free=True):
        if check_free:
            while not await self.host.register("free"):
                await self.collect()
        status = await self.host.write(ADDRESS["command_lo"], [word & 0xFFFFFFFF, word >> 32])
        assert status == OKAY

    async def collect(self):
        """Read every waiting status record."""
        while True:
            (status,), (value,) = await self.host.read(ADDRESS["status"])
            assert status == OKAY
            if not value >> 31:
                return
            self.statuses.append(isa.decode_status(value & 0xFFFF))

    async def run(self, program, limit_cycles=400000):
        for address, blob in program.memory.items():
            self.memory.write(address, blob)
        first = len(self.statuses)
        for word in program.commands:
            await self.issue(word)
        for _ in range(limit_cycles // 50):
            if len(self.statuses) - first >= len(program.commands):
                break
            await self.collect()
            await ClockCycles(self.dut.clk, 50)
        statuses = self.statuses[first:]
        assert len(statuses) == len(program.commands), (
            f"{len(statuses)} statuses for {len(program.commands)} commands")
        base = statuses[0][2]
        check_statuses(program, [(c, o, (s - base) % 256) for c, o, s in statuses])
        return program.result(memory=self.memory)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def gemm_through_the_window(dut):
    """Compiled GEMMs (incl. non-multiples) run through the register window and the DMA,
    bit-exact; the tile's counters agree with what the host did."""
    bench = NpuTileBench(dut)
    await reset(dut)
    gen = np.random.default_rng(random.getrandbits(32))
    lim = bench.limits
    base = 0
    commands = 0
    for m, k, n in [(1, 1, 1), (5, 2 * lim.rows + 3, lim.cols + 2), (9, 7, 6)]:
        a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
        q = random_quant(gen, n)
        program = compile_gemm(a, w, q, lim, memory_base=base)
        base = max(program.memory) + 4096 // lim.beat_bytes
        compare(await bench.run(program), expected(a, w, q), f"{m}x{k}x{n}")
        commands += len(program.commands)
    assert await bench.host.register("issued") == commands
    assert await bench.host.register("lost") == 0
    assert await bench.host.register("pending") == 0
    assert int(dut.discarded.value) == 0


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def commands_past_full_are_counted(dut):
    """A host that ignores ``free`` loses commands; every one is counted, none silently."""
    bench = NpuTileBench(dut, pause=0.0)
    await reset(dut)
    lim = bench.limits
    # Long computes keep the queue busy while the host writes more than it can hold.
    word = isa.compute(m=lim.acc_depth, k_blocks=1)
    written = 40
    for _ in range(written):
        await bench.issue(word, check_free=False)
    lost = await bench.host.register("lost")
    issued = await bench.host.register("issued")
    assert lost > 0, "the tile never filled up"
    assert lost + issued == written, f"lost {lost} + issued {issued} != {written}"
    for _ in range(2000):
        await bench.collect()
        if len(bench.statuses) == issued:
            break
        await ClockCycles(dut.clk, 50)
    assert len(bench.statuses) == issued
    assert all(code == isa.Status.OK for code, _, _ in bench.statuses)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def window_errors_and_discarded_results(dut):
    """Outside the window or a write to a read-only register: TARGET_ERROR, counted.
    A REQUANTISE without STORE: its results are drained and counted."""
    bench = NpuTileBench(dut)
    await reset(dut)
    statuses, data = await bench.host.read(0x20, 2)
    assert statuses == [TARGET_ERROR] * 2 and data == [0, 0]
    assert await bench.host.write(ADDRESS["status"], [1]) == TARGET_ERROR
    assert await bench.host.write(ADDRESS["busy"], [1, 2]) == TARGET_ERROR
    assert int(dut.window_errors.value) == 3
    await bench.issue(isa.requantise(m=2, bypass=True))
    for _ in range(100):
        await bench.collect()
        if bench.statuses:
            break
        await ClockCycles(dut.clk, 10)
    assert bench.statuses and bench.statuses[0][0] == isa.Status.OK
    assert int(dut.discarded.value) == 2 * bench.limits.groups, int(dut.discarded.value)
