"""cocotb tests of a :class:`chipknit.rtl.noc.mesh.Mesh`: traffic patterns, latency per hop,
unroutable destinations and a reset in the middle of packets.

Every local port has a stream source per VC (random pauses) and a stream sink per VC
(random backpressure). Scoreboard: :class:`~chipknit.tb.models.noc.PacketScoreboard` —
every packet once, intact, in order per (source, destination, VC), out of the node and
local port its destination names.
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.noc import (
    Dest,
    PacketScoreboard,
    hops,
    make_packet,
    traffic_destination,
)
from chipknit.tb.stream import StreamSink, StreamSource, burst_pauses, random_pauses
from chipknit.tb.tests.noc_common import model_format, model_geometry
from chipknit.tb.tests.noc_load import LOAD_ENV, measure

TIMEOUT_US = 20000
# Packets per source in the traffic tests; a soak raises it (tests/test_noc.py, slow).
PACKETS = int(os.environ.get("CHIPKNIT_NOC_PACKETS", "30"))


class MeshBench:
    def __init__(self, dut, *, inject_pause=0.3, eject_pauses=lambda: burst_pauses(6, 6)):
        self.dut = dut
        self.params = params = design_params()
        self.fmt = model_format(params)
        self.geometry = model_geometry(params)
        self.vcs = params["vcs"]
        self.rng = random.Random(random.getrandbits(32))
        self.inject_pause, self.eject_pauses = inject_pause, eject_pauses
        self.seq = 0
        start_clock(dut)
        self._start_drivers()

    def ports(self):
        for node in range(self.geometry.nodes):
            for local in range(self.geometry.local_ports):
                yield node, local

    def _start_drivers(self):
        self.scoreboard = PacketScoreboard(self.fmt, "mesh", route_check=self._route_check)
        self.sources, self.sinks = {}, {}
        for node, local in self.ports():
            for vc in range(self.vcs):
                name = f"{node}__{local}__{vc}"
                pauses = random_pauses(self.inject_pause, random.Random(self.rng.random())) \
                    if self.inject_pause else None
                self.sources[node, local, vc] = StreamSource(
                    self.dut, f"inject__{name}", self.dut.clk, pauses)
                self.sinks[node, local, vc] = StreamSink(
                    self.dut, f"eject__{name}", self.dut.clk,
                    self.eject_pauses() if self.eject_pauses else None,
                    callback=lambda flit, where=(node, local): self.scoreboard.observe(
                        where, flit))

    def stop_drivers(self):
        for driver in [*self.sources.values(), *self.sinks.values()]:
            driver.stop()

    def _route_check(self, where, packet):
        want = (self.geometry.node(packet.dest.x, packet.dest.y), packet.dest.port)
        assert where == want, f"packet to {packet.dest} came out at {where}, want {want}"

    def src_id(self, node, local):
        return node * self.geometry.local_ports + local

    def send(self, node, local, dest, vc, length, expect=True):
        packet = make_packet(self.fmt, src=self.src_id(node, local), seq=self.seq, dest=dest,
                             vc=vc, length=length, rng=self.rng)
        self.seq += 1
        if expect:
            self.scoreboard.expect(packet)
        self.sources[node, local, vc].send_all(packet.flits)
        return packet

    def traffic(self, pattern, packets, max_length):
        for _ in range(packets):
            for node, local in self.ports():
                dst = traffic_destination(pattern, self.geometry, node, self.rng)
                x, y = self.geometry.position(dst)
                dest = Dest(x=x, y=y, port=self.rng.randrange(self.geometry.local_ports))
                self.send(node, local, dest, self.rng.randrange(self.vcs),
                          self.rng.randint(1, max_length))

    async def drain(self, limit=200000):
        for _ in range(limit):
            await ClockCycles(self.dut.clk, 8)
            if all(s.idle() for s in self.sources.values()) and \
                    self.scoreboard.outstanding() == 0 and not self.scoreboard.partial:
                break
        await ClockCycles(self.dut.clk, 20)
        self.scoreboard.drain_check()
        for node in range(self.geometry.nodes):
            for name in ("unroutable", "malformed"):
                value = int(self.dut._id(f"{name}__{node}", extended=False).value)
                assert value == 0, f"node {node} counted {value} {name}"


async def _pattern(dut, pattern):
    bench = MeshBench(dut)
    await reset(dut)
    bench.traffic(pattern, PACKETS, 4)
    total = bench.scoreboard.outstanding()
    await bench.drain()
    assert bench.scoreboard.matched == total
    vcs_used = {packet.vc for packet, _ in bench.scoreboard.delivered}
    assert vcs_used == set(range(bench.vcs)), f"only VCs {vcs_used} carried traffic"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def uniform_random(dut):
    """Uniform random destinations (self included), 1-4 flit packets, both VCs."""
    await _pattern(dut, "uniform")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def transpose(dut):
    """(x, y) sends to (y, x): a few links carry everything."""
    await _pattern(dut, "transpose")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def hotspot(dut):
    """20 % of packets to the centre node, the rest uniform."""
    await _pattern(dut, "hotspot")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def zero_load_two_cycles_per_hop(dut):
    """A lone flit comes out 2 cycles per router it crosses, plus 1 for injection (the route
    computed in a cycle of its own), after it was offered; plus 1 per hop between routers
    with the mesh's ``flit_registers``, 1 per hop without its ``wire_requests`` (the flit
    asks the allocator from its input's registers), and 1 with its
    ``injection_registers``."""
    bench = MeshBench(dut, inject_pause=0, eject_pauses=None)
    await reset(dut)
    g = bench.geometry
    pairs = [(src, dst) for src in range(g.nodes) for dst in range(g.nodes)]
    for src, dst in bench.rng.sample(pairs, min(len(pairs), 40)):
        x, y = g.position(dst)
        vc = bench.rng.randrange(bench.vcs)
        bench.send(src, 0, Dest(x=x, y=y), vc, 1)
        start = None
        valid_in = bench.dut._id(f"inject__{src}__0__{vc}__valid", extended=False)
        valid_out = bench.dut._id(f"eject__{dst}__0__{vc}__valid", extended=False)
        for cycle in range(100):
            await RisingEdge(dut.clk)
            if start is None and int(valid_in.value):
                start = cycle
            if start is not None and int(valid_out.value):
                break
        routers = hops(g.position(src), (x, y)) + 1
        want = (2 * routers + 1 + (routers - 1) * bool(bench.params["flit_registers"])
                + (routers - 1) * (not bench.params["wire_requests"])
                + bool(bench.params["injection_registers"]))
        assert cycle - start == want, (
            f"{src} to {dst}: {cycle - start} cycles over {routers} routers, want {want}")
        await ClockCycles(dut.clk, 3)
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def one_flit_per_cycle_across_the_mesh(dut):
    """A long packet from a corner to the far corner, offered every cycle and taken every
    cycle, comes out one flit a cycle on each VC in turn: no hop's credit loop (3 cycles, one
    more each with the mesh's ``credit_registers``, ``flit_registers`` and without its
    ``wire_requests``) is longer than ``depth`` allows."""
    bench = MeshBench(dut, inject_pause=0, eject_pauses=None)
    await reset(dut)
    g = bench.geometry
    far = g.nodes - 1
    x, y = g.position(far)
    length = 48
    for vc in range(bench.vcs):
        bench.send(0, 0, Dest(x=x, y=y), vc, length)
        valid = bench.dut._id(f"eject__{far}__0__{vc}__valid", extended=False)
        cycles = []
        for cycle in range(20 * length):
            await RisingEdge(dut.clk)
            if int(valid.value):
                cycles.append(cycle)
                if len(cycles) == length:
                    break
        assert len(cycles) == length, f"VC {vc}: {len(cycles)} of {length} flits came out"
        gaps = [b - a for a, b in zip(cycles, cycles[1:], strict=False) if b - a != 1]
        assert not gaps, f"VC {vc}: the packet stalled {len(gaps)} times ({gaps[:8]} cycles)"
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def unroutable_destinations(dut):
    """Packets to addresses outside the mesh are dropped and counted where they entered;
    the traffic around them arrives."""
    bench = MeshBench(dut)
    await reset(dut)
    g = bench.geometry
    bad = [Dest(x=g.columns, y=0), Dest(x=0, y=g.rows), Dest(x=0, y=0, die=2)]
    counts = [0] * g.nodes
    for _ in range(6):
        bench.traffic("uniform", 1, 3)
        node = bench.rng.randrange(g.nodes)
        bench.send(node, 0, bench.rng.choice(bad), bench.rng.randrange(bench.vcs),
                   bench.rng.randint(1, 3), expect=False)
        counts[node] += 1
    bench.traffic("uniform", 2, 3)
    for _ in range(20000):
        await ClockCycles(dut.clk, 8)
        if all(s.idle() for s in bench.sources.values()) and \
                bench.scoreboard.outstanding() == 0:
            break
    bench.scoreboard.drain_check()
    got = [int(dut._id(f"unroutable__{n}", extended=False).value) for n in range(g.nodes)]
    assert got == counts, f"unroutable per node {got}, want {counts}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_mid_packet(dut):
    """A network reset with multi-flit packets in flight leaves a clean, working mesh."""
    bench = MeshBench(dut, inject_pause=0.1)
    await reset(dut)
    bench.traffic("uniform", 10, 6)
    await ClockCycles(dut.clk, bench.rng.randint(20, 60))
    assert bench.scoreboard.partial, "no packet was half delivered when the reset came"
    bench.stop_drivers()
    await reset(dut, cycles=3)
    await ClockCycles(dut.clk, 2)
    g = bench.geometry
    for node in range(g.nodes):
        for vc in range(bench.vcs):
            valid = int(dut._id(f"eject__{node}__0__{vc}__valid", extended=False).value)
            assert not valid, f"node {node} VC {vc} still ejects after the reset"
    bench._start_drivers()
    bench.traffic("uniform", 10, 4)
    total = bench.scoreboard.outstanding()
    await bench.drain()
    assert bench.scoreboard.matched == total


@cocotb.test(timeout_time=1, timeout_unit="sec", skip=LOAD_ENV not in os.environ)
async def measure_load(dut):
    """Latency against offered load (``chipknit bench noc``; runs only when asked)."""
    params = design_params()
    start_clock(dut)
    await measure(dut, model_format(params), model_geometry(params), params["vcs"])
