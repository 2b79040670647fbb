"""cocotb tests of the whole package (:class:`chipknit.rtl.package.top.PackageTop`), end to
end through the host bridge's byte streams with the host API a board uses (``AsyncHost``).

- ``memory_and_errors``: random bursts (byte-masked rewrites included) to the memory tile on
  die 0, read back and compared; an unmapped address, a read past the memory and past an
  NPU window raise ``TransactionError`` with the network's status; the counters banks of
  both dies read over the fabric and agree with what happened.
- ``gemm_over_the_link``: the compiler's operand images (int8 A, W, quantisation
  parameters) written into the memory tile on die 0, the commands into an NPU tile's window
  on die 1 (polling ``free``, then ``status``); the NPU's DMA crosses the die link both ways;
  the result read back from memory is bit-exact against the golden model. Both NPU tiles.
- ``gemm_with_link_errors``: the same at a bit error rate of ``BER`` on every lane of the
  die link (the interposer's injector): still exact, and the link counters read over the
  fabric show CRC errors and replayed frames, with nothing lost.
- ``soak`` (run by the ``slow`` tests): host memory traffic while both NPUs run jobs, link
  errors on, several rounds.

Every host call goes over the bridge's byte streams with random backpressure on both.
"""

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from chipknit.host import AsyncHost, TransactionError, package_options
from chipknit.host.npu import (
    PROGRAM_BASE,
    WINDOW,
    NpuClient,
    gemm_demo,
    npu_limits,
    program_end,
)
from chipknit.host.scripts import memory_test
from chipknit.host.sim import StreamTransport
from chipknit.npu.compiler import compile_gemm
from chipknit.tb.dut import CLOCK_PERIOD_NS, design_params, reset, start_clock
from chipknit.tb.stream import random_pauses
from chipknit.tb.tests.npu_dma import compare, expected, random_quant
from chipknit.tb.tests.package_common import e2e_top

TIMEOUT_US = 200_000
#: Set to "1" in the environment to run ``soak`` (the ``slow`` tests do).
SOAK_ENV = "CHIPKNIT_PACKAGE_SOAK"
#: Bit error rate on the die link's lanes in the error tests.
BER = 2e-4


class PackageBench:
    """Clock, reset, the host on the bridge's byte streams, the package's address map."""

    def __init__(self, dut, pauses=0.2, top=None):
        self.dut = dut
        self.params = design_params()
        self.top = top or e2e_top(**self.params)
        start_clock(dut)
        self.set_ber(0)
        host = self.top.tile_params[self.top.host.name]
        self.transport = StreamTransport(dut, dut.clk, rx="host_rx", tx="host_tx",
                                         rx_pauses=random_pauses(pauses),
                                         tx_pauses=random_pauses(pauses))
        cycle = CLOCK_PERIOD_NS * 1e-9
        self.host = AsyncHost(self.transport, timeout=400_000 * cycle,
                              resync=3 * host.frame_timeout * cycle,
                              **package_options(self.top))
        self.memory = self.top.region("memory")
        self.npus = [e for e in self.top.map if e.kind == "npu"]

    def set_ber(self, ber: float) -> None:
        """Bit error rate ``ber`` on every lane of every die link."""
        for index in range(len(self.top.package.links)):
            getattr(self.dut, f"link_error_threshold__{index}").value = round(ber * 2 ** 32)

    async def counters(self, die: int) -> dict:
        """Every register of die ``die``'s counters bank, by name, in one burst read."""
        registers = self.top.registers(die)
        base = self.top.region(f"counters{die}").base
        values = await self.host.read(base, len(registers))
        return {r.name: v for r, v in zip(registers, values, strict=True)}

    # ---- the NPU, through its window (the host-side client the boards use too) -------------

    def pause(self, poll_cycles=200):
        """What the NPU client awaits between status polls that found nothing."""
        async def pause():
            await ClockCycles(self.dut.clk, poll_cycles)
        return pause

    def client(self, window, poll_cycles=200) -> NpuClient:
        """An :class:`NpuClient` for NPU ``window`` that waits ``poll_cycles`` between
        status polls that found nothing."""
        return NpuClient(self.host, window.name, window.base, self.memory.base,
                         pause=self.pause(poll_cycles))


