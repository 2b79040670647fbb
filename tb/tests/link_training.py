"""cocotb tests of link training, deskew, lane repair and retraining (TrainedLinkPair).

Two trained link ends over two interposers. Scoreboard per direction and VC
(:class:`InOrderScoreboard`: exactly once, in order, bit-exact) with random pauses on every
source and sink. Training outcomes (deskew, lane map, mode, reversal) are checked against
:mod:`chipknit.tb.models.link_training`. Every test ends with the link either delivering
everything or in a counted, visible error state, and never waits without a bound.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from chipknit.tb.dut import CLOCK_PERIOD_NS, design_params, reset, start_clock
from chipknit.tb.models.credit import InOrderScoreboard
from chipknit.tb.models.link import FrameFormat
from chipknit.tb.models.link_training import (
    FULL,
    HALF,
    NONE,
    STATES,
    expected_deskew,
    expected_mask,
    lane_map,
)
from chipknit.tb.stream import StreamMonitor, StreamSink, StreamSource, random_pauses

TIMEOUT_MS = 40
CAUSES = {"NONE": 0, "SKEW": 1, "LANES": 2, "TIMEOUT": 3}


class TrainingBench:
    def __init__(self, dut, *, source_pause=0.3, sink_pause=0.3):
        self.dut = dut
        self.p = design_params()
        self.lanes = self.p["lanes"]
        self.slots = self.p["beat_width"] // self.p["bits_per_lane"]
        self.delay_bits = max(1, self.p["max_delay"].bit_length())
        self.deskew_bits = max(1, self.p["deskew_range"].bit_length())
        self.mask = (1 << self.p["flit_width"]) - 1
        self.frame_beats = FrameFormat(**{k: self.p[k] for k in (
            "flit_width", "vcs", "beat_width", "frame_flits", "seq_bits",
            "rx_credits")}).frame_beats
        self.sent = {}
        for way in ("ab", "ba"):
            for name in ("delay", "error_threshold", "stuck_mask", "stuck_value", "reverse"):
                getattr(dut, f"{way}_{name}").value = 0
        dut.a_restart.value = 0
        dut.b_restart.value = 0
        start_clock(dut)
        self.sources, self.sinks, self.boards = {}, {}, {}
        for src, dst in (("a", "b"), ("b", "a")):
            for vc in range(self.p["vcs"]):
                board = InOrderScoreboard(f"{src}→{dst} vc{vc}")
                self.boards[src, vc] = board
                self.sent[src, vc] = 0
                self.sources[src, vc] = StreamSource(dut, f"{src}_i__{vc}", dut.clk,
                                                     random_pauses(source_pause))
                StreamMonitor(dut, f"{src}_i__{vc}", dut.clk, callback=board.expect)
                self.sinks[dst, vc] = StreamSink(dut, f"{dst}_o__{vc}", dut.clk,
                                                 random_pauses(sink_pause),
                                                 callback=board.observe)

    # --- controls
    def set_delays(self, way, delays):
        self.delays = delays
        getattr(self.dut, f"{way}_delay").value = sum(
            d << (i * self.delay_bits) for i, d in enumerate(delays))

    def set(self, name, value):
        getattr(self.dut, name).value = value

    # --- observation
    def get(self, end, name):
        return int(getattr(self.dut, f"{end}_training__{name}").value)

    def state(self, end):
        return self.get(end, "state")

    def deskew(self, end):
        word = self.get(end, "deskew")
        return [(word >> (i * self.deskew_bits)) & ((1 << self.deskew_bits) - 1)
                for i in range(self.lanes)]

    def counter(self, name):
        return int(getattr(self.dut, name).value)

    def snapshot(self):
        values = {}
        for end in ("a", "b"):
            for name in ("state", "cause", "rx_mode", "tx_mode", "lane_map", "tx_lane_map",
                         "reversed", "retrains", "training_errors", "link_resets",
                         "tx_active", "rx_active"):
                values[f"{end}.{name}"] = self.get(end, name)
            values[f"{end}.lost_flits"] = self.counter(f"{end}_lost_flits")
            for half, names in (("tx", ("frames", "flits", "replayed_frames")),
                                ("rx", ("flits", "crc_errors", "protocol_errors"))):
                for name in names:
                    values[f"{end}.{half}.{name}"] = self.counter(f"{end}_{half}_status__{name}")
        values["pending"] = {f"{src}{vc}": len(board.expected)
                             for (src, vc), board in self.boards.items()}
        return values

    async def wait_for(self, condition, limit, what):
        for _ in range(limit):
            if condition():
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"{what} not reached in {limit} cycles: {self.snapshot()}")

    async def wait_active(self, limit=20_000):
        await self.wait_for(lambda: self.state("a") == STATES["ACTIVE"]
                            and self.state("b") == STATES["ACTIVE"], limit, "both ends ACTIVE")

    # --- traffic
    def send_random(self, count_per_stream):
        for (src, vc), source in self.sources.items():
            for _ in range(count_per_stream):
                n = self.sent[src, vc]
                self.sent[src, vc] += 1
                tag = (n << 3) | (vc << 1) | (src == "b")
                source.send_nowait((random.getrandbits(64) << 24 | tag) & self.mask)

    async def drain(self, limit_cycles=200_000):
        for _ in range(limit_cycles // 100):
            if all(source.idle() for source in self.sources.values()) and \
                    all(not board.expected for board in self.boards.values()):
                break
            await ClockCycles(self.dut.clk, 100)
        else:
            raise AssertionError(f"link did not drain in {limit_cycles} cycles: "
                                 f"{self.snapshot()}")
        for board in self.boards.values():
            board.drain_check()

    def check_no_loss(self):
        snap = self.snapshot()
        for end in ("a", "b"):
            assert snap[f"{end}.lost_flits"] == 0, snap
            assert snap[f"{end}.link_resets"] == 0, snap
            assert snap[f"{end}.rx.protocol_errors"] == 0, snap
        for board in self.boards.values():
            assert board.dropped == 0, board.name

    def check_map(self, end, stuck_mask, reverse=False):
        """The receiving end found exactly the working lanes, and both ends agree."""
        other = "b" if end == "a" else "a"
        mask = expected_mask(self.lanes, stuck_mask)
        model = lane_map(mask, self.lanes, self.slots)
        snap = self.snapshot()
        assert self.get(end, "lane_map") == mask, (hex(mask), snap)
        assert self.get(other, "tx_lane_map") == mask, snap
        assert self.get(end, "rx_mode") == model.mode, snap
        assert self.get(other, "tx_mode") == model.mode, snap
        assert self.get(end, "reversed") == int(reverse), snap
        return model


async def _log_states(bench):
    """Log every state change of either end (for the failure log)."""
    names = {v: k for k, v in STATES.items()}
    last = None
    while True:
        await RisingEdge(bench.dut.clk)
        now = tuple(bench.get(end, name) for end in ("a", "b")
                    for name in ("state", "tx_active", "rx_active", "link_resets"))
        if now != last:
            bench.dut._log.debug("a %s tx%d rx%d resets %d | b %s tx%d rx%d resets %d",
                                 names[now[0]], now[1], now[2], now[3],
                                 names[now[4]], now[5], now[6], now[7])
            last = now


async def start(dut, **kwargs):
    bench = TrainingBench(dut, **kwargs)
    cocotb.start_soon(_log_states(bench))
    return bench


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def clean_bringup_random_skew(dut):
    """Random per-lane skew within range both ways: deskew as the model says, exact traffic."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    skew = {}
    for way in ("ab", "ba"):
        skew[way] = [rng.randint(0, bench.p["deskew_range"]) for _ in range(bench.lanes)]
        bench.set_delays(way, skew[way])
    await reset(dut)
    started = get_sim_time("ns")
    await bench.wait_active()
    for way, end in (("ab", "b"), ("ba", "a")):
        assert bench.deskew(end) == expected_deskew(skew[way], False), (way, skew[way])
        bench.check_map(end, 0)
    # Time in each state: every cycle since reset counted in exactly one state.
    await ClockCycles(dut.clk, 10)
    elapsed = round((get_sim_time("ns") - started) / CLOCK_PERIOD_NS)
    width = 32
    for end in ("a", "b"):
        word = bench.get(end, "state_cycles")
        cycles = [(word >> (k * width)) & ((1 << width) - 1) for k in range(len(STATES))]
        assert abs(sum(cycles) - elapsed) <= 1, (end, cycles, elapsed)
        assert cycles[STATES["ACTIVE"]] > 0 and cycles[STATES["ERROR"]] == 0, cycles
        dut._log.info("%s: cycles per state %s", end, dict(zip(STATES, cycles, strict=True)))
    bench.send_random(150)
    await bench.drain()
    bench.check_no_loss()
    snap = bench.snapshot()
    assert snap["a.retrains"] == snap["b.retrains"] == 0, snap
    assert snap["a.training_errors"] == snap["b.training_errors"] == 0, snap


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lane_reversal(dut):
    """a → b lanes reversed (with skew): b detects it, undoes it, traffic is exact."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    skew = [rng.randint(0, bench.p["deskew_range"]) for _ in range(bench.lanes)]
    bench.set_delays("ab", skew)
    bench.set("ab_reverse", 1)
    await reset(dut)
    await bench.wait_active()
    bench.check_map("b", 0, reverse=True)
    bench.check_map("a", 0, reverse=False)
    assert bench.deskew("b") == expected_deskew(skew, True)
    bench.send_random(100)
    await bench.drain()
    bench.check_no_loss()


async def _measure_rate(bench, end, cycles=3000):
    """Beats per cycle the end's adapter sends, with every source saturated."""
    frames0 = bench.counter(f"{end}_tx_status__frames")
    await ClockCycles(bench.dut.clk, cycles)
    frames = bench.counter(f"{end}_tx_status__frames") - frames0
    return frames * bench.frame_beats / cycles


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def dead_lanes_at_start(dut):
    """1 dead lane a → b, 2 dead b → a: repaired onto the spares, full rate; 3 dead: half."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    n = bench.lanes
    dead_ab = rng.sample(range(n), 1)
    dead_ba = rng.sample(range(n), min(2, bench.p["lanes"] - bench.slots))
    ab_mask = sum(1 << i for i in dead_ab)
    ba_mask = sum(1 << i for i in dead_ba)
    bench.set("ab_stuck_mask", ab_mask)
    bench.set("ab_stuck_value", rng.getrandbits(n))
    bench.set("ba_stuck_mask", ba_mask)
    bench.set("ba_stuck_value", rng.getrandbits(n))
    await reset(dut)
    await bench.wait_active()
    assert bench.check_map("b", ab_mask).mode == FULL
    assert bench.check_map("a", ba_mask).mode == FULL
    bench.send_random(1000)
    rate = await _measure_rate(bench, "a")
    assert rate > 0.95, f"repaired link runs at {rate:.3f} beats/cycle, expected 1"
    await bench.drain()
    bench.check_no_loss()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def three_dead_lanes_half_width(dut):
    """More dead lanes than spares (but half the slots left): half width at half rate."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    n = bench.lanes
    dead = rng.sample(range(n), n - bench.slots + 1)
    mask = sum(1 << i for i in dead)
    bench.set("ab_stuck_mask", mask)
    bench.set("ab_stuck_value", rng.getrandbits(n))
    await reset(dut)
    await bench.wait_active()
    assert bench.check_map("b", mask).mode == HALF
    assert bench.check_map("a", 0).mode == FULL
    bench.send_random(600)
    rate_ab = await _measure_rate(bench, "a")
    rate_ba = await _measure_rate(bench, "b")
    assert 0.45 < rate_ab <= 0.5, f"half-width a → b: {rate_ab:.3f} beats/cycle"
    assert rate_ba > 0.95, f"full-width b → a: {rate_ba:.3f} beats/cycle"
    await bench.drain()
    bench.check_no_loss()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def too_many_dead_lanes_is_an_error(dut):
    """Fewer usable lanes than half a beat: ERROR (cause LANES), counted, retried; nothing
    delivered or lost; repairing the wires lets it train and carry traffic."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    n = bench.lanes
    dead = rng.sample(range(n), n - bench.slots // 2 + 1)
    bench.set("ab_stuck_mask", sum(1 << i for i in dead))
    await reset(dut)
    bench.send_random(40)
    await bench.wait_for(lambda: bench.state("b") == STATES["ERROR"], 20_000, "b in ERROR")
    assert bench.get("b", "cause") == CAUSES["LANES"], bench.snapshot()
    assert bench.get("b", "rx_mode") == NONE
    # It keeps retrying after the back-off, failing the same way, and never goes ACTIVE.
    await bench.wait_for(lambda: bench.get("b", "training_errors") >= 2, 40_000,
                         "a second training error")
    assert bench.state("a") != STATES["ACTIVE"]
    assert all(board.matched == 0 for board in bench.boards.values())
    bench.set("ab_stuck_mask", 0)
    await bench.wait_active(limit=40_000)
    await bench.drain()
    bench.check_no_loss()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def skew_past_range_is_an_error(dut):
    """One lane skewed past the deskew range: ERROR (cause SKEW), counted; within range
    again it trains and carries traffic."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    too_far = bench.p["deskew_range"] + 1 + rng.randrange(bench.p["max_delay"]
                                                          - bench.p["deskew_range"])
    skew = [0] * bench.lanes
    skew[rng.randrange(bench.lanes)] = too_far
    bench.set_delays("ba", skew)
    await reset(dut)
    bench.send_random(40)
    await bench.wait_for(lambda: bench.state("a") == STATES["ERROR"], 20_000, "a in ERROR")
    assert bench.get("a", "cause") == CAUSES["SKEW"], bench.snapshot()
    assert bench.get("a", "training_errors") >= 1
    assert all(board.matched == 0 for board in bench.boards.values())
    bench.set_delays("ba", [min(d, bench.p["deskew_range"]) for d in skew])
    await bench.wait_active(limit=40_000)
    await bench.drain()
    bench.check_no_loss()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def lane_dies_mid_traffic(dut):
    """A lane sticks while traffic flows: CRC errors → retrain → repair; no flit lost
    (go-back-N replays across the retrain), no adapter reset."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    await reset(dut)
    await bench.wait_active()
    bench.send_random(400)
    await ClockCycles(dut.clk, rng.randrange(500, 1500))
    lane = rng.randrange(bench.slots)         # one that carries data
    bench.set("ab_stuck_value", rng.getrandbits(bench.lanes))
    bench.set("ab_stuck_mask", 1 << lane)
    await bench.wait_for(lambda: bench.get("b", "retrains") >= 1, 20_000, "b retrains")
    await bench.wait_active()
    bench.check_map("b", 1 << lane)
    await bench.drain()
    bench.check_no_loss()
    snap = bench.snapshot()
    assert snap["a.retrains"] >= 1, snap
    assert snap["b.rx.crc_errors"] > 0, snap


async def _lanes_stick_mid_traffic(dut, stick, on_failure=lambda bench: None):
    """Traffic on an ACTIVE link, then ``stick(bench, rng)`` gives ``(value, mask)`` for a → b
    lanes to stick at (``valid`` stays up): b retrains, its training fails and is retried
    (``on_failure(bench)`` checks it then); once the wires heal the link trains again and
    the traffic completes exactly once (the adapters were kept)."""
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    await reset(dut)
    await bench.wait_active()
    bench.send_random(300)
    await ClockCycles(dut.clk, rng.randrange(500, 1500))
    value, mask = stick(bench, rng)
    bench.set("ab_stuck_value", value)
    bench.set("ab_stuck_mask", mask)
    await bench.wait_for(lambda: bench.get("b", "retrains") >= 1, 20_000, "b retrains")
    await bench.wait_for(lambda: bench.get("b", "training_errors") >= 1, 40_000,
                         "b's training fails")
    on_failure(bench)
    bench.set("ab_stuck_mask", 0)
    await bench.wait_active(limit=60_000)
    await bench.drain()
    bench.check_no_loss()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def most_lanes_die_mid_traffic(dut):
    """More a → b lanes than half a beat stick at random levels on an ACTIVE link: b
    retrains, training fails with cause LANES (counted) and is retried; healed, no loss."""
    def stick(bench, rng):
        n = bench.lanes
        dead = rng.sample(range(n), n - bench.slots // 2 + 1)
        return rng.getrandbits(n), sum(1 << i for i in dead)

    def lanes_cause(bench):
        assert bench.get("b", "cause") == CAUSES["LANES"], bench.snapshot()

    await _lanes_stick_mid_traffic(dut, stick, lanes_cause)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def every_lane_stuck_at_zero_mid_traffic(dut):
    """Every a → b lane sticks at 0 on an ACTIVE link, so b receives all-zero beats: they
    must not pass for frames. b retrains, training fails and is retried; healed, no loss."""
    await _lanes_stick_mid_traffic(dut, lambda bench, rng: (0, (1 << bench.lanes) - 1))


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def ber_burst_retrains(dut):
    """A burst of BER 1e-2 on a → b: frames fail, the link retrains (counted), the burst
    ends, traffic completes exactly once."""
    bench = await start(dut)
    await reset(dut)
    await bench.wait_active()
    bench.send_random(300)
    await ClockCycles(dut.clk, 800)
    bench.set("ab_error_threshold", int(1e-2 * 2**32))
    await bench.wait_for(lambda: bench.get("b", "retrains") >= 1, 20_000, "b retrains")
    bench.set("ab_error_threshold", 0)
    await bench.wait_active(limit=60_000)
    await bench.drain()
    bench.check_no_loss()
    assert int(dut.ab_errors.value) > 0


async def _reset_mid_traffic(dut, end):
    bench = await start(dut)
    rng = random.Random(random.getrandbits(32))
    await reset(dut)
    await bench.wait_active()
    bench.send_random(300)
    for board in bench.boards.values():
        board.allow_drops(10_000)   # checked against the counted bound below
    await ClockCycles(dut.clk, rng.randrange(500, 2000))
    before = bench.snapshot()
    bench.set(f"{end}_restart", 1)
    await ClockCycles(dut.clk, rng.randint(1, 20))
    bench.set(f"{end}_restart", 0)
    other = "b" if end == "a" else "a"
    await bench.wait_for(lambda: bench.get(other, "retrains") > before[f"{other}.retrains"],
                         5_000, f"{other} notices and retrains")
    await bench.wait_active()
    await bench.drain()
    snap = bench.snapshot()
    # Both adapters restarted (the other end by link reset): counted, and every lost flit is
    # within the bound the sender counted.
    assert snap[f"{other}.link_resets"] >= 1, snap
    for src in ("a", "b"):
        dropped = sum(bench.boards[src, vc].dropped for vc in range(bench.p["vcs"]))
        assert dropped <= snap[f"{src}.lost_flits"], (src, dropped, snap)
        dut._log.info("%s → : %d flits lost, %d counted at risk", src, dropped,
                      snap[f"{src}.lost_flits"])
    assert snap["a.lost_flits"] + snap["b.lost_flits"] > 0, snap
    # After the reset, traffic flows again: every stream delivered something new.
    bench.send_random(50)
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reset_a_mid_traffic(dut):
    """End a is reset while both directions carry traffic: b notices, both retrain, credits
    and sequence numbers restart; losses only where counted."""
    await _reset_mid_traffic(dut, "a")


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def reset_b_mid_traffic(dut):
    """The same with end b reset."""
    await _reset_mid_traffic(dut, "b")
