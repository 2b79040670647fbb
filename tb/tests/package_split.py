"""cocotb tests of a package split one die per chip (:class:`chipknit.rtl.package.split.
SplitPackage`): each die is what ``chipknit build --die N`` puts on a board, the lanes
between them interposer models. The host drives it through the host bridge's byte streams
with the same API a board uses.

- ``trains_through_skew_and_dead_lanes``: random lane skew both ways and a stuck lane in
  each direction; both ends train (deskew, lane repair), then random host bursts to the
  memory across the link read back exactly; both dies' counters banks, read over the
  fabric, show the link ACTIVE, the dead lanes mapped out and no error.
- ``die_reset_mid_transfer``: die 1 (the far die) is held in reset in the middle of host
  traffic. Every host command that fails says so (``TransactionError``, counted by the
  host's interface as a timeout: never a hang, never silent); the link retrains by itself
  and the same traffic then runs exactly; die 0's counters show the link reset.
- ``errors_on_the_trained_link``: bit errors on every lane both ways: host traffic stays
  exact; CRC errors and replays are counted, nothing lost or duplicated.
- ``gemm_over_the_trained_link`` (packages with NPUs, the ``slow`` test): GEMMs on the NPU
  die with operands in the memory die, bit-exact.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from chipknit.host import TransactionError
from chipknit.host.scripts import memory_test
from chipknit.rtl.link.training import TrainingState
from chipknit.tb.dut import design_params, reset
from chipknit.tb.tests.package_common import e2e_package, split_top
from chipknit.tb.tests.package_e2e import PackageBench, _gemms, _no_errors

TIMEOUT_US = 200_000
#: Bit error rate on the lanes in ``errors_on_the_trained_link``.
BER = 2e-4
#: Cycles both ends get to train (bring-up takes ~1300 with the default training params).
TRAIN_CYCLES = 20_000
#: Errors that are expected on a link that trained and retrained (nothing lost).
LINK_NOISE = ("crc_errors", "replayed_frames", "naks", "timeouts", "duplicates",
              "out_of_order")


class SplitBench(PackageBench):
    """:class:`PackageBench` on the split package: lane controls per link and direction."""

    def __init__(self, dut, pauses=0.2):
        super().__init__(dut, pauses, top=split_top(**design_params()))
        self.links = len(self.top.package.links)
        for index in range(self.links):
            for way in ("ab", "ba"):
                for name in ("delay", "stuck_mask", "stuck_value", "reverse"):
                    getattr(dut, f"link{index}_{way}_{name}").value = 0
        dut.die_reset.value = 0

    def set_ber(self, ber: float) -> None:
        for index in range(len(self.top.package.links)):
            for way in ("ab", "ba"):
                getattr(self.dut, f"link{index}_{way}_error_threshold").value = round(
                    ber * 2 ** 32)

    def skew(self, index: int, way: str, delays) -> None:
        ip = self.top.interposer_params[index, way]
        getattr(self.dut, f"link{index}_{way}_delay").value = sum(
            d << (ip.delay_bits * lane) for lane, d in enumerate(delays))

    def active(self) -> bool:
        return all(int(getattr(self.dut, f"link{index}_{side}_training__state").value)
                   == TrainingState.ACTIVE.value
                   for index in range(self.links) for side in "ab")

    async def trained(self, cycles: int = TRAIN_CYCLES) -> int:
        """Wait until every end of every link is ACTIVE; return the cycles it took."""
        for waited in range(0, cycles, 16):
            if self.active():
                return waited
            await ClockCycles(self.dut.clk, 16)
        states = {f"link{i}_{s}": int(getattr(self.dut, f"link{i}_{s}_training__state").value)
                  for i in range(self.links) for s in "ab"}
        raise AssertionError(f"links not ACTIVE after {cycles} cycles: {states}")


def _clean(counters: dict, die: int, allow=()):
    """No error counts on die ``die`` but the link noise named in ``allow``."""
    _no_errors(counters, die, allow=set(allow))
    for name, value in counters.items():
        if name.endswith("rx_protocol_errors"):
            assert value == 0, (die, name, value)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def trains_through_skew_and_dead_lanes(dut):
    """Skew and a dead lane each way: the link trains and carries exact traffic."""
    bench = SplitBench(dut)
    lanes = bench.top.interposer_params[0, "ab"].lane_params.lanes
    max_delay = bench.top.interposer_params[0, "ab"].max_delay
    dead = {}
    for way in ("ab", "ba"):
        bench.skew(0, way, [random.randint(0, max_delay) for _ in range(lanes)])
        dead[way] = random.randrange(lanes)
        getattr(dut, f"link0_{way}_stuck_mask").value = 1 << dead[way]
        getattr(dut, f"link0_{way}_stuck_value").value = random.getrandbits(lanes)
    await reset(dut)
    cycles = await bench.trained()
    cocotb.log.info(f"trained in {cycles} cycles; dead lanes {dead}")
    result = await memory_test(bench.host, base=bench.memory.base, n_words=256,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test: {result}"
    full = (1 << lanes) - 1
    die_of = {"ab": bench.top.package.links[0].b.die, "ba": bench.top.package.links[0].a.die}
    for way, die in die_of.items():
        counters = await bench.counters(die)
        assert counters["link0_state"] == TrainingState.ACTIVE.value, counters
        # The receiving end mapped the dead lane out (straight wiring: wire = lane).
        assert counters["link0_lane_map"] == full & ~(1 << dead[way]), (way, counters)
        assert counters["link0_vc0_flits_in"] + counters["link0_vc1_flits_in"] > 0, counters
        _clean(counters, die)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def die_reset_mid_transfer(dut):
    """The far die is reset in the middle of host traffic: failures are reported, the
    link retrains by itself, then traffic is exact again."""
    bench = SplitBench(dut)
    await reset(dut)
    await bench.trained()
    host, base = bench.host, bench.memory.base
    far = next(i for i, die in enumerate(bench.top.package.dies)
               if die.number == bench.memory.node.die)
    failures = []

    async def traffic(rounds):
        for round_ in range(rounds):
            words = [random.getrandbits(32) for _ in range(random.randint(1, 32))]
            at = base + 4 * random.randrange(0, 512)
            try:
                await host.write(at, words)
                got = await host.read(at, len(words))
            except TransactionError as error:
                failures.append((round_, error.status_name))
                continue
            assert got == words, f"round {round_}: read back {got} for {words}"

    task = cocotb.start_soon(traffic(12))
    await ClockCycles(dut.clk, random.randint(3000, 6000))
    dut.die_reset.value = 1 << far
    await ClockCycles(dut.clk, random.randint(200, 2000))
    dut.die_reset.value = 0
    await task
    cocotb.log.info(f"host commands that failed while die {far} was reset: {failures}")
    await bench.trained()
    result = await memory_test(host, base=base, n_words=256, seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test after the reset: {result}"
    near = bench.top.package.dies[1 - far].number
    counters = await bench.counters(near)
    cocotb.log.info("near die link counters: " + ", ".join(
        f"{k}={v}" for k, v in counters.items() if k.startswith("link") and v))
    assert counters["link0_retrains"] + counters["link0_link_resets"] >= 1, counters
    assert counters["link0_state"] == TrainingState.ACTIVE.value, counters
    # Every failure reached the host as a timeout status, and each was counted.
    assert all(status == "TIMEOUT" for _round, status in failures), failures
    assert counters["host_ni_timeouts"] == len(failures), (counters, failures)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def errors_on_the_trained_link(dut):
    """Bit errors on every lane both ways: exact traffic, CRC errors and replays counted."""
    bench = SplitBench(dut)
    await reset(dut)
    await bench.trained()
    bench.set_ber(BER)
    result = await memory_test(bench.host, base=bench.memory.base, n_words=384,
                               seed=random.getrandbits(32))
    bench.set_ber(0)
    assert result["errors"] == 0, f"memory test: {result}"
    totals = {"crc_errors": 0, "replayed_frames": 0}
    for die in (d.number for d in bench.top.package.dies):
        counters = await bench.counters(die)
        totals["crc_errors"] += counters["link0_rx_crc_errors"]
        totals["replayed_frames"] += counters["link0_tx_replayed_frames"]
        _clean(counters, die, allow={f"link0_{d}_{n}" for d in ("tx", "rx")
                                     for n in LINK_NOISE} | {"link0_retrains"})
    cocotb.log.info(f"link totals at BER {BER}: {totals}")
    assert totals["crc_errors"] > 0 and totals["replayed_frames"] > 0, totals


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us",
             skip=not any(t.kind == "npu" for t in e2e_package(**design_params()).tiles))
async def gemm_over_the_trained_link(dut):
    """GEMMs on every NPU with operands and results in the memory die: bit-exact."""
    bench = SplitBench(dut)
    await reset(dut)
    await bench.trained()
    gen = np.random.default_rng(random.getrandbits(32))
    await _gemms(bench, gen, [(1, 1, 1), None, None])
    for die in (d.number for d in bench.top.package.dies):
        _clean(await bench.counters(die), die)