def _gemm(gen, limits, base, shape=None):
    m, k, n = shape or (int(gen.integers(1, 2 * limits.acc_depth)),
                        int(gen.integers(1, 3 * limits.rows + 2)),
                        int(gen.integers(1, 2 * limits.cols + 2)))
    a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
    q = random_quant(gen, n)
    program = compile_gemm(a, w, q, limits, memory_base=base)
    return program, expected(a, w, q), f"{m}x{k}x{n}", program_end(program)


async def _gemms(bench, gen, shapes, base=PROGRAM_BASE):
    """Run ``shapes`` alternately on the NPU tiles, each program above the last; return
    the number of commands issued per window."""
    issued = {}
    for index, shape in enumerate(shapes):
        window = bench.npus[index % len(bench.npus)]
        limits = npu_limits(bench.top, window.name)
        program, want, what, end = _gemm(gen, limits, base, shape)
        assert 4 * end <= bench.memory.size, f"{what} does not fit the memory tile"
        got = await bench.client(window).run(program)
        compare(got, want, f"{window.name} {what}")
        cocotb.log.info(f"{window.name}: {what} GEMM, {len(program.commands)} commands, exact")
        issued[window.name] = issued.get(window.name, 0) + len(program.commands)
        base = end
    return issued


def _no_errors(counters: dict, die: int, allow=()):
    bad = {name: value for name, value in counters.items()
           if value and name not in allow and any(
               word in name for word in ("unroutable", "malformed", "dropped", "truncated",
                                         "decode_errors", "timeouts", "late", "errors",
                                         "duplicates", "out_of_order", "protocol_errors",
                                         "replayed", "naks", "discarded"))}
    assert not bad, f"die {die}: unexpected counts {bad}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def memory_and_errors(dut):
    """Random bursts and byte-masked writes to the memory tile, read back exactly; errors
    surface as TransactionError with the network's status; counters agree."""
    bench = PackageBench(dut)
    await reset(dut)
    host = bench.host
    result = await memory_test(host, base=bench.memory.base, n_words=384,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test: {result}"
    # Strobes within a word: only the chosen bytes change.
    addr = bench.memory.base + 4 * 400
    await host.write(addr, [0x11223344])
    await host.write(addr, [0xAABBCCDD], strobes=[0b1010])
    assert await host.read(addr, 1) == [0xAA22CC44]
    cases = [(0x8000_0000, "DECODE_ERROR"),                          # no region
             (bench.memory.base + bench.memory.size, "DECODE_ERROR"),  # past the memory
             (bench.npus[0].base + 0x100, "TARGET_ERROR")]            # past the NPU window
    for addr, status in cases:
        try:
            await host.read(addr, 2)
        except TransactionError as error:
            assert error.status_name == status, f"{addr:#x}: {error.status_name}"
        else:
            raise AssertionError(f"reading {addr:#x} did not fail")
    bridge = await host.read_counters()
    assert bridge["crc_errors"] == bridge["naks"] == bridge["bus_timeouts"] == 0, bridge
    die0, die1 = await bench.counters(0), await bench.counters(1)
    npu = bench.npus[0].name
    assert die0["host_ni_decode_errors"] == 2, die0
    assert die1[f"{npu}_window_errors"] == 1, die1
    _no_errors(die0, 0, allow={"host_ni_decode_errors"})
    _no_errors(die1, 1, allow={f"{npu}_window_errors"})
    assert die0["cycles"] > 0 and die0["link0_rx_crc_errors"] == 0
    # The NPU window read crossed the link: flits went both ways on both VCs.
    assert die0["link0_vc0_flits_out"] > 0 and die0["link0_vc1_flits_in"] > 0


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def memory_over_the_link(dut):
    """Any package's memory tile with the package's own beat and burst sizes (the
    ``icebreaker`` package: 16-bit beats, bursts of 16, its memory on the far die): random
    bursts and byte-masked rewrites read back exactly, error-free and then with bit errors
    on every lane of every die link; reads past the memory and of no region fail with
    DECODE_ERROR. The bridge counts no error; every link saw bit errors and replayed
    frames (``PackageTop``'s ``link_bit_errors``, ``link_replayed_frames``)."""
    bench = PackageBench(dut)
    await reset(dut)
    host, memory = bench.host, bench.memory
    words = min(memory.size // host.beat_bytes, 384)
    for ber in (0.0, BER):
        bench.set_ber(ber)
        result = await memory_test(host, base=memory.base, n_words=words,
                                   seed=random.getrandbits(32))
        assert result["errors"] == 0, f"memory test at BER {ber}: {result}"
        cocotb.log.info(f"BER {ber}: {words} words of {8 * host.beat_bytes} bits in "
                        f"{result['commands']} commands, exact")
    bench.set_ber(0)
    host_params = bench.top.tile_params[bench.top.host.name]
    top_address = 1 << host_params.transaction.addr_width
    for addr in (memory.base + memory.size, top_address - 2 * host.beat_bytes):
        try:
            await host.read(addr, 2)
        except TransactionError as error:
            assert error.status_name == "DECODE_ERROR", f"{addr:#x}: {error.status_name}"
        else:
            raise AssertionError(f"reading {addr:#x} did not fail")
    bridge = await host.read_counters()
    assert bridge["crc_errors"] == bridge["naks"] == bridge["bus_timeouts"] == 0, bridge
    for index in range(len(bench.top.package.links)):
        bit_errors = getattr(dut, f"link_bit_errors__{index}").value.to_unsigned()
        replayed = getattr(dut, f"link_replayed_frames__{index}").value.to_unsigned()
        cocotb.log.info(f"link {index}: {bit_errors} bit errors, {replayed} frames replayed")
        assert bit_errors > 0 and replayed > 0, (index, bit_errors, replayed)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def gemm_over_the_link(dut):
    """GEMMs on both NPU tiles (die 1) with operands and results in the memory tile
    (die 0), loaded and read by the host: bit-exact; the tiles' counters agree."""
    bench = PackageBench(dut)
    await reset(dut)
    gen = np.random.default_rng(random.getrandbits(32))
    limits = npu_limits(bench.top, bench.npus[0].name)
    shapes = [(1, 1, 1), (5, 2 * limits.rows + 3, limits.cols + 2), None]
    issued = await _gemms(bench, gen, shapes)
    # The board demo's own script (``python -m chipknit.host gemm``), over the same host.
    demo = await gemm_demo(bench.host, bench.top, seed=int(gen.integers(1 << 31)),
                           pause=bench.pause(), log=cocotb.log.info)
    assert demo["exact"], demo
    for entry in demo["gemms"] + demo["convs"]:
        issued[entry["npu"]] = issued.get(entry["npu"], 0) + entry["commands"]
    for window in bench.npus:
        (count,) = await bench.host.read(window.base + WINDOW["issued"], 1)
        (lost,) = await bench.host.read(window.base + WINDOW["lost"], 1)
        assert (count, lost) == (issued.get(window.name, 0), 0), (window.name, count, lost)
    for die in (d.number for d in bench.top.package.dies):
        _no_errors(await bench.counters(die), die)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def gemm_with_link_errors(dut):
    """Bit errors on every lane of the die link: memory traffic across it and GEMMs stay
    exact; CRC errors and replays are counted and read over the fabric."""
    bench = PackageBench(dut)
    await reset(dut)
    bench.set_ber(BER)
    gen = np.random.default_rng(random.getrandbits(32))
    limits = npu_limits(bench.top, bench.npus[0].name)
    await _gemms(bench, gen, [(2 * limits.acc_depth - 1, 3 * limits.rows + 1, limits.cols + 3),
                              None])
    bench.set_ber(0)
    totals = {"crc_errors": 0, "replayed_frames": 0, "bit_errors": 0}
    for die in (0, 1):
        counters = await bench.counters(die)
        cocotb.log.info(f"die {die} link counters: " + ", ".join(
            f"{k}={v}" for k, v in counters.items() if k.startswith("link") and v))
        totals["crc_errors"] += counters["link0_rx_crc_errors"]
        totals["replayed_frames"] += counters["link0_tx_replayed_frames"]
        totals["bit_errors"] += counters["link0_bit_errors"]
        # Replays and CRC errors are expected; nothing may be lost, duplicated or malformed.
        assert counters["link0_rx_protocol_errors"] == 0, counters
        _no_errors(counters, die, allow={
            "link0_rx_crc_errors", "link0_bit_errors", "link0_tx_replayed_frames",
            "link0_tx_naks", "link0_tx_timeouts", "link0_rx_duplicates",
            "link0_rx_out_of_order"})
    cocotb.log.info(f"link totals at BER {BER}: {totals}")
    assert totals["bit_errors"] > 0 and totals["crc_errors"] > 0, totals
    assert totals["replayed_frames"] > 0, totals


@cocotb.test(timeout_time=4 * TIMEOUT_US, timeout_unit="us",
             skip=os.environ.get(SOAK_ENV) != "1")
async def soak(dut):
    """Host memory traffic on die 0 while both NPUs run jobs, link errors on: rounds of
    (start a program on every NPU, random host bursts, collect and check)."""
    bench = PackageBench(dut)
    await reset(dut)
    bench.set_ber(BER)
    gen = np.random.default_rng(random.getrandbits(32))
    for round_ in range(int(os.environ.get("CHIPKNIT_PACKAGE_SOAK_ROUNDS", "3"))):
        base = PROGRAM_BASE
        runs = []
        for window in bench.npus:
            limits = npu_limits(bench.top, window.name)
            program, want, what, base = _gemm(gen, limits, base)
            assert 4 * base <= bench.memory.size, f"{what} does not fit"
            client = bench.client(window)
            await client.load(program)
            statuses = []
            await client.issue(program, statuses)
            runs.append((client, program, want, what, statuses))
        # Random host traffic below the programs while the NPUs work.
        result = await memory_test(bench.host, base=bench.memory.base, n_words=256,
                                   seed=int(gen.integers(1 << 31)))
        assert result["errors"] == 0, result
        for client, program, want, what, statuses in runs:
            await client.finish(program, statuses)
            compare(await client.read_result(program), want,
                    f"round {round_} {client.name} {what}")
        cocotb.log.info(f"soak round {round_}: {len(runs)} GEMMs exact with host traffic")
    bench.set_ber(0)
    for die in range(len(bench.top.package.dies)):
        counters = await bench.counters(die)
        assert counters.get("link0_rx_protocol_errors", 0) == 0, counters


#: ``chipknit bench package`` sets this to a JSON file for ``measure``'s figures.
BENCH_ENV = "CHIPKNIT_PACKAGE_BENCH"


@cocotb.test(timeout_time=8 * TIMEOUT_US, timeout_unit="us",
             skip=not os.environ.get(BENCH_ENV))
async def measure(dut):
    """The benchmark (``chipknit bench package``): one GEMM on ``npu0`` end to end at each
    BER of the bench's request; cycles of each phase, NPU MAC utilisation, link flits and
    replays from the counters banks, bit-exactness. Writes JSON to ``$CHIPKNIT_PACKAGE_BENCH``
    (the request is read from the same file)."""
    import json
    with open(os.environ[BENCH_ENV]) as file:
        request = json.load(file)
    bench = PackageBench(dut, pauses=0.0)
    window = bench.npus[0]
    limits = npu_limits(bench.top, window.name)
    m, k, n = request["shape"]
    points = []
    for ber in request["bers"]:
        await reset(dut)
        bench.set_ber(ber)
        gen = np.random.default_rng(request["seed"])
        a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
        q = random_quant(gen, n)
        program = compile_gemm(a, w, q, limits, memory_base=PROGRAM_BASE)
        client = bench.client(window, poll_cycles=20)
        t0 = await bench.counters(0)
        await client.load(program)
        before = [await bench.counters(0), await bench.counters(1)]
        await client.execute(program)
        after = [await bench.counters(0), await bench.counters(1)]
        got = await client.read_result(program)
        t1 = await bench.counters(0)
        compare(got, expected(a, w, q), f"bench {m}x{k}x{n} at BER {ber}")

        def delta(name, before=before, after=after):
            return sum(after[d][name] - before[d][name] for d in (0, 1))
        cycles = after[1]["cycles"] - before[1]["cycles"]
        flits = delta("link0_tx_flits")
        points.append({
            "ber": ber,
            "end_to_end_cycles": t1["cycles"] - t0["cycles"],
            "npu_phase_cycles": cycles,
            "commands": len(program.commands),
            "macs": m * k * n,
            "mac_utilisation": round(m * k * n / (limits.rows * limits.cols * cycles), 4),
            "link_flits": flits,
            "link_utilisation": round(flits / (2 * cycles * request["flits_per_cycle"]), 4),
            "crc_errors": delta("link0_rx_crc_errors"),
            "replayed_frames": delta("link0_tx_replayed_frames"),
            "bit_errors": delta("link0_bit_errors"),
            "bit_exact": True,
        })
        cocotb.log.info(f"bench point: {points[-1]}")
    with open(os.environ[BENCH_ENV], "w") as file:
        json.dump({"points": points}, file)
