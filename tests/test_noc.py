# amaranth: UnusedElaboratable=no
"""The NoC: cocotb scoreboard runs of a router and of meshes, and unit checks of the model,
the route computer, the arbiters and the parameters."""

import dataclasses
import json
import random

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.noc.allocator import PreselectAllocator, RoundRobin, SeparableAllocator
from chipknit.rtl.noc.flit import Direction, FlitFormat
from chipknit.rtl.noc.mesh import MeshParams
from chipknit.rtl.noc.route import Gateway, MeshGeometry, RouteComputer
from chipknit.rtl.noc.router import RouterParams
from chipknit.tb.benches import QUICK_COMPILE, get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models.noc import (
    Dest,
    Flit,
    Geometry,
    NocFormat,
    PacketScoreboard,
    make_packet,
    traffic_destination,
    xy_route,
)

ROUTER = get_testbench("noc_router")
MESH = get_testbench("noc_mesh")


@pytest.mark.parametrize("simulator,params", [
    ("icarus", {}),
    ("verilator", {}),
    ("icarus", {"x": 0, "y": 2, "depth": 3, "data_width": 16}),
    ("icarus", {"columns": 2, "rows": 2, "x": 1, "y": 0, "local_ports": 2, "vcs": 3}),
    ("verilator", {"wire_requests": False, "injection_register": True}),
    ("verilator", {"eject_depth": 1}),
], ids=["icarus", "verilator", "corner-d3-w16", "2local-3vc", "registered", "eject-1"])
def test_router(simulator, params, seed):
    result = run(ROUTER, simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == 5


@pytest.mark.parametrize("params", [
    {"columns": 2, "rows": 2},
    # Every registering option at once (4 cycles a hop, a 6-cycle credit loop); the
    # package's meshes use them all but the flit registers (the package tests run those).
    {"columns": 2, "rows": 2, "credit_registers": True, "flit_registers": True,
     "injection_registers": True, "wire_requests": False, "depth": 6},
], ids=["2x2", "2x2-registered-d6"])
def test_mesh(params, seed):
    # A few hundred packets: the model's compile is the test's time (QUICK_COMPILE).
    result = run(dataclasses.replace(MESH, cxx_opt=QUICK_COMPILE), simulator="verilator",
                 params=params, seed=seed)
    result.check()
    assert result.tests == 8  # 7 tests, and measure_load (skipped unless a benchmark asks)


@pytest.mark.slow
@pytest.mark.parametrize("params", [
    {"columns": 3, "rows": 3},
    {"columns": 4, "rows": 4, "depth": 2},
], ids=["3x3", "4x4-d2"])
def test_mesh_soak(params, seed):
    result = run(MESH, simulator="verilator", params=params, seed=seed,
                 env={"CHIPKNIT_NOC_PACKETS": "200"})
    result.check()


# ---- model --------------------------------------------------------------------------------

def test_model_encoding_matches_rtl_layout():
    rng = random.Random(1)
    for fmt_rtl, fmt in [(FlitFormat(), NocFormat()),
                         (FlitFormat(data_width=20, vcs=3, x_bits=2, y_bits=4, port_bits=2),
                          NocFormat(data_width=20, vcs=3, x_bits=2, y_bits=4, port_bits=2))]:
        assert fmt_rtl.width == fmt.width
        for _ in range(200):
            dest = Dest(x=rng.getrandbits(fmt.x_bits), y=rng.getrandbits(fmt.y_bits),
                        port=rng.getrandbits(fmt.port_bits), die=rng.getrandbits(fmt.die_bits))
            payload = rng.getrandbits(fmt.payload_width)
            flit = Flit(head=rng.random() < 0.5, tail=rng.random() < 0.5,
                        vc=rng.randrange(fmt.vcs), data=fmt.head_data(dest, payload))
            head = fmt_rtl.head_layout.const({
                "dest": {"port": dest.port, "x": dest.x, "y": dest.y, "die": dest.die},
                "payload": payload})
            rtl = fmt_rtl.layout.const({"head": flit.head, "tail": flit.tail, "vc": flit.vc,
                                        "data": head.as_value().value})
            assert rtl.as_value().value == fmt.encode(flit)
            assert fmt.decode(fmt.encode(flit)) == flit
            assert fmt.decode_dest(flit.data) == dest


def test_route_computer_matches_model():
    fmt = FlitFormat()
    for geometry in (MeshGeometry(3, 3), MeshGeometry(4, 2, die=1, local_ports=2)):
        model_geometry = Geometry(geometry.columns, geometry.rows, geometry.die,
                                  geometry.local_ports)
        for x, y in [(0, 0), (1, 1), (geometry.columns - 1, geometry.rows - 1)]:
            dut = RouteComputer(fmt, geometry, x, y)

            async def bench(ctx, dut=dut, x=x, y=y, model_geometry=model_geometry):
                for die in range(4):
                    for dx in range(1 << fmt.x_bits):
                        for dy in range(1 << fmt.y_bits):
                            for port in range(2):
                                ctx.set(dut.dest, {"die": die, "x": dx, "y": dy, "port": port})
                                dest = Dest(x=dx, y=dy, port=port, die=die)
                                want = xy_route(model_geometry, x, y, dest)
                                assert ctx.get(dut.routable) == (want is not None), dest
                                if want is not None:
                                    assert ctx.get(dut.port) == want, (x, y, dest)

            sim = Simulator(dut)
            sim.add_testbench(bench)
            sim.run()


@pytest.mark.parametrize("count", [2, 3, 5])
def test_round_robin_grants_one_and_serves_everyone_within_count(count):
    dut = RoundRobin(count)
    rng = random.Random(count)

    async def bench(ctx):
        waiting = [0] * count  # grants to others since requester k started asking
        for _ in range(2000):
            requests = rng.getrandbits(count)
            # A requester that asked keeps asking until served (the fairness premise).
            for k in range(count):
                if waiting[k]:
                    requests |= 1 << k
            ctx.set(dut.requests, requests)
            ctx.set(dut.advance, 1)
            grant = ctx.get(dut.grant)
            assert bin(grant).count("1") == (1 if requests else 0), (requests, grant)
            assert grant & ~requests == 0
            for k in range(count):
                if requests >> k & 1 and not grant >> k & 1:
                    waiting[k] += 1
                    assert waiting[k] < count, f"requester {k} waited {waiting[k]} grants"
                else:
                    waiting[k] = 0
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("count", [2, 4, 5])
def test_round_robin_grants_the_first_requester_after_the_last_served(count):
    """The grant (read from the precedence registers) is exactly the first requester after
    the last one served in cyclic order, with random requests and ``advance``."""
    dut = RoundRobin(count)
    rng = random.Random(10 + count)

    async def bench(ctx):
        last = count - 1
        for _ in range(3000):
            requests = rng.getrandbits(count)
            advance = rng.random() < 0.7
            ctx.set(dut.requests, requests)
            ctx.set(dut.advance, advance)
            order = [(last + 1 + k) % count for k in range(count)]
            first = next((k for k in order if requests >> k & 1), None)
            assert ctx.get(dut.grant) == (0 if first is None else 1 << first), \
                (requests, last)
            assert ctx.get(dut.last) == 1 << last
            if advance and first is not None:
                last = first
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_preselect_allocator_grants_a_matching_and_serves_every_vc():
    inputs, vcs, outputs = 5, 2, 5
    dut = PreselectAllocator(inputs, vcs, outputs)
    rng = random.Random(3)

    async def bench(ctx):
        waiting = [[0] * vcs for _ in range(inputs)]  # cycles an eligible VC went unserved
        for _ in range(2000):
            requests = [[(1 << rng.randrange(outputs)) if rng.random() < 0.5 else 0
                         for _ in range(vcs)] for _ in range(inputs)]
            for i in range(inputs):
                for v in range(vcs):
                    if waiting[i][v] and not requests[i][v]:  # keeps asking until served
                        requests[i][v] = 1 << rng.randrange(outputs)
                    ctx.set(dut.requests[i][v], requests[i][v])
                # Every VC with a request has a flit; some have a flit but no request.
                present = sum(1 << v for v in range(vcs)
                              if requests[i][v] or rng.random() < 0.2)
                ctx.set(dut.present[i], present)
            selected = set()
            for i in range(inputs):
                chosen, grant = ctx.get(dut.chosen[i]), ctx.get(dut.grant[i])
                present = ctx.get(dut.present[i])
                assert bin(chosen).count("1") == (1 if present else 0)
                assert chosen & ~present == 0
                assert grant & ~chosen == 0
            for o in range(outputs):
                select = ctx.get(dut.select[o])
                assert bin(select).count("1") <= 1
                if select:
                    i = select.bit_length() - 1
                    grant = ctx.get(dut.grant[i])
                    v = grant.bit_length() - 1
                    assert grant == 1 << v and requests[i][v] == 1 << o
                    assert i not in selected
                    selected.add(i)
            for i in range(inputs):
                grant = ctx.get(dut.grant[i])
                for v in range(vcs):
                    if requests[i][v] and not grant >> v & 1:
                        waiting[i][v] += 1
                        assert waiting[i][v] < 4 * inputs * vcs, (i, v, waiting[i][v])
                    else:
                        waiting[i][v] = 0
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_separable_allocator_grants_are_a_matching():
    inputs, vcs, outputs = 5, 2, 5
    dut = SeparableAllocator(inputs, vcs, outputs)
    rng = random.Random(2)

    async def bench(ctx):
        for _ in range(1000):
            requests = [[(1 << rng.randrange(outputs)) if rng.random() < 0.6 else 0
                         for _ in range(vcs)] for _ in range(inputs)]
            for i in range(inputs):
                for v in range(vcs):
                    ctx.set(dut.requests[i][v], requests[i][v])
            granted_outputs = set()
            for o in range(outputs):
                select = ctx.get(dut.select[o])
                assert bin(select).count("1") <= 1
                if select:
                    i = select.bit_length() - 1
                    grant = ctx.get(dut.grant[i])
                    assert bin(grant).count("1") == 1, "output granted, input not"
                    v = grant.bit_length() - 1
                    assert requests[i][v] == 1 << o, "granted a VC that did not ask for o"
                    granted_outputs.add(o)
            wanted = {r.bit_length() - 1 for row in requests for r in row if r}
            # Input-first: every input with a request forwards one, so each output some
            # input chose is granted; at least one output is granted whenever any is asked.
            assert bool(granted_outputs) == bool(wanted)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_scoreboard_catches_loss_reorder_duplicate_and_interleave():
    fmt, rng = NocFormat(), random.Random(3)
    packets = [make_packet(fmt, src=1, seq=s, dest=Dest(1, 1), vc=0, length=2, rng=rng)
               for s in range(2)]
    board = PacketScoreboard(fmt)
    for packet in packets:
        board.expect(packet)
    board.observe("a", packets[1].flits[0])
    with pytest.raises(AssertionError, match="differs from the oldest pending"):
        board.observe("a", packets[1].flits[1])
    board = PacketScoreboard(fmt)
    board.expect(packets[0])
    for flit in packets[0].flits:
        board.observe("a", flit)
    board.observe("a", packets[0].flits[0])
    with pytest.raises(AssertionError, match="none was pending"):
        board.observe("a", packets[0].flits[1])
    board = PacketScoreboard(fmt)
    board.expect(packets[0])
    board.observe("a", packets[0].flits[0])
    with pytest.raises(AssertionError, match="inside an open packet"):
        board.observe("a", packets[1].flits[0])
    board = PacketScoreboard(fmt)
    board.expect(packets[0])
    with pytest.raises(AssertionError, match="never came out"):
        board.drain_check()


def test_traffic_patterns():
    geometry, rng = Geometry(4, 4), random.Random(4)
    assert traffic_destination("transpose", geometry, geometry.node(1, 3), rng) == \
        geometry.node(3, 1)
    assert traffic_destination("transpose", geometry, geometry.node(2, 2), rng) == \
        geometry.node(2, 2)
    hits = sum(traffic_destination("hotspot", geometry, 0, rng) == geometry.node(2, 2)
               for _ in range(20000))
    assert 0.2 + 0.8 / 16 - 0.02 < hits / 20000 < 0.2 + 0.8 / 16 + 0.02
    with pytest.raises(ValueError, match="unknown traffic pattern"):
        traffic_destination("bitrev", geometry, 0, rng)


# ---- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("factory,message", [
    (lambda: FlitFormat(vcs=1), "VCs must be an integer of at least 2"),
    (lambda: FlitFormat(data_width=0), "Data width must be a positive integer, not 0"),
    (lambda: FlitFormat(data_width=9), "leaves no head payload"),
    (lambda: MeshGeometry(columns=0), "Columns must be a positive integer, not 0"),
    (lambda: MeshGeometry(die=-1), "Die must be a non-negative integer, not -1"),
    (lambda: RouterParams(depth=1), "Depth must be an integer of at least 2, not 1"),
    (lambda: RouterParams(depth=2, edge_depth=3),
     r"Edge depth must be an integer from 1 to the depth \(2\), not 3"),
    (lambda: RouterParams(edge_depth=0), "Edge depth must be an integer from 1"),
    (lambda: RouterParams(x=4), r"Position \(4, 0\) is outside the 4x4 mesh"),
    (lambda: RouterParams(geometry=MeshGeometry(columns=9)),
     "9 values do not fit the flit format's x_bits=3"),
    (lambda: RouterParams(counter_width=0), "Counter width must be a positive integer, not 0"),
    (lambda: MeshParams(geometry=MeshGeometry(local_ports=3)),
     "3 values do not fit the flit format's port_bits=1"),
    (lambda: RoundRobin(0), "Count must be a positive integer, not 0"),
    (lambda: MeshGeometry(2, 2, gateways=[Gateway(0, 1, 1, Direction.EAST)]),
     "Die 0 has a gateway to itself"),
    (lambda: MeshGeometry(2, 2, gateways=[Gateway(1, 1, 1, Direction.EAST),
                                          Gateway(1, 1, 0, Direction.EAST)]),
     "Die 0 has two gateways to die 1"),
    (lambda: MeshGeometry(2, 2, gateways=[Gateway(1, 0, 1, Direction.EAST)]),
     r"Gateway to die 1: the EAST port of \(0, 1\) leads to another router of the die"),
    (lambda: MeshGeometry(2, 2, gateways=[Gateway(1, 2, 1, Direction.EAST)]),
     r"Gateway to die 1 at \(2, 1\) is outside the 2x2 mesh"),
    (lambda: Gateway(-1, 0, 0, Direction.EAST),
     "Gateway die must be a non-negative integer, not -1"),
    (lambda: Gateway(1, 0, 0, Direction.EAST, columns=0),
     "Gateway columns must be a positive integer, not 0"),
    (lambda: RouterParams(geometry=MeshGeometry(
        2, 2, gateways=[Gateway(4, 1, 1, Direction.EAST)])),
     "5 values do not fit the flit format's die_bits=2"),
    (lambda: RouterParams(geometry=MeshGeometry(
        2, 2, gateways=[Gateway(1, 1, 1, Direction.EAST, columns=9)])),
     "9 values do not fit the flit format's x_bits=3"),
])
def test_params_are_validated(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_bench_quick(tmp_path):
    from chipknit.cli import main
    out, plot = tmp_path / "noc.json", tmp_path / "noc.png"
    assert main(["bench", "noc", "--quick", "--json", str(out), "--plot", str(plot)]) == 0
    figures = json.loads(out.read_text())
    # Two cycles per router, one for injection (the route is registered) and one to take
    # the flit: 4 + 2 * hops at zero load.
    assert figures["latency_by_hops"] == {"0": 4.0, "1": 6.0, "2": 8.0}
    assert figures["cycles_per_hop"] == 2.0
    assert plot.stat().st_size > 0


def test_params_reject_wrong_types():
    with pytest.raises(TypeError, match="Flit must be a FlitFormat"):
        RouterParams(flit=32)
    with pytest.raises(TypeError, match="Wire requests must be a bool"):
        RouterParams(wire_requests=1)
    with pytest.raises(TypeError, match="Injection register must be a bool"):
        RouterParams(injection_register="yes")
    with pytest.raises(TypeError, match="Gateways must be Gateway objects"):
        MeshGeometry(gateways=[(1, 0, 0, Direction.EAST)])
    with pytest.raises(TypeError, match="Gateway direction must be a Direction"):
        Gateway(1, 0, 0, "east")


def test_geometry_without_gateways_routes_as_before():
    """No gateways: another die is unroutable and every route is the plain XY one."""
    geometry = MeshGeometry(3, 2, die=1, local_ports=2)
    model = Geometry(3, 2, 1, 2)
    assert geometry.edge_ports == ()
    for x in range(3):
        for y in range(2):
            for die in range(4):
                for dx in range(8):
                    for dy in range(8):
                        for port in range(2):
                            want = xy_route(model, x, y, Dest(x=dx, y=dy, port=port, die=die))
                            assert geometry.route(x, y, die, dx, dy, port) == want


def test_gateway_routes_to_its_router_then_off_the_edge():
    gateway = Gateway(2, 1, 0, Direction.SOUTH, columns=4, rows=4)
    geometry = MeshGeometry(2, 2, die=0, gateways=[gateway])
    assert geometry.edge_ports == ((1, 0, Direction.SOUTH),)
    assert geometry.route(0, 1, 2, 3, 3, 0) == Direction.EAST
    assert geometry.route(1, 1, 2, 3, 3, 0) == Direction.SOUTH
    assert geometry.route(1, 0, 2, 3, 3, 0) == Direction.SOUTH  # out of the die
    assert geometry.route(1, 0, 2, 4, 3, 0) is None  # outside die 2's 4x4 mesh
    assert geometry.route(1, 0, 1, 0, 0, 0) is None  # no gateway to die 1
