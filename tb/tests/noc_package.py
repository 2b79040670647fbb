"""cocotb tests of a :class:`chipknit.rtl.noc.package_network.PackageNetwork`: cross-die
traffic, latency across a die link, destinations that do not exist.

Every local port of every die has a stream source per VC (random pauses) and a stream sink
per VC (random burst backpressure). Scoreboard:
:class:`~chipknit.tb.models.noc.PacketScoreboard` — every packet once, intact, in order per
(source, destination, VC), out of the die, node and local port its destination names. The
route and its length come from :class:`~chipknit.tb.models.noc.PackageModel`, built from the
package's plain data (dies and links), not from the RTL's routing tables.
"""

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.rtl.noc.package_network import PackageNetwork
from chipknit.rtl.package.config import Package
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.noc import Dest, NocFormat, PackageModel, PacketScoreboard, make_packet
from chipknit.tb.stream import StreamSink, StreamSource, burst_pauses, random_pauses

__all__ = ["package_top", "package_model"]

TIMEOUT_US = 20000
PACKETS = int(os.environ.get("CHIPKNIT_NOC_PACKETS", "30"))


def package_top(package="default", link_latency=2):
    """The testbench top: a shipped package's network with the stand-in die links."""
    return PackageNetwork(Package.named(package), link_latency=link_latency)


def package_model(package: Package) -> tuple[NocFormat, PackageModel]:
    noc = package.noc
    fmt = NocFormat(data_width=noc.data_width, vcs=noc.vcs, die_bits=noc.die_bits,
                    x_bits=noc.x_bits, y_bits=noc.y_bits, port_bits=noc.port_bits)
    model = PackageModel(
        {d.number: (d.columns, d.rows, d.local_ports) for d in package.dies},
        [((l.a.die, l.a.x, l.a.y, int(l.a.direction)),
          (l.b.die, l.b.x, l.b.y, int(l.b.direction))) for l in package.links])
    return fmt, model


