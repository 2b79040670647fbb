"""cocotb tests of two routers on two dies joined by bridges and a real link (CrossLinkPair).

Die ``d`` holds router ``(d, 0)`` of a 2×1 mesh; the east port of die 0's router reaches
the west port of die 1's through :class:`~chipknit.rtl.noc.link_bridge.LinkBridge`, a link
adapter, a channel with latency and bit errors, an adapter and a bridge. Every local port
has a stream source per VC (random pauses) and a stream sink per VC (random backpressure).
Scoreboard: :class:`~chipknit.tb.models.noc.PacketScoreboard` — every packet once, intact,
in order per (source, destination, VC), out of the die its destination names.
"""

import random
from collections import defaultdict

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.noc import Dest, Flit, NocFormat, PacketScoreboard, make_packet
from chipknit.tb.stream import StreamSink, StreamSource, burst_pauses, random_pauses

TIMEOUT_US = 20000
DIES = 2


def _threshold(ber, beat_width):
    """``error_threshold`` for a bit error rate (one flipped bit per hit beat)."""
    return round(ber * beat_width * (1 << 32))


class CrossBench:
    def __init__(self, dut, *, inject_pause=0.3, eject_pauses=lambda: burst_pauses(6, 6)):
        self.dut = dut
        self.params = params = design_params()
        self.fmt = NocFormat(data_width=params["data_width"], vcs=params["vcs"])
        self.vcs = params["vcs"]
        self.rng = random.Random(random.getrandbits(32))
        self.inject_pause, self.eject_pauses = inject_pause, eject_pauses
        self.seq = 0
        dut.error_threshold.value = 0
        dut.die_reset.value = 0
        start_clock(dut)
        self.start_drivers()

    def start_drivers(self, scoreboard=None, observe=None):
        self.scoreboard = scoreboard or PacketScoreboard(self.fmt, "cross-link",
                                                         route_check=self._route_check)
        observe = observe or self.scoreboard.observe
        self.sources, self.sinks = {}, {}
        for die in range(DIES):
            for vc in range(self.vcs):
                pauses = random_pauses(self.inject_pause, random.Random(self.rng.random())) \
                    if self.inject_pause else None
                self.sources[die, vc] = StreamSource(self.dut, f"inject__{die}__{vc}",
                                                     self.dut.clk, pauses)
                self.sinks[die, vc] = StreamSink(
                    self.dut, f"eject__{die}__{vc}", self.dut.clk,
                    self.eject_pauses() if self.eject_pauses else None,
                    callback=lambda flit, die=die: observe(die, flit))

    def stop_drivers(self, dies=range(DIES)):
        for (die, _vc), driver in [*self.sources.items(), *self.sinks.items()]:
            if die in dies:
                driver.stop()

    @staticmethod
    def _route_check(where, packet):
        assert where == packet.dest.x, f"packet to {packet.dest} came out of die {where}"

    def send(self, src, dst, vc, length, expect=True):
        packet = make_packet(self.fmt, src=src, seq=self.seq, dest=Dest(x=dst, y=0), vc=vc,
                             length=length, rng=self.rng)
        self.seq += 1
        if expect:
            self.scoreboard.expect(packet)
        self.sources[src, vc].send_all(packet.flits)
        return packet

    def traffic(self, packets, max_length, cross=0.75):
        """``packets`` per source port and VC; ``cross`` of them to the other die."""
        sent = []
        for _ in range(packets):
            for src in range(DIES):
                for vc in range(self.vcs):
                    dst = 1 - src if self.rng.random() < cross else src
                    sent.append(self.send(src, dst, vc, self.rng.randint(1, max_length)))
        return sent

    def counter(self, name):
        return int(self.dut[name].value)

    def bridge(self, die, name, vc):
        return self.counter(f"bridge__{die}__{name}__{vc}")

    async def drain(self, limit_cycles=400_000):
        for _ in range(limit_cycles // 50):
            await ClockCycles(self.dut.clk, 50)
            if all(s.idle() for s in self.sources.values()) and \
                    self.scoreboard.outstanding() == 0 and not self.scoreboard.partial:
                break
        else:
            raise AssertionError(f"not drained after {limit_cycles} cycles: "
                                 f"{self.scoreboard.outstanding()} packets outstanding")
        await ClockCycles(self.dut.clk, 20)
        self.scoreboard.drain_check()

    def check_clean_counters(self):
        for die in range(DIES):
            for name in ("unroutable", "malformed"):
                assert self.counter(f"{name}__{die}") == 0, f"router {die} counted {name}"
            for vc in range(self.vcs):
                for name in ("malformed", "unroutable", "truncated"):
                    value = self.bridge(die, name, vc)
                    assert value == 0, f"bridge {die} VC {vc} counted {value} {name}"

    def check_flit_counters(self, packets):
        """Each bridge's flits out/in per VC equal the flits that crossed each way."""
        crossed = defaultdict(int)
        for packet in packets:
            if packet.src != packet.dest.x:
                crossed[packet.src, packet.vc] += len(packet.flits)
        for die in range(DIES):
            for vc in range(self.vcs):
                out = self.bridge(die, "flits_out", vc)
                into = self.bridge(1 - die, "flits_in", vc)
                assert out == into == crossed[die, vc], (
                    f"die {die} → {1 - die} VC {vc}: bridge out {out}, far bridge in {into}, "
                    f"crossing flits sent {crossed[die, vc]}")


async def _random_traffic(dut, ber, packets_per_source):
    bench = CrossBench(dut)
    await reset(dut)
    if ber:
        dut.error_threshold.value = _threshold(ber, bench.params["beat_width"])
    packets = bench.traffic(packets_per_source, 6)
    await bench.drain()
    assert bench.scoreboard.matched == len(packets)
    bench.check_clean_counters()
    bench.check_flit_counters(packets)
    crc = [bench.counter(f"rx_status__{die}__crc_errors") for die in range(DIES)]
    errors = [bench.counter(f"bit_errors__{die}") for die in range(DIES)]
    cocotb.log.info(f"{len(packets)} packets, bit errors injected {errors}, CRC errors {crc}")
    if ber:
        assert all(crc), f"no CRC errors at BER {ber}: {crc}"
        assert all(c <= e for c, e in zip(crc, errors, strict=True)), (crc, errors)
    else:
        assert crc == [0, 0]


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_traffic(dut):
    """1-6 flit packets on both VCs both ways (a quarter die-local), random injection pauses
    and ejection backpressure: every packet once, intact, in order; counters agree."""
    await _random_traffic(dut, 0, 50)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_traffic_ber_1e4(dut):
    """As random_traffic with bit errors at BER 1e-4 on the link: the link's CRC and replay
    hide them; the NoC sees every packet once, intact, in order."""
    await _random_traffic(dut, 1e-4, 250)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def stalled_vc_does_not_block_the_other(dut):
    """Die 1 never takes VC 1: VC 1 backs up through the router, the bridges and the link,
    while VC 0 keeps flowing both ways; then VC 1 is released and everything arrives."""
    bench = CrossBench(dut, inject_pause=0.0, eject_pauses=None)
    stalled = bench.sinks[1, 1]
    stalled.stop()                         # ready held low: the response class is stuck
    await reset(dut)
    stuck = [bench.send(0, 1, 1, 4) for _ in range(20)]       # 80 flits: fills every buffer
    await ClockCycles(dut.clk, 600)
    assert bench.sources[0, 1].queue, "VC 1 never backed up to its source"
    moving = [bench.send(src, 1 - src, 0, bench.rng.randint(1, 4)) for _ in range(15)
              for src in range(DIES)]
    for _ in range(200):
        await ClockCycles(dut.clk, 50)
        if all(not bench.scoreboard.expected[p.key] or p not in bench.scoreboard.expected[p.key]
               for p in moving):
            break
    late = [p for p in moving if p in bench.scoreboard.expected[p.key]]
    assert not late, f"{len(late)} VC 0 packets stuck behind a stalled VC 1"
    delivered_stuck = sum(1 for p, _ in bench.scoreboard.delivered if p in stuck)
    assert delivered_stuck == 0, "a VC 1 packet came out of a stalled sink"
    bench.sinks[1, 1] = StreamSink(dut, "eject__1__1", dut.clk, None,
                                   callback=lambda flit: bench.scoreboard.observe(1, flit))
    await bench.drain()
    bench.check_clean_counters()


def _truncated(fmt, flits):
    """The flits of a packet as the bridge ends it early: a prefix whose last flit is marked
    as the tail (never a flit the packet did not have)."""
    def as_tail(value):
        flit = fmt.decode(value)
        return fmt.encode(Flit(head=flit.head, tail=True, vc=flit.vc, data=flit.data))
    return [flits[:k - 1] + [as_tail(flits[k - 1])] for k in range(1, len(flits))]


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_one_die_mid_packet(dut):
    """Die 1 (its router, bridge and the link) is reset while long packets cross both ways.

    What die 0's router sees: packets from die 1 cut by the reset are ended by die 0's
    bridge at their last flit that came (counted in ``truncated``, so the wormhole they held
    is freed), or lost whole; die 0's own local packets all arrive intact. Die 1 drops the rest
    of packets whose head the reset lost (``malformed``). Afterwards traffic flows every way
    on every VC, checked by a fresh scoreboard."""
    bench = CrossBench(dut, inject_pause=0.0, eject_pauses=None)
    fmt = bench.fmt
    arrived = defaultdict(list)               # (exit die, VC) → packets, as flit lists
    partial = {}

    def observe(die, flit):
        vc = fmt.decode(flit).vc
        partial.setdefault((die, vc), []).append(flit)
        if fmt.decode(flit).tail:
            arrived[die, vc].append(partial.pop((die, vc)))

    bench.stop_drivers()
    bench.start_drivers(observe=observe)
    await reset(dut)
    length = 24
    sent = [bench.send(src, dst, vc, length) for _ in range(3) for src in range(DIES)
            for vc in range(bench.vcs) for dst in (1 - src, src)]
    # Reset when die 0 has taken fewer than 4 flits of a packet from die 1: at least 20 are
    # still to come and die 0 buffers at most 10, so the rest is in the link or on die 1.
    for _ in range(5000):
        await RisingEdge(dut.clk)
        cut = [key for key, flits in partial.items() if key[0] == 0 and 0 < len(flits) < 4
               and fmt.head_payload(fmt.decode(flits[0]).data) & 0xFF == 1]
        if cut:
            break
    else:
        raise AssertionError("no packet from die 1 was half way across")
    bench.stop_drivers(dies=[1])                  # die 1's tiles are reset too
    dut.die_reset.value = 0b10
    await ClockCycles(dut.clk, 3)
    dut.die_reset.value = 0
    for key in [k for k in partial if k[0] == 1]:
        del partial[key]                          # die 1's tile forgets half a packet
    for vc in range(bench.vcs):
        bench.sinks[1, vc] = StreamSink(dut, f"eject__1__{vc}", dut.clk, None,
                                        callback=lambda flit: observe(1, flit))
    # Let die 0 finish sending: what it still held crosses after the reset.
    for _ in range(400):
        await ClockCycles(dut.clk, 50)
        if all(bench.sources[0, vc].idle() for vc in range(bench.vcs)):
            break
    await ClockCycles(dut.clk, 2000)
    assert not partial, f"packets left open at an ejection port: {list(partial)}"

    # Per (source, destination, VC): what arrived is a subsequence of what was sent (in
    # order, never twice), each packet intact or closed early by the bridge.
    truncated_seen = 0
    remaining = defaultdict(list)
    for packet in sent:
        remaining[packet.key].append(packet)
    for (die, vc), packets in arrived.items():
        for flits in packets:
            src = fmt.head_payload(fmt.decode(flits[0]).data) & 0xFF
            candidates = remaining[src, Dest(x=die, y=0), vc]
            match = next((p for p in candidates if flits == p.flits), None)
            if match is None:
                match = next((p for p in candidates if flits in _truncated(fmt, p.flits)), None)
                assert match is not None, f"die {die} VC {vc}: unknown packet {flits[:2]}"
                truncated_seen += 1
                assert die == 0 and match.src == 1, "only die 1's packets may be cut"
            del candidates[:candidates.index(match) + 1]
    local = [p for p in sent if p.src == p.dest.x == 0]
    for packet in local:
        assert packet.flits in arrived[0, packet.vc], "a die-0 local packet was lost"
    counted = sum(bench.bridge(0, "truncated", vc) for vc in range(bench.vcs))
    assert counted == truncated_seen >= 1, (
        f"die 0's bridge counted {counted} truncated packets, die 0 saw {truncated_seen}")
    dropped = sum(bench.bridge(1, "malformed", vc) for vc in range(bench.vcs))
    cocotb.log.info(f"after the reset: {truncated_seen} packet(s) truncated at die 0, "
                    f"{dropped} orphan flit(s) dropped at die 1")

    # The network is clean: a fresh scoreboard over new traffic every way on every VC.
    bench.stop_drivers()
    bench.inject_pause, bench.eject_pauses = 0.3, lambda: burst_pauses(6, 6)
    bench.start_drivers()
    packets = bench.traffic(10, 4, cross=0.5)
    await bench.drain()
    assert bench.scoreboard.matched == len(packets)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def zero_load_latency(dut):
    """One flit at a time die 0 → die 1 and back: where the cycles go. The routers and the
    bridges take fixed cycles (asserted); the link's share depends on the frame phase."""
    bench = CrossBench(dut, inject_pause=0.0, eject_pauses=None)
    await reset(dut)
    rng = bench.rng
    stages = defaultdict(list)
    for n in range(24):
        src, vc = n % 2, rng.randrange(bench.vcs)
        dst = 1 - src
        probes = [
            ("inject", dut[f"inject__{src}__{vc}__valid"]),        # the tile offers it
            ("router", dut[f"noc_in_valid__{src}"]),              # source router's output
            ("bridge_out", dut[f"to_link_valid__{src}__{vc}"]),    # offered to the adapter
            ("link", dut[f"from_link_valid__{dst}__{vc}"]),        # out of the far adapter
            ("bridge_in", dut[f"noc_out_valid__{dst}"]),          # on the far router's input
            ("eject", dut[f"eject__{dst}__{vc}__valid"]),          # offered to the far tile
        ]
        bench.send(src, dst, vc, 1)
        times = {}
        for cycle in range(1000):
            await RisingEdge(dut.clk)
            for name, probe in probes:
                if name not in times and int(probe.value):
                    times[name] = cycle
            if "eject" in times:
                break
        names = [name for name, _ in probes]
        assert list(times) == names, f"stages seen out of order: {times}"
        for before, after in zip(names, names[1:], strict=False):
            stages[after].append(times[after] - times[before])
        stages["total"].append(times["eject"] - times["inject"])
        await ClockCycles(dut.clk, rng.randint(1, 40))
    await bench.drain()
    summary = {name: (min(v), round(sum(v) / len(v), 1), max(v)) for name, v in stages.items()}
    cocotb.log.info(f"zero-load cycles per stage (min, mean, max): {summary}")
    # Source router: inject to output register 3 cycles, as in the mesh (2 per router, 1 for
    # the registered injection). Bridge out: the flit is in its buffer the cycle after it
    # leaves the router; bridge in: the tail guard's hold (a lone flit is its own tail, so
    # it waits for nothing) and the output register.
    assert set(stages["router"]) == {3}, stages["router"]
    assert set(stages["bridge_out"]) == {1}, stages["bridge_out"]
    assert set(stages["bridge_in"]) == {2}, stages["bridge_in"]
    assert set(stages["eject"]) == {2}, stages["eject"]


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def saturated_throughput(dut):
    """Die 0 sends 8-flit packets to die 1 as fast as it can, on one VC and then on both:
    flits per cycle across the link, against the frame's bound (slots / frame beats)."""
    bench = CrossBench(dut, inject_pause=0.0, eject_pauses=None)
    await reset(dut)
    p = bench.params
    frame_beats = 1 + p["frame_flits"] * p["flit_width"] // p["beat_width"] + 1 + 1
    bound = p["frame_flits"] / frame_beats
    rates = {}
    for vcs in ([0], [0, 1]):
        packets = [bench.send(0, 1, vc, 8) for _ in range(30) for vc in vcs]
        flits = sum(len(packet.flits) for packet in packets)
        start = bench.scoreboard.flits
        while bench.scoreboard.flits == start:            # first flit out of die 1
            await RisingEdge(dut.clk)
        cycles = 0
        while bench.scoreboard.flits - start < flits:
            await RisingEdge(dut.clk)
            cycles += 1
        # From the first frame's flits out to the last's: all but one frame's flits.
        rates[len(vcs)] = (flits - p["frame_flits"]) / cycles
        await bench.drain()
    cocotb.log.info(f"saturated flits/cycle across the link: one VC {rates[1]:.3f}, two VCs "
                    f"{rates[2]:.3f}; frame bound {bound:.3f}")
    for count, rate in rates.items():
        assert rate <= bound + 1e-9, f"{count} VC(s): {rate:.3f} flits/cycle beats the bound"
    # With both VCs the bridges keep every frame full (one VC alone is limited by the
    # link's credits per VC, rx_credits, against its credit round trip).
    assert rates[2] >= 0.95 * bound, f"two VCs reach only {rates[2]:.3f} of {bound:.3f}"
