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
- ``far_die_powered_later``: the far die is held in reset from the start (its board is
  off): the near end's training fails and retries (counted, readable in the near die's
  counters bank over the fabric); host commands across the link, long bursts too, are
  discarded at the link end (counted) and each ends in a ``TIMEOUT``, while the near die
  keeps answering; once the far die comes up the link trains by itself and traffic is
  exact, with no stale response.
- ``lanes_beyond_repair``: three dead lanes one way, one more than the spares: that way
  runs at half width and carries exact traffic; then most lanes die on the live link: it
  retrains, training fails for lack of lanes (``ErrorCause.LANES``, counted), a host
  command ends in ``TIMEOUT``; the lanes heal and the link comes back at full width, exact.
- ``errors_on_the_trained_link``: bit errors on every lane both ways: host traffic stays
  exact; CRC errors and replays are counted, nothing lost or duplicated.
- ``gemm_over_the_trained_link`` (packages with NPUs, the ``slow`` test): GEMMs on the NPU
  die with operands in the memory die, bit-exact.
- ``npu_die_reset_mid_gemm`` (packages with an NPU off the host's die, the ``slow`` test):
  a GEMM on the far die's NPU is exact; then twice a bigger one (several K tiles) is
  started and, once the NPU's own ``issued`` count shows part of it in, the NPU's die is
  held in reset. The host's GEMM call ends within a cycle bound in the driver's error,
  never a result or a hang. Briefly (the link is back within a command's timeout): a
  ``TIMEOUT`` (a command lost with the link's adapters, counted by the host's interface)
  or, when every command got through, ``NpuError`` (statuses missing: the commands held
  meanwhile reached the fresh tile, whose ``issued`` count shows just those). Past a
  failed training attempt of the near end: always ``TIMEOUT`` (what waited for the far die
  is discarded; nothing from before the reset reaches the fresh tile, its ``issued`` count
  starts at 0). Each time the link retrains by itself and a fresh GEMM (new operands, new
  program area) on the same NPU is exact; memory traffic on the near die is exact; no late
  response; both dies' counters show the retrains and nothing unexplained.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event

from chipknit.host import HostError, TransactionError
from chipknit.host.npu import PROGRAM_BASE, WINDOW, NpuError, npu_limits
from chipknit.host.scripts import memory_test
from chipknit.rtl.link.lane_map import LaneMode
from chipknit.rtl.link.training import ErrorCause, TrainingState
from chipknit.tb.dut import design_params, reset
from chipknit.tb.tests.npu_dma import compare
from chipknit.tb.tests.package_common import e2e_package, split_top
from chipknit.tb.tests.package_e2e import PackageBench, _gemm, _gemms, _no_errors

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

    def status(self, index: int, side: str, name: str) -> int:
        """Field ``name`` of link ``index``'s end ``side`` training status."""
        return int(getattr(self.dut, f"link{index}_{side}_training__{name}").value)

    def far(self) -> tuple[int, int]:
        """The memory's die: its position in config order (``die_reset`` bit) and number.
        It must not be the host's own die (resetting that resets the host bridge, and the
        host waits in vain): on ``default`` the memory shares die 0 with the host, so the
        tests that reset or power off the far die run on ``minimal``."""
        number = self.memory.node.die
        host_die = next(t.die for t in self.top.package.tiles if t.kind == "host_bridge")
        assert number != host_die, (
            f"package {self.top.package.name!r} has its memory on the host's die {number}: "
            f"these tests reset the memory's die, which would reset the host bridge")
        return next(i for i, die in enumerate(self.top.package.dies)
                    if die.number == number), number

    async def across(self, rounds: int, failures: list, busy=lambda: False) -> int:
        """Random write-then-read bursts to the memory: ``rounds`` of them, and more while
        ``busy()``; a command that fails is noted in ``failures`` as ``(round, status)``,
        one that succeeds must be exact. Returns the rounds run."""
        round_ = 0
        while round_ < rounds or busy():
            round_ += 1
            words = [random.getrandbits(32) for _ in range(random.randint(1, 32))]
            at = self.memory.base + 4 * random.randrange(0, 512)
            try:
                await self.host.write(at, words)
                got = await self.host.read(at, len(words))
            except TransactionError as error:
                failures.append((round_, error.status_name))
                continue
            assert got == words, f"round {round_}: read back {got} for {words}"
        return round_


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
    far, _number = bench.far()
    failures = []
    # Traffic runs from before the reset until the link is back, so the reset lands in it.
    busy = [True]
    task = cocotb.start_soon(bench.across(4, failures, busy=lambda: busy[0]))
    await ClockCycles(dut.clk, random.randint(3000, 6000))
    dut.die_reset.value = 1 << far
    await ClockCycles(dut.clk, random.randint(200, 2000))
    dut.die_reset.value = 0
    await bench.trained()
    busy[0] = False
    rounds = await task
    cocotb.log.info(f"{rounds} rounds of traffic across the reset")
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
async def far_die_powered_later(dut):
    """The far die's board comes up long after the near one's: training fails and retries
    (counted); commands across the link, long bursts too, are discarded at the link end
    (counted) and time out, and the near die keeps answering; then the link trains by
    itself and traffic is exact."""
    bench = SplitBench(dut)
    far, number = bench.far()
    link = bench.top.package.links[0]
    near_side = "a" if link.a.die != number else "b"
    near = (link.a if near_side == "a" else link.b).die
    params = bench.top.tops[near].cut[0].params
    dut.die_reset.value = 1 << far
    await reset(dut)
    # Past one whole training attempt: it fails (TIMEOUT: no markers ever arrive) and the
    # end keeps retrying, never ACTIVE.
    await ClockCycles(dut.clk, params.train_timeout + params.frame_cycles * 4)
    assert bench.status(0, near_side, "training_errors") >= 1
    assert bench.status(0, near_side, "cause") == ErrorCause.TIMEOUT.value
    assert bench.status(0, near_side, "state") != TrainingState.ACTIVE.value
    # The near board alone can be diagnosed: its own counters bank answers.
    counters = await bench.counters(near)
    assert counters["link0_training_errors"] >= 1, counters
    assert counters["link0_state"] != TrainingState.ACTIVE.value, counters
    assert counters["link0_mode"] >> 4 & 3 == ErrorCause.TIMEOUT.value, counters
    assert counters["link0_vc0_flits_in"] + counters["link0_vc1_flits_in"] == 0, counters
    # Once training has failed, the bridge discards what goes toward the far die (counted),
    # so a short command and long bursts across each end in a TIMEOUT status from the
    # host's interface, and nothing backs up: the near die keeps answering.
    commands = 0
    for words in (1, 32, 32, 64):
        try:
            await bench.host.write(bench.memory.base + 4 * random.randrange(256),
                                   [random.getrandbits(32) for _ in range(words)])
        except TransactionError as error:
            assert error.status_name == "TIMEOUT", error
        else:
            raise AssertionError(f"a {words}-word write across a link that is down succeeded")
        commands += 1
    again = await bench.counters(near)
    assert again["host_ni_timeouts"] == commands, again
    discarded = again["link0_vc0_discarded"] + again["link0_vc1_discarded"]
    assert discarded >= commands, again
    assert again["link0_vc0_flits_out"] + again["link0_vc1_flits_out"] == 0, again
    cocotb.log.info(f"far die absent: {commands} commands timed out, {discarded} flits "
                    f"discarded at the link end")
    dut.die_reset.value = 0
    cycles = await bench.trained()
    cocotb.log.info(f"far die up: trained after {cycles} cycles")
    result = await memory_test(bench.host, base=bench.memory.base, n_words=256,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test once the far die is up: {result}"
    counters = await bench.counters(near)
    assert counters["link0_state"] == TrainingState.ACTIVE.value, counters
    # Exactly those commands timed out; they were discarded, not delivered late, so no stale
    # response came back.
    assert counters["host_ni_timeouts"] == commands, counters
    assert counters["host_ni_late"] + counters["host_ni_malformed"] == 0, counters
    assert counters["link0_vc0_discarded"] + counters["link0_vc1_discarded"] == discarded
    _clean(counters, near, allow={"host_ni_timeouts", "link0_training_errors",
                                  "link0_vc0_discarded", "link0_vc1_discarded"}
           | {f"link0_{d}_{n}" for d in ("tx", "rx") for n in LINK_NOISE})
    # The far end's first frames may be replays of what the near end sent as the link came
    # up (duplicates, dropped): link noise, nothing lost (the memory test is exact).
    _clean(await bench.counters(number), number,
           allow={f"link0_{d}_{n}" for d in ("tx", "rx") for n in LINK_NOISE})


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def lanes_beyond_repair(dut):
    """One dead lane more than the spares: half width, exact. Then most lanes die on the
    live link: it retrains, training fails (counted, cause LANES), a command times out;
    lanes healed: full width again."""
    bench = SplitBench(dut)
    ip = bench.top.interposer_params[0, "ab"]
    lanes = ip.lane_params.lanes
    params = bench.top.tops[bench.top.package.links[0].b.die].cut[0].params
    dead = random.sample(range(lanes), params.repair_lanes + 1)
    mask = sum(1 << lane for lane in dead)
    dut.link0_ab_stuck_mask.value = mask
    dut.link0_ab_stuck_value.value = random.getrandbits(lanes)
    await reset(dut)
    await bench.trained()
    assert bench.status(0, "b", "rx_mode") == LaneMode.HALF.value
    assert bench.status(0, "a", "tx_mode") == LaneMode.HALF.value
    assert bench.status(0, "a", "rx_mode") == LaneMode.FULL.value
    result = await memory_test(bench.host, base=bench.memory.base, n_words=256,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test at half width: {result}"
    b_die = bench.top.package.links[0].b.die
    counters = await bench.counters(b_die)
    full = (1 << lanes) - 1
    assert counters["link0_lane_map"] == full & ~mask, (dead, counters)
    assert counters["link0_mode"] & 3 == LaneMode.HALF.value, counters
    _clean(counters, b_die)

    # Fewer usable lanes than half the beat's slots, on the live link (``valid`` stays up):
    # frames fail their CRC, the receiving end retrains, and its training fails for lack of
    # lanes (counted, cause LANES); commands across time out.
    slots = params.link.beat_width // params.lanes.bits_per_lane
    kill = random.sample(range(lanes), lanes - slots // 2 + 1)
    dut.link0_ab_stuck_value.value = random.getrandbits(lanes)
    dut.link0_ab_stuck_mask.value = sum(1 << lane for lane in kill)
    for _ in range(2 * (params.train_timeout + 2 * params.retrain_window) // 64):
        if bench.status(0, "b", "training_errors"):
            break
        await ClockCycles(dut.clk, 64)
    assert bench.status(0, "b", "training_errors") >= 1, "training never failed"
    assert bench.status(0, "b", "cause") == ErrorCause.LANES.value
    assert not bench.active()
    try:
        await bench.host.write(bench.memory.base, [random.getrandbits(32)])
    except TransactionError as error:
        assert error.status_name == "TIMEOUT", error
    else:
        raise AssertionError("a write across a link that cannot train succeeded")

    dut.link0_ab_stuck_mask.value = 0
    await bench.trained()
    assert bench.status(0, "b", "rx_mode") == LaneMode.FULL.value
    result = await memory_test(bench.host, base=bench.memory.base, n_words=128,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test after the lanes healed: {result}"
    counters = await bench.counters(b_die)
    assert counters["link0_lane_map"] == full, counters
    assert counters["link0_mode"] & 3 == LaneMode.FULL.value, counters
    assert counters["link0_training_errors"] >= 1, counters


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


class _CommandWatch:
    """The host as an :class:`~chipknit.host.npu.NpuClient` sees it, counting the commands
    written to NPU window ``window`` (acknowledged writes to ``command_lo``): once ``park``
    of them are in, the client waits (``parked`` set) until ``resume`` is set."""

    def __init__(self, host, window, park: int):
        self.host, self.command = host, window.base + WINDOW["command_lo"]
        self.written, self.park = 0, park
        self.parked, self.resume = Event(), Event()

    async def read(self, addr: int, n_words: int) -> list[int]:
        return await self.host.read(addr, n_words)

    async def write(self, addr: int, words, strobes=None) -> None:
        await self.host.write(addr, words, strobes)
        if addr == self.command:
            self.written += 1
            if self.written == self.park:
                self.parked.set()
                await self.resume.wait()


async def _outcome(coroutine):
    """What ``coroutine`` returned, or the host or NPU error it raised."""
    try:
        return await coroutine
    except (HostError, NpuError) as error:
        return error


def _npu_off_host_die() -> bool:
    package = e2e_package(**design_params())
    host_die = next(t.die for t in package.tiles if t.kind == "host_bridge")
    return any(t.kind == "npu" and t.die != host_die for t in package.tiles)


#: Status polls the interrupted GEMM's client makes once its commands are written (the
#: call's bound); a healthy program's last statuses come within a few.
RESET_POLLS = 40
#: Cycles allowed per host round trip in that bound (one takes a few hundred here).
ROUND_TRIP = 1000


class _NpuDieReset:
    """The NPU window ``window`` on the far die (position ``position`` in ``die_reset``)
    of ``bench``, and GEMMs on it, one of them interrupted by a reset of its die."""

    def __init__(self, bench, window, position, gen):
        self.bench, self.window, self.position, self.gen = bench, window, position, gen
        self.limits = npu_limits(bench.top, window.name)
        self.base = PROGRAM_BASE

    async def register(self, name: str) -> int:
        (value,) = await self.bench.host.read(self.window.base + WINDOW[name], 1)
        return value

    async def exact(self, when: str) -> int:
        """A random GEMM, exact; the NPU's ``issued`` count grew by its commands. Returns
        the count."""
        before = await self.register("issued")
        program, want, what, self.base = _gemm(self.gen, self.limits, self.base)
        assert 4 * self.base <= self.bench.memory.size, f"{what} does not fit the memory"
        got = await self.bench.client(self.window).run(program)
        compare(got, want, f"{when}: {self.window.name} {what}")
        issued, lost = await self.register("issued"), await self.register("lost")
        assert (issued - before, lost) == (len(program.commands), 0), (
            when, before, issued, lost, len(program.commands))
        cocotb.log.info(f"{when}: {self.window.name} {what} GEMM, {len(program.commands)} "
                        f"commands, exact")
        return issued

    async def interrupted(self, hold: int) -> dict:
        """A GEMM of several K tiles; once the NPU's ``issued`` count shows part of its
        commands in, the die is held in reset for ``hold`` cycles (a multiple of 16) and
        released. Returns what the host's call ended with (``error``), the cycles from the
        reset to its end (``ended``), its ``commands`` and how many were ``written`` when
        the reset came."""
        bench, dut, lim = self.bench, self.bench.dut, self.limits
        before = await self.register("issued")
        shape = (int(self.gen.integers(lim.acc_depth // 2, lim.acc_depth + 1)),
                 int(self.gen.integers(3 * lim.rows + 1, 5 * lim.rows + 1)),
                 int(self.gen.integers(lim.cols + 1, 2 * lim.cols + 2)))
        program, _want, what, self.base = _gemm(self.gen, lim, self.base, shape)
        assert 4 * self.base <= bench.memory.size, f"{what} does not fit the memory tile"
        commands = len(program.commands)
        watch = _CommandWatch(bench.host, self.window, random.randint(3, commands // 2))
        client = bench.client(self.window)
        client.host, client.max_polls = watch, RESET_POLLS
        task = cocotb.start_soon(_outcome(client.run(program)))
        for _ in range(4000):
            if watch.parked.is_set() or task.done():
                break
            await ClockCycles(dut.clk, 100)
        assert watch.parked.is_set(), f"{what}: never reached command {watch.park}"
        # The NPU's own count: this GEMM's first ``park`` commands are in, the rest not.
        issued, busy = await self.register("issued"), await self.register("busy")
        assert issued == before + watch.park, (issued, before, watch.park)
        watch.resume.set()
        await ClockCycles(dut.clk, random.randint(0, 400))
        # Still in the middle: commands are left to write, so the program cannot have ended.
        assert not task.done() and watch.written < commands, (watch.written, commands)
        written = watch.written
        dut.die_reset.value = 1 << self.position
        cocotb.log.info(f"{self.window.name}: {what} GEMM, {commands} commands, {written} "
                        f"written ({watch.park} issued at the last look, busy {busy}) when "
                        f"its die went into reset for {hold} cycles")
        # The bound: the reset, a command's timeout, the rest of the commands and the
        # client's status polls.
        bound = hold + bench.top.tops[0].timeout + (commands + RESET_POLLS) * ROUND_TRIP
        ended = None
        for waited in range(0, bound + 16, 16):
            if waited >= hold:
                dut.die_reset.value = 0
            if ended is None and task.done():
                ended = waited
            if ended is not None and waited >= hold:
                break
            await ClockCycles(dut.clk, 16)
        dut.die_reset.value = 0
        assert ended is not None, f"the GEMM call has not ended {bound} cycles after the reset"
        error = task.result()
        cocotb.log.info(f"the GEMM call ended {ended} cycles after the reset: {error!r}")
        return {"error": error, "ended": ended, "commands": commands, "written": written}


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us", skip=not _npu_off_host_die())
async def npu_die_reset_mid_gemm(dut):
    """The NPU's die is reset in the middle of a GEMM, briefly, then past a failed training
    attempt: the host's call ends in the driver's error, never a result or a hang; the link
    retrains by itself and a fresh GEMM on the same NPU is exact."""
    bench = SplitBench(dut)
    host_die = next(t.die for t in bench.top.package.tiles if t.kind == "host_bridge")
    window = random.choice([w for w in bench.npus if w.node.die != host_die])
    number = window.node.die
    position = next(i for i, die in enumerate(bench.top.package.dies) if die.number == number)
    link = bench.top.package.links[0]
    assert number in (link.a.die, link.b.die), f"die {number} is not on link 0"
    near = link.a.die if link.b.die == number else link.b.die
    assert near == host_die, (near, host_die)
    params = bench.top.tops[near].cut[0].params
    npu = _NpuDieReset(bench, window, position, np.random.default_rng(random.getrandbits(32)))
    await reset(dut)
    await bench.trained()

    async def far_clean(when, allow=frozenset()):
        far = await bench.counters(number)
        cocotb.log.info(f"{when}: die {number} counters: " + ", ".join(
            f"{k}={v}" for k, v in far.items() if v and not k.endswith(("frames", "flits"))
            and k != "cycles"))
        _clean(far, number, allow=set(allow)
               | {f"link0_{d}_{n}" for d in ("tx", "rx") for n in LINK_NOISE})

    # 1. A GEMM on the far die's NPU: exact.
    await npu.exact("before the resets")

    # 2. A short reset: the die is back and the link retrained well within a command's
    # timeout, so commands the near end held meanwhile reach the fresh tile and succeed:
    # the driver finds statuses missing (``NpuError``), from the tile's ``issued`` count the
    # host sees the tile restarted. Or a command the link was carrying when the die went
    # down was lost with its adapter: it ends in ``TIMEOUT``.
    got = await npu.interrupted(16 * random.randint(12, 125))
    error, commands, written = got["error"], got["commands"], got["written"]
    counters = await bench.counters(near)
    if isinstance(error, TransactionError):
        assert error.status_name == "TIMEOUT", error
        assert counters["host_ni_timeouts"] == 1, counters
    else:
        assert isinstance(error, NpuError), f"the GEMM call ended with {error!r}"
        assert counters["host_ni_timeouts"] == 0, counters
        # The fresh tile took the commands written after the reset (and perhaps the one
        # being written as it came), nothing from before.
        issued = await npu.register("issued")
        assert commands - written - 1 <= issued <= commands - written, (
            issued, commands, written)
    timeouts = counters["host_ni_timeouts"]
    await bench.trained()
    # 4. A fresh GEMM on the same tile is exact (no stale response was taken for its own).
    await npu.exact("after a short reset")
    # After a link reset the near end's bridge sends on what it held: flits of a packet
    # whose head was lost with the adapters reach the fresh die headless and are dropped
    # there (its bridge's ``malformed``); a response to a request of the tile before its
    # reset is an unknown tag to its fresh interface (dropped, ``malformed``).
    await far_clean("after a short reset", allow={
        "link0_vc0_malformed", "link0_vc1_malformed", f"{window.name}_ni_malformed"})

    # 2, 3. A long reset: the near end retrains the moment the far end's ``valid`` drops and
    # its training fails (``TIMEOUT``) while the die is down; its bridge then discards what
    # waits for the far die, so the first command after the reset ends in ``TIMEOUT``.
    got = await npu.interrupted(16 * ((params.train_timeout + 8 * params.frame_cycles) // 16
                                      + random.randint(0, 250)))
    error = got["error"]
    assert isinstance(error, TransactionError), f"the GEMM call ended with {error!r}"
    assert error.status_name == "TIMEOUT", error
    assert got["ended"] <= bench.top.tops[near].timeout + 4096, got
    # 4. The link retrains by itself; a fresh GEMM (new operands and program area) is exact
    # and the fresh tile's ``issued`` count is its commands alone: no command from before
    # the reset reached it.
    await bench.trained()
    assert await npu.register("issued") == 0
    await npu.exact("after a long reset")
    result = await memory_test(bench.host, base=bench.memory.base, n_words=256,
                               seed=random.getrandbits(32))
    assert result["errors"] == 0, f"memory test after the resets: {result}"
    counters = await bench.counters(near)
    cocotb.log.info(f"die {near} counters: " + ", ".join(
        f"{k}={v}" for k, v in counters.items()
        if v and not k.endswith(("frames", "flits")) and k != "cycles"))
    assert counters["link0_state"] == TrainingState.ACTIVE.value, counters
    assert counters["link0_retrains"] >= 2 and counters["link0_link_resets"] >= 2, counters
    assert counters["link0_training_errors"] >= 1, counters
    # Exactly the failed commands timed out, and nothing came back late.
    assert counters["host_ni_timeouts"] == timeouts + 1, counters
    assert counters["host_ni_late"] + counters["host_ni_malformed"] == 0, counters
    # Besides: the failed training, what the bridge discarded meanwhile, packets from the
    # far die cut short as it went down (ended at their last flit), link noise.
    # ``memory_ti_malformed``: a write from the tile cut short by its reset (its missing
    # beats not written, the response an error).
    _clean(counters, near, allow={"host_ni_timeouts", "link0_training_errors",
                                  "memory_ti_malformed"}
           | {f"link0_vc{vc}_{n}" for vc in (0, 1) for n in ("discarded", "truncated")}
           | {f"link0_{d}_{n}" for d in ("tx", "rx") for n in LINK_NOISE})
    await far_clean("after a long reset")