class PackageBench:
    def __init__(self, dut, *, inject_pause=0.3, eject_pauses=lambda: burst_pauses(6, 6)):
        self.dut = dut
        self.params = design_params()
        self.package = Package.named(self.params["package"])
        self.fmt, self.model = package_model(self.package)
        self.vcs = self.package.noc.vcs
        self.rng = random.Random(random.getrandbits(32))
        self.inject_pause, self.eject_pauses = inject_pause, eject_pauses
        self.endpoints = [(die.number, node, local) for die in self.package.dies
                          for node in range(die.columns * die.rows)
                          for local in range(die.local_ports)]
        self.seq = 0
        start_clock(dut)
        self._start_drivers()

    def _start_drivers(self):
        self.scoreboard = PacketScoreboard(self.fmt, "package", route_check=self._route_check)
        self.sources, self.sinks = {}, {}
        for die, node, local in self.endpoints:
            for vc in range(self.vcs):
                name = f"die{die}_{{}}__{node}__{local}__{vc}"
                pauses = random_pauses(self.inject_pause, random.Random(self.rng.random())) \
                    if self.inject_pause else None
                self.sources[die, node, local, vc] = StreamSource(
                    self.dut, name.format("inject"), self.dut.clk, pauses)
                self.sinks[die, node, local, vc] = StreamSink(
                    self.dut, name.format("eject"), self.dut.clk,
                    self.eject_pauses() if self.eject_pauses else None,
                    callback=lambda flit, where=(die, node, local): self.scoreboard.observe(
                        where, flit))

    def _route_check(self, where, packet):
        columns = self.package.die(packet.dest.die).columns
        want = (packet.dest.die, packet.dest.y * columns + packet.dest.x, packet.dest.port)
        assert where == want, f"packet to {packet.dest} came out at {where}, want {want}"

    def position(self, die, node):
        columns = self.package.die(die).columns
        return node % columns, node // columns

    def dest(self, die, node, local):
        x, y = self.position(die, node)
        return Dest(x=x, y=y, port=local, die=die)

    def send(self, src, dest, vc, length, expect=True):
        die, node, local = src
        packet = make_packet(self.fmt, src=self.endpoints.index(src), seq=self.seq, dest=dest,
                             vc=vc, length=length, rng=self.rng)
        self.seq += 1
        if expect:
            self.scoreboard.expect(packet)
        self.sources[die, node, local, vc].send_all(packet.flits)
        return packet

    def traffic(self, packets, max_length, cross=0.7):
        """From every port, ``packets`` packets; a share ``cross`` goes to another die."""
        for _ in range(packets):
            for src in self.endpoints:
                others = [e for e in self.endpoints if e[0] != src[0]]
                pool = others if others and self.rng.random() < cross else self.endpoints
                self.send(src, self.dest(*self.rng.choice(pool)), self.rng.randrange(self.vcs),
                          self.rng.randint(1, max_length))

    def counter(self, name, die, node):
        return int(self.dut._id(f"die{die}_{name}__{node}", extended=False).value)

    async def drain(self, limit=200000):
        for _ in range(limit):
            await ClockCycles(self.dut.clk, 8)
            if all(s.idle() for s in self.sources.values()) and \
                    self.scoreboard.outstanding() == 0 and not self.scoreboard.partial:
                break
        await ClockCycles(self.dut.clk, 20)
        self.scoreboard.drain_check()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def cross_die_random(dut):
    """Random destinations, 70 % on the other die, 1-4 flit packets, both VCs, random
    injection pauses and ejection backpressure: every packet once, intact, in order."""
    bench = PackageBench(dut)
    await reset(dut)
    bench.traffic(PACKETS, 4)
    total = bench.scoreboard.outstanding()
    await bench.drain()
    assert bench.scoreboard.matched == total
    crossed = sum(packet.dest.die != bench.endpoints[packet.src][0]
                  for packet, _ in bench.scoreboard.delivered)
    assert crossed > total // 2, f"only {crossed} of {total} packets crossed a die link"
    dut._log.info(f"{total} packets, {bench.scoreboard.flits} flits, {crossed} across a die "
                  f"link")
    vcs_used = {packet.vc for packet, _ in bench.scoreboard.delivered}
    assert vcs_used == set(range(bench.vcs)), f"only VCs {vcs_used} carried traffic"
    for die, node, _ in bench.endpoints:
        for name in ("unroutable", "malformed"):
            assert bench.counter(name, die, node) == 0, f"die {die} node {node} counted {name}"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def zero_load_latency_across_dies(dut):
    """A lone flit takes 2 cycles per router, 1 for injection, plus the stand-in link's
    latency per die link it crosses (routers and links from the model's route)."""
    bench = PackageBench(dut, inject_pause=0, eject_pauses=None)
    await reset(dut)
    latency = bench.params["link_latency"]
    pairs = [(s, d) for s in bench.endpoints for d in bench.endpoints]
    for src, dst in bench.rng.sample(pairs, min(len(pairs), 40)):
        vc = bench.rng.randrange(bench.vcs)
        dest = bench.dest(*dst)
        bench.send(src, dest, vc, 1)
        x, y = bench.position(src[0], src[1])
        route = bench.model.route((src[0], x, y), dest)
        crossings = sum(a[0] != b[0] for a, b in zip(route, route[1:], strict=False))
        want = 2 * len(route) + 1 + latency * crossings
        valid_in = dut._id(f"die{src[0]}_inject__{src[1]}__{src[2]}__{vc}__valid",
                           extended=False)
        valid_out = dut._id(f"die{dst[0]}_eject__{dst[1]}__{dst[2]}__{vc}__valid",
                            extended=False)
        start = None
        for cycle in range(200):
            await RisingEdge(dut.clk)
            if start is None and int(valid_in.value):
                start = cycle
            if start is not None and int(valid_out.value):
                break
        assert cycle - start == want, (
            f"{src} to {dst}: {cycle - start} cycles over {len(route)} routers and "
            f"{crossings} die link(s), want {want}")
        await ClockCycles(dut.clk, 3)
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def unroutable_destinations(dut):
    """Destinations that do not exist — a die the package lacks, a router or port outside
    the other die's mesh — are dropped and counted where they were injected; the traffic
    around them arrives."""
    bench = PackageBench(dut)
    await reset(dut)
    fmt, package = bench.fmt, bench.package
    numbers = {d.number for d in package.dies}
    bad = [Dest(x=0, y=0, die=die) for die in range(1 << fmt.die_bits) if die not in numbers]
    for die in package.dies:
        if die.columns < 1 << fmt.x_bits:
            bad.append(Dest(x=die.columns, y=0, die=die.number))
        if die.rows < 1 << fmt.y_bits:
            bad.append(Dest(x=0, y=die.rows, die=die.number))
        if die.local_ports < 1 << fmt.port_bits:
            bad.append(Dest(x=0, y=0, port=die.local_ports, die=die.number))
    if len(numbers) < 1 << fmt.die_bits:
        assert any(d.die not in numbers for d in bad), "no missing die to address"
    counts = {}
    for _ in range(8):
        bench.traffic(1, 3)
        src = bench.rng.choice(bench.endpoints)
        bench.send(src, bench.rng.choice(bad), bench.rng.randrange(bench.vcs),
                   bench.rng.randint(1, 3), expect=False)
        counts[src[:2]] = counts.get(src[:2], 0) + 1
    bench.traffic(2, 3)
    await bench.drain()
    for die, node, local in bench.endpoints:
        if local:
            continue
        got = bench.counter("unroutable", die, node)
        assert got == counts.get((die, node), 0), (
            f"die {die} node {node} counted {got} unroutable, want {counts.get((die, node), 0)}")
