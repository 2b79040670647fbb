"""cocotb tests of one :class:`chipknit.rtl.noc.router.Router`, its neighbours played by
:class:`~chipknit.tb.tests.noc_common.LinkSource`/``LinkSink`` and its tile by stream drivers.

Scoreboard: :class:`~chipknit.tb.models.noc.PacketScoreboard` (every packet once, intact,
in order per source/destination/VC, out of the port the XY model names, with the lookahead
route the model computes for the next router). Traffic from a neighbour only carries
destinations XY routing could bring from that side.
"""

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.noc import (
    DIRECTION_DELTAS,
    OPPOSITE,
    Dest,
    PacketScoreboard,
    lookahead_route,
    make_packet,
    xy_route,
)
from chipknit.tb.stream import StreamSink, StreamSource, burst_pauses, random_pauses
from chipknit.tb.tests.noc_common import LinkSink, LinkSource, model_format, model_geometry

TIMEOUT_US = 3000


class RouterBench:
    def __init__(self, dut, *, source_pause=0.0, link_drain=1.0, eject_pauses=None,
                 inject_pauses=None):
        self.dut = dut
        self.params = params = design_params()
        self.fmt = model_format(params)
        self.geometry = model_geometry(params)
        self.x, self.y = params["x"], params["y"]
        self.vcs, self.depth = params["vcs"], params["depth"]
        self.ports = self.geometry.ports
        self.rng = random.Random(random.getrandbits(32))
        self.scoreboard = PacketScoreboard(self.fmt, "router", route_check=self._route_check)
        start_clock(dut)
        self.sources, self.sinks = {}, {}
        for d in range(4):
            if self.geometry.contains(self.x + DIRECTION_DELTAS[d][0],
                                      self.y + DIRECTION_DELTAS[d][1]):
                self.sources[d] = LinkSource(dut, f"link_in__{d}", dut.clk, self.vcs,
                                             self.depth, pause=source_pause)
                self.sinks[d] = LinkSink(
                    dut, f"link_out__{d}", dut.clk, self.vcs, self.depth, self._link_vc,
                    drain=link_drain, callback=lambda payload, d=d: self._from_link(d, payload))
            else:
                dut._id(f"link_in__{d}__valid", extended=False).value = 0
                dut._id(f"link_out__{d}__credit", extended=False).value = 0
        for local in range(self.geometry.local_ports):
            for vc in range(self.vcs):
                port = 4 + local
                self.sources[port, vc] = StreamSource(
                    dut, f"inject__{local}__{vc}", dut.clk,
                    inject_pauses() if inject_pauses else None)
                self.sinks[port, vc] = StreamSink(
                    dut, f"eject__{local}__{vc}", dut.clk,
                    eject_pauses() if eject_pauses else None,
                    callback=lambda flit, port=port: self.scoreboard.observe(port, flit))
        self.seq = 0

    # ---- model side ---------------------------------------------------------------------
    def _link_vc(self, payload):
        flit, _route = self.fmt.decode_link(payload, self.ports)
        return self.fmt.decode(flit).vc

    def _from_link(self, d, payload):
        flit, route = self.fmt.decode_link(payload, self.ports)
        decoded = self.fmt.decode(flit)
        if decoded.head:
            dest = self.fmt.decode_dest(decoded.data)
            want = lookahead_route(self.geometry, self.x, self.y, d, dest)
            assert route == want, (f"lookahead route {route} leaving port {d} for {dest}, "
                                   f"model says {want}")
        self.scoreboard.observe(d, flit)

    def _route_check(self, where, packet):
        want = xy_route(self.geometry, self.x, self.y, packet.dest)
        assert where == want, f"packet to {packet.dest} left by port {where}, XY says {want}"

    def random_dest(self, src_port):
        """A routable destination that XY could bring in through ``src_port``."""
        while True:
            dest = Dest(x=self.rng.randrange(self.geometry.columns),
                        y=self.rng.randrange(self.geometry.rows),
                        port=self.rng.randrange(self.geometry.local_ports))
            if src_port >= 4:
                return dest
            dx, dy = DIRECTION_DELTAS[src_port]
            upstream = xy_route(self.geometry, self.x + dx, self.y + dy, dest)
            if upstream == OPPOSITE[src_port]:
                return dest

    def packet(self, src_port, vc, length, dest=None):
        dest = dest or self.random_dest(src_port)
        packet = make_packet(self.fmt, src=src_port, seq=self.seq, dest=dest, vc=vc,
                             length=length, rng=self.rng)
        self.seq += 1
        return packet

    def offer(self, src_port, packet, expect=True):
        if expect:
            self.scoreboard.expect(packet)
        if src_port < 4:
            route = xy_route(self.geometry, self.x, self.y, packet.dest)
            self.sources[src_port].send(packet.vc, [
                self.fmt.encode_link(flit, route if index == 0 else 0)
                for index, flit in enumerate(packet.flits)])
        else:
            self.sources[src_port, packet.vc].send_all(packet.flits)

    def input_ports(self):
        return sorted(key for key in self.sources if isinstance(key, int)) + \
            list(range(4, 4 + self.geometry.local_ports))

    # ---- checks -------------------------------------------------------------------------
    async def drain(self, limit=20000):
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            if all(s.idle() for s in self.sources.values()) and \
                    self.scoreboard.outstanding() == 0 and not self.scoreboard.partial:
                break
        await ClockCycles(self.dut.clk, 10)
        self.scoreboard.drain_check()

    def assert_clean(self):
        for d, source in ((k, s) for k, s in self.sources.items() if isinstance(k, int)):
            assert source.credits == [self.depth] * self.vcs, (
                f"link_in[{d}] credits {source.credits} at idle, want all {self.depth} back")
        for name in ("unroutable", "malformed"):
            assert int(getattr(self.dut, name).value) == 0, f"{name} counted at idle"


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_traffic_all_ports(dut):
    """Random packets (1-5 flits, both VCs) on every input, random backpressure everywhere."""
    bench = RouterBench(dut, source_pause=0.3, link_drain=0.5,
                        eject_pauses=lambda: burst_pauses(6, 8),
                        inject_pauses=lambda: random_pauses(0.3))
    await reset(dut)
    count = 0
    for _ in range(60):
        for port in bench.input_ports():
            vc = bench.rng.randrange(bench.vcs)
            bench.offer(port, bench.packet(port, vc, bench.rng.randint(1, 5)))
            count += 1
    await bench.drain()
    assert bench.scoreboard.matched == count
    assert max(sink.max_fill for k, sink in bench.sinks.items() if isinstance(k, int)) \
        == bench.depth, "no link buffer ever filled: backpressure too gentle to test credits"
    bench.assert_clean()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def zero_load_two_cycles_per_router(dut):
    """A lone flit leaves any output 2 cycles after it reached a link input (3 without
    ``wire_requests``: it asks from the input's registers), 3 after it was offered on a tile
    input (injection computes the route in a cycle of its own; 4 with ``injection_register``,
    which registers it first)."""
    bench = RouterBench(dut)
    await reset(dut)
    ports = bench.input_ports()
    for src in ports:
        for _ in range(4):
            packet = bench.packet(src, bench.rng.randrange(bench.vcs), 1)
            out = xy_route(bench.geometry, bench.x, bench.y, packet.dest)
            bench.offer(src, packet)
            start = None
            for cycle in range(20):
                await RisingEdge(dut.clk)
                src_valid = (dut._id(f"link_in__{src}__valid", extended=False) if src < 4 else
                             dut._id(f"inject__{src - 4}__{packet.vc}__valid", extended=False))
                if start is None and int(src_valid.value):
                    start = cycle
                out_valid = (dut._id(f"link_out__{out}__valid", extended=False) if out < 4
                             else dut._id(f"eject__{out - 4}__{packet.vc}__valid",
                                          extended=False))
                if start is not None and int(out_valid.value):
                    want = (2 + (not bench.params["wire_requests"]) if src < 4
                            else 3 + bench.params["injection_register"])
                    assert cycle - start == want, (
                        f"port {src} to {out}: {cycle - start} cycles, want {want}")
                    break
            else:
                raise AssertionError(f"flit from port {src} to {out} never came out")
            await ClockCycles(dut.clk, 4)
    await bench.drain()
    bench.assert_clean()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def one_flit_per_cycle_per_vc(dut):
    """A long packet on one VC crosses at one flit per cycle (credits cover the round trip)."""
    bench = RouterBench(dut)
    await reset(dut)
    src = next(p for p in bench.input_ports() if p < 4)
    length = 200
    packet = bench.packet(src, 0, length)
    out = xy_route(bench.geometry, bench.x, bench.y, packet.dest)
    bench.offer(src, packet)
    sink = bench.sinks[out] if out < 4 else bench.sinks[out, 0]
    first = last = None
    cycle = 0
    while last is None and cycle < 2000:
        await RisingEdge(dut.clk)
        cycle += 1
        count = sink.received if out < 4 else sink.count
        if first is None and count:
            first = cycle
        if count == length:
            last = cycle
    assert last is not None, "packet did not get through"
    assert last - first == length - 1, f"{length} flits took {last - first + 1} cycles"
    await bench.drain()
    bench.assert_clean()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def unroutable_packets_are_dropped_and_counted(dut):
    """Packets to another die, outside the mesh or to a missing local port are taken from the
    tile, dropped whole and counted; traffic around them is delivered."""
    bench = RouterBench(dut, eject_pauses=lambda: random_pauses(0.3))
    await reset(dut)
    g, fmt = bench.geometry, bench.fmt
    bad = [Dest(x=0, y=0, die=1), Dest(x=g.columns, y=0), Dest(x=0, y=g.rows),
           Dest(x=(1 << fmt.x_bits) - 1, y=(1 << fmt.y_bits) - 1, die=3)]
    if g.local_ports < 1 << fmt.port_bits:
        bad.append(Dest(x=0, y=0, port=g.local_ports))
    dropped = 0
    for round_ in range(3):
        for dest in bad:
            vc = bench.rng.randrange(bench.vcs)
            bench.offer(4, bench.packet(4, vc, bench.rng.randint(1, 4)))
            bench.offer(4, bench.packet(4, vc, 1 + round_, dest=dest), expect=False)
            dropped += 1
    await bench.drain()
    assert int(dut.unroutable.value) == dropped, (
        f"unroutable counts {int(dut.unroutable.value)}, {dropped} were sent")
    assert int(dut.malformed.value) == 0


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def framing_errors_are_counted_without_a_hang(dut):
    """A body flit outside a packet is dropped; a head inside a packet is merged into it;
    both are counted and the VC keeps working."""
    bench = RouterBench(dut)
    await reset(dut)
    fmt = bench.fmt
    orphan = fmt.encode(fmt.decode(bench.packet(4, 0, 2).flits[1]))
    bench.sources[4, 0].send_all([orphan])
    await bench.drain()
    assert int(dut.malformed.value) == 1
    # Head inside an open packet: first packet's tail is missing; it ends at the next tail.
    first = bench.packet(4, 0, 3)
    second = bench.packet(4, 0, 2)
    bench.sources[4, 0].send_all(first.flits[:2] + second.flits)
    merged_head = fmt.decode(second.flits[0])
    merged = first.flits[:2] + [fmt.encode(type(merged_head)(
        head=False, tail=merged_head.tail, vc=0, data=merged_head.data))] + second.flits[1:]
    first.flits = merged
    bench.scoreboard.expect(first)
    await bench.drain()
    assert int(dut.malformed.value) == 2
    bench.offer(4, bench.packet(4, 0, 3))
    await bench.drain()
    assert int(dut.unroutable.value) == 0
