# amaranth: UnusedElaboratable=no
"""The package config, cross-die routing and the deadlock check: every validation message,
the shipped configs (valid, deadlock-free, elaborated as a network, converted to Verilog),
the route computers and the channel-dependency graph against the independent model, and a
cocotb scoreboard run of the default package's network."""

import copy
import random

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.noc.flit import Direction, FlitFormat
from chipknit.rtl.noc.mesh import Mesh, MeshParams
from chipknit.rtl.noc.package_network import LinkPipe, LinkRegister, PackageNetwork
from chipknit.rtl.noc.route import MeshGeometry, RouteComputer
from chipknit.rtl.package import deadlock
from chipknit.rtl.package.config import (
    Die,
    DieLink,
    Endpoint,
    Package,
    dump_toml,
    shipped,
)
from chipknit.rtl.package.top import PackageTop
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.hdl import to_sv
from chipknit.tb.models.noc import Dest, has_cycle, xy_route
from chipknit.tb.tests.noc_package import package_model

BENCH = get_testbench("noc_package")
SHIPPED = ("default", "icebreaker", "four_die")


def _default_dict():
    return copy.deepcopy(Package.named("default").to_dict())


def _ring(links=None):
    """Four 2x2 dies in a ring whose links leave from different routers of each die."""
    dies = [Die(f"d{n}", n) for n in range(4)]
    links = links or [
        DieLink(Endpoint(0, 1, 0, "east"), Endpoint(1, 0, 0, "west")),
        DieLink(Endpoint(0, 0, 1, "north"), Endpoint(2, 0, 0, "south")),
        DieLink(Endpoint(1, 1, 1, "north"), Endpoint(3, 1, 0, "south")),
        DieLink(Endpoint(2, 1, 1, "east"), Endpoint(3, 0, 1, "west")),
    ]
    return Package("ring", dies, links=links)


# ---- shipped configs ------------------------------------------------------------------------

def test_shipped_configs_are_listed():
    assert set(shipped()) >= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_validates_and_round_trips(name, tmp_path):
    package = Package.named(name)
    assert package.name == name
    text = package.to_toml()
    assert Package.loads(text) == package
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    assert Package.from_toml(path) == package
    # Deadlock-free: the RTL-side check passes, and the model's own graph agrees.
    assert deadlock.find_cycle(deadlock.channel_dependency_graph(package)) is None


def test_default_package_is_the_design_picture():
    package = Package.named("default")
    assert [d.number for d in package.dies] == [0, 1]
    kinds = {tile.kind: tile.die for tile in package.tiles if tile.kind != "counters"}
    assert kinds == {"host_bridge": 0, "memory": 0, "npu": 1}
    assert sorted(t.die for t in package.tiles if t.kind == "counters") == [0, 1]
    assert len(package.links) == 1


def test_unknown_shipped_name():
    with pytest.raises(ValueError, match="No shipped package 'nope'; there are .*default"):
        Package.named("nope")


def test_with_tile_params_merges_by_name_or_kind_and_validates():
    base = Package.named("default")
    by_kind = base.with_tile_params("npu", rows=2, cols=2)
    npus = [t for t in by_kind.tiles if t.kind == "npu"]
    assert len(npus) == 2 and all(t.params["rows"] == 2 and t.params["dma_port"] == 0
                                  for t in npus)
    by_name = base.with_tile_params("npu1", rows=8)
    assert {t.name: t.params.get("rows") for t in by_name.tiles if t.kind == "npu"} == {
        "npu0": 4, "npu1": 8}
    hosted = base.with_tile_params("host", frame_timeout=99)
    for old, new in zip(base.tiles, hosted.tiles, strict=True):
        assert new.params == ({**old.params, "frame_timeout": 99} if old.name == "host"
                              else old.params)
    assert [t.params for t in base.tiles if t.kind == "npu"][0]["rows"] == 4  # unchanged
    with pytest.raises(KeyError, match="no tile named or of kind 'gpu'"):
        base.with_tile_params("gpu", rows=2)
    with pytest.raises(ValueError, match="local port 2"):  # validated again
        base.with_tile_params("npu0", dma_port=2)


# The default package's network is converted and linted as the `noc_package` testbench top
# (tests/test_lint.py); the four-die one takes ~25 s to convert, so it is `slow`.
@pytest.mark.parametrize("name", ["icebreaker"])
def test_shipped_network_converts_to_verilog(name):
    package = Package.named(name)
    network = PackageNetwork(package)
    sv = to_sv(network, f"package_{name}")
    assert "module package_" + name in sv
    for die in package.dies:
        assert f"die{die.number}_inject__0__0__0__valid" in sv


@pytest.mark.slow
def test_four_die_network_converts_to_verilog():
    sv = to_sv(PackageNetwork(Package.named("four_die")), "package_four_die")
    assert "die3_eject__3__0__1__valid" in sv


# ---- validation messages --------------------------------------------------------------------

def _edit(change):
    table = _default_dict()
    change(table)
    return table


def _set(path, value):
    def change(table):
        node = table
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _add_link(link):
    return lambda table: table["links"].append(link)


def _add_die(die):
    return lambda table: table["dies"].append(die)


LINK = {"lanes": 16, "bits_per_lane": 1, "phy": "interposer"}


@pytest.mark.parametrize("change,message", [
    (_set(("tiles", 0, "x"), 2), r"Tile 'host' at \(2, 1\) is outside die 0's 2x2 mesh"),
    (_set(("tiles", 0, "port"), 1),
     r"Tile 'host' is on local port 1, but die 0's routers have 1 local port\(s\)"),
    (_set(("tiles", 1, "x"), 0),
     r"Tiles 'host' and 'memory' are both on die 0 router \(0, 1\) local port 0"),
    (_set(("tiles", 1, "name"), "host"), "Two tiles are named 'host'"),
    (_set(("tiles", 0, "die"), 3), r"Tile 'host' is on die 3, which does not exist \(dies: 0, 1\)"),
    (_set(("tiles", 0, "kind"), "gpu"), "Tile 'host' has kind 'gpu'; the kinds are host_bridge"),
    (_set(("links", 0, "b", "die"), 2),
     r"Link 0 \(die 0 \(1, 1\) east <-> die 2 \(0, 1\) west\) goes to die 2, which does not "
     r"exist \(dies: 0, 1\)"),
    (_set(("links", 0, "a", "x"), 0),
     r"Link 0 .*: the east port of die 0 router \(0, 1\) is not on the mesh edge \(it leads "
     r"to router \(1, 1\)\)"),
    (_set(("links", 0, "a", "y"), 2), r"Link 0 .*: router \(1, 2\) is outside die 0's 2x2 mesh"),
    (_add_link({"a": {"die": 0, "x": 1, "y": 1, "direction": "east"},
                "b": {"die": 2, "x": 0, "y": 0, "direction": "west"}, **LINK}),
     r"Link 1 .*: die 0 \(1, 1\) east already carries link 0"),
    (_add_link({"a": {"die": 0, "x": 1, "y": 0, "direction": "south"},
                "b": {"die": 0, "x": 0, "y": 0, "direction": "south"}, **LINK}),
     r"Link 1 .* joins die 0 to itself"),
    (_add_link({"a": {"die": 0, "x": 1, "y": 0, "direction": "east"},
                "b": {"die": 1, "x": 0, "y": 0, "direction": "west"}, **LINK}),
     "Links 0 and 1 both join dies 0 and 1; routing uses one link per pair of dies"),
    (_add_die({"name": "lonely", "number": 2}),
     r"Dies 0 \('base'\) and 2 \('lonely'\) cannot reach each other: no chain of links"),
    (_add_die({"name": "far", "number": 4}),
     r"Die 4 \('far'\) does not fit the flit format's die_bits=2 \(dies 0 to 3\)"),
    (_set(("dies", 1, "columns"), 9),
     r"Die 1 \('npu'\) has 9 columns; the flit format's x_bits=3 addresses at most 8"),
    (_set(("dies", 1, "rows"), 9),
     r"Die 1 \('npu'\) has 9 rows; the flit format's y_bits=3 addresses at most 8"),
    (_set(("dies", 0, "local_ports"), 3),
     r"Die 0 \('base'\) has 3 local ports; the flit format's port_bits=1 addresses at most 2"),
    (_set(("dies", 1, "number"), 0), "Dies 'base' and 'npu' both have number 0"),
    (_set(("dies", 1, "name"), "base"), "Two dies are named 'base'"),
    (_set(("dies", 0, "columns"), 0), "Die 'base' columns must be a positive integer, not 0"),
    (_set(("links", 0, "phy"), "optical"),
     "Link PHY must be one of interposer, ddr, not 'optical'"),
    (_set(("links", 0, "lanes"), 0), "Link lanes must be a positive integer, not 0"),
    (_set(("links", 0, "a", "direction"), "up"),
     "Link endpoint direction must be one of east, west, north, south, not 'up'"),
    (_set(("noc", "vcs"), 1), "VCs must be an integer of at least 2"),
    (_set(("noc", "depth"), 1), "NoC depth must be an integer of at least 2, not 1"),
    (_set(("noc", "edge_depth"), 99), r"NoC edge depth \(99\) must be at most the depth"),
    (_set(("noc", "edge_depth"), -1), "NoC edge depth must be a non-negative integer"),
    (_set(("noc", "response_timeout"), 3), "NoC response timeout must be an integer of at least 4"),
    (_set(("noc", "target_depth"), 0), "NoC target depth must be a positive integer, not 0"),
    (_set(("dies", 0, "colour"), "red"),
     r"Unknown key\(s\) 'colour' in \[\[dies\]\] entry 0; expected name, number"),
    (_set(("bogus",), 1), r"Unknown key\(s\) 'bogus' in the package"),
    (lambda table: table["links"][0].pop("b"), "\\[\\[links\\]\\] entry 0 has no endpoint 'b'"),
    (lambda table: table["dies"].clear(), "Package 'default' has no dies"),
])
def test_validation_messages(change, message):
    with pytest.raises(ValueError, match=message):
        Package.from_dict(_edit(change))


def test_deadlock_prone_layout_is_refused_naming_the_cycle():
    with pytest.raises(deadlock.DeadlockError) as info:
        _ring()
    message, cycle = str(info.value), info.value.cycle
    assert "Package 'ring' can deadlock: its channel-dependency graph has a cycle" in message
    assert cycle[0] == cycle[-1] and len(cycle) > 3
    # The cycle is one of the graph's, and every channel of it is named in the message, in
    # order, die links included.
    ring = _unchecked_ring()
    graph = deadlock.channel_dependency_graph(ring)
    for one, two in zip(cycle, cycle[1:], strict=False):
        assert two in graph[one]
    names = [deadlock.routing.describe_channel(ring, c) for c, _ in cycle]
    assert " -> ".join(names) in message
    assert sum("->die" in name for name in names[:-1]) == 4, "the cycle crosses all 4 links"


def _unchecked_ring():
    """The ring of :func:`_ring` without its deadlock check (to inspect its graph)."""
    original = deadlock.check_deadlock_free
    deadlock.check_deadlock_free = lambda package: None
    try:
        return _ring()
    finally:
        deadlock.check_deadlock_free = original


def test_deadlock_prone_toml_is_refused():
    table = Package.named("four_die").to_dict()
    # Move die 0's link to die 2 and die 2's link to die 3 off the shared corner routers:
    # now two dies have their links on different routers, and traffic crossing them can close
    # a loop through the ring.
    table["links"][1]["a"] = {"die": 0, "x": 0, "y": 1, "direction": "north"}
    table["links"][1]["b"] = {"die": 2, "x": 0, "y": 0, "direction": "south"}
    table["links"][3]["a"] = {"die": 2, "x": 1, "y": 1, "direction": "east"}
    table["links"][3]["b"] = {"die": 3, "x": 0, "y": 1, "direction": "west"}
    with pytest.raises(deadlock.DeadlockError, match="'four_die' can deadlock: .* -> "):
        Package.loads(dump_toml(table))


def test_find_cycle():
    assert deadlock.find_cycle({1: {2}, 2: {3}, 3: set()}) is None
    assert deadlock.find_cycle({1: {2}, 2: {3}, 3: {1}}) == [1, 2, 3, 1]
    assert deadlock.find_cycle({0: {1}, 1: {2, 4}, 2: set(), 4: {1}}) == [1, 4, 1]
    assert not has_cycle({1: {2}, 2: {3}}) and has_cycle({1: {2}, 2: {1}})


def _model_graph(package):
    _, model = package_model(package)
    return model.dependency_graph(package.noc.vcs)


def _rtl_graph(package):
    graph = deadlock.channel_dependency_graph(package)
    plain = lambda channel: (channel[0], channel[1], channel[2], int(channel[3]))  # noqa: E731
    return {(plain(c), v): {(plain(d), w) for d, w in after} for (c, v), after in graph.items()
            if after}


@pytest.mark.parametrize("name", SHIPPED)
def test_dependency_graph_matches_model(name):
    package = Package.named(name)
    graph = _model_graph(package)
    assert _rtl_graph(package) == graph
    assert not has_cycle(graph)


def test_model_finds_the_ring_cycle_too():
    # The model checks a layout independently: build the ring's model from plain data.
    from chipknit.tb.models.noc import PackageModel
    model = PackageModel({n: (2, 2, 1) for n in range(4)}, [
        ((0, 1, 0, 0), (1, 0, 0, 1)), ((0, 0, 1, 2), (2, 0, 0, 3)),
        ((1, 1, 1, 2), (3, 1, 0, 3)), ((2, 1, 1, 0), (3, 0, 1, 1))])
    assert has_cycle(model.dependency_graph(2))


# ---- routing --------------------------------------------------------------------------------

def test_die_paths_shortest_then_lowest():
    package = Package.named("four_die")
    _, model = package_model(package)
    for src in range(4):
        for dst in range(4):
            assert package.die_path(src, dst) == model.die_path(src, dst)
    assert package.die_path(0, 3) == [0, 1, 3]  # via 1, not 2: lowest die first
    assert package.die_path(3, 0) == [3, 1, 0]


@pytest.mark.parametrize("name", SHIPPED)
def test_geometry_route_matches_model(name):
    package = Package.named(name)
    fmt, model = package_model(package)
    for die in package.dies:
        geometry, model_geometry = package.geometry(die.number), model.geometry(die.number)
        for x in range(die.columns):
            for y in range(die.rows):
                for d in range(1 << fmt.die_bits):
                    for dx in range(1 << fmt.x_bits):
                        for dy in range(1 << fmt.y_bits):
                            for port in range(1 << fmt.port_bits):
                                want = xy_route(model_geometry, x, y,
                                                Dest(x=dx, y=dy, port=port, die=d))
                                assert geometry.route(x, y, d, dx, dy, port) == want


@pytest.mark.parametrize("name", ["default", "icebreaker", "four_die"])
def test_route_computer_matches_model(name):
    package = Package.named(name)
    fmt, model = package_model(package)
    rng = random.Random(5)
    for die in package.dies:
        geometry, model_geometry = package.geometry(die.number), model.geometry(die.number)
        for x in range(die.columns):
            for y in range(die.rows):
                dut = RouteComputer(package.flit, geometry, x, y)
                dests = [Dest(x=dx, y=dy, port=p, die=d) for d in range(1 << fmt.die_bits)
                         for dx in range(1 << fmt.x_bits) for dy in range(1 << fmt.y_bits)
                         for p in range(1 << fmt.port_bits)]
                if len(dests) > 200:
                    dests = rng.sample(dests, 200)

                async def bench(ctx, dut=dut, x=x, y=y, dests=dests, mg=model_geometry):
                    for dest in dests:
                        ctx.set(dut.dest, {"die": dest.die, "x": dest.x, "y": dest.y,
                                           "port": dest.port})
                        want = xy_route(mg, x, y, dest)
                        assert ctx.get(dut.routable) == (want is not None), dest
                        if want is not None:
                            assert ctx.get(dut.port) == want, (x, y, dest)

                sim = Simulator(dut)
                sim.add_testbench(bench)
                sim.run()


def test_every_cross_die_route_ends_at_its_destination():
    package = Package.named("four_die")
    _, model = package_model(package)
    for die in package.dies:
        for dest_die in package.dies:
            route = model.route((die.number, 0, 0), Dest(x=1, y=1, die=dest_die.number))
            assert route[-1] == (dest_die.number, 1, 1, 4)
            dies = [hop[0] for hop in route]
            assert list(dict.fromkeys(dies)) == package.die_path(die.number, dest_die.number)


def test_link_pipe_latency_is_validated():
    geometry = Package.named("default").geometry(1)
    with pytest.raises(ValueError, match="Latency must be a positive integer, not 0"):
        LinkPipe(Package.named("default").flit, 5, geometry, 0, 1, latency=0)


def _check_link_stage(dut, fmt, latency, expected_route, seed):
    """Drive random flits (each with a random route in) and credit pulses through a link
    stage: flits come out ``latency`` cycles later, with ``expected_route(flit value, route
    in)``; credit pulses go back ``latency`` cycles later; nothing lost, added or reordered."""
    rng = random.Random(seed)
    cycles = 200
    sent = [None] * cycles     # (flit value, route in) or None per cycle
    credits = [rng.getrandbits(2) for _ in range(cycles)]

    async def bench(ctx):
        for t in range(cycles + latency + 1):
            if t < cycles and rng.random() < 0.6:
                dest = Dest(x=rng.randrange(2), y=rng.randrange(2), die=rng.randrange(2))
                sent[t] = (fmt.encode(model_flit(fmt, dest, rng)), rng.randrange(5))
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.flit.as_value(), sent[t][0])
                ctx.set(dut.i.payload.route, sent[t][1])
            else:
                ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.credit, credits[t] if t < cycles else 0)
            back = t - latency
            want = sent[back] if 0 <= back < cycles else None
            assert ctx.get(dut.o.valid) == (want is not None), t
            if want is not None:
                assert ctx.get(dut.o.payload.flit.as_value()) == want[0], t
                assert ctx.get(dut.o.payload.route) == expected_route(*want), t
            assert ctx.get(dut.i.credit) == (credits[back] if 0 <= back < cycles else 0), t
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("latency", [1, 3])
def test_link_pipe_delays_flits_and_credits_and_recomputes_the_route(latency):
    """Flits come out ``latency`` cycles later with the receiving router's route; credit
    pulses go back ``latency`` cycles later; nothing is lost, added or reordered."""
    package = Package.named("default")
    fmt, model = package_model(package)
    dut = LinkPipe(package.flit, 5, package.geometry(1), 0, 1, latency=latency)

    def route(value, _route_in):
        dest = fmt.decode_dest(fmt.decode(value).data)
        return xy_route(model.geometry(1), 0, 1, dest)

    _check_link_stage(dut, fmt, latency, route, seed=latency)


def test_link_register_delays_flits_and_credits_by_one_cycle():
    """Flits (valid, flit and route unchanged) come out one cycle later; credit pulses go
    back one cycle later; nothing is lost, added or reordered."""
    package = Package.named("default")
    fmt, _model = package_model(package)
    _check_link_stage(LinkRegister(package.flit, 5), fmt, 1,
                      lambda _value, route_in: route_in, seed=5)


def test_package_top_registers_every_die_link_port_and_mesh_credit():
    """``PackageTop`` puts a :class:`LinkRegister` each way at both ends of the default
    package's die link, registers the credits inside both dies' meshes and the injected
    flits at each router, and has flits from a neighbour ask for their output from
    registers (no flit registers between routers: 3 cycles a hop either way); none of it
    with ``port_slices=False``."""
    from amaranth.hdl import Fragment

    def registers(top):
        network = Fragment.get(top, None).subfragments
        names, meshes = [], {}
        for fragment, name, *_ in network:
            if name == "network":
                names = [n for _f, n, *_r in fragment.subfragments if n.endswith("_register")]
                meshes = {n: f.origins[0] for f, n, *_r in fragment.subfragments
                          if isinstance(f.origins[0], Mesh)}
        return sorted(names), {n: (mesh.credit_registers, mesh.injection_registers,
                                   mesh.flit_registers, mesh.wire_requests)
                               for n, mesh in meshes.items()}

    package = Package.named("default")
    assert registers(PackageTop(package)) == ([
        "die0_1_1_east_in_register", "die0_1_1_east_out_register",
        "die1_0_1_west_in_register", "die1_0_1_west_out_register"],
        {"die0": (True, True, False, False), "die1": (True, True, False, False)})
    assert registers(PackageTop(package, port_slices=False)) == (
        [], {"die0": (False, False, False, True), "die1": (False, False, False, True)})


def test_package_top_slices_every_tile_bus():
    """With ``port_slices`` each of the three streams (request, write data, response) of
    every tile's bus goes through a :class:`RegisterSlice` to its interface: the host
    bridge's, the memory's, each NPU's control window and DMA, each counters bank; none
    without."""
    from amaranth.hdl import Fragment

    def slices(top):
        return sorted(n for _f, n, *_r in Fragment.get(top, None).subfragments
                      if n.endswith("_slice") and "_ni_" not in n and "_ti_" not in n)

    package = Package.named("default")
    buses = ["host_bus", "memory_bus", "counters0_bus", "counters1_bus"] + [
        f"{npu}_{port}" for npu in ("npu0", "npu1") for port in ("control", "dma")]
    assert slices(PackageTop(package)) == sorted(
        f"{bus}_{what}_slice" for bus in buses for what in ("request", "wdata", "response"))
    assert slices(PackageTop(package, port_slices=False)) == []


def test_package_die_link_slices_after_each_packet_guard():
    """The in-FPGA die link's bridges put a :class:`RegisterSlice` after each VC's packet
    guard (``guard_slices``), none between the link receiver and the guard."""
    from amaranth.hdl import Fragment

    from chipknit.rtl.package.top import PackageDieLink

    link = PackageDieLink(Package.named("default"), 0)
    assert [p.guard_slices for p in link.bridge_params] == [True, True]
    fragment = Fragment.get(link, None)
    bridges = {n: f for f, n, *_ in fragment.subfragments if n.startswith("bridge_")}
    assert sorted(bridges) == ["bridge_a", "bridge_b"]
    for bridge in bridges.values():
        names = sorted(n for _f, n, *_ in bridge.subfragments if "slice" in n)
        assert names == ["guard_slice_v0", "guard_slice_v1"]


def test_mesh_credit_registers_delay_credits_by_one_cycle():
    """With ``credit_registers``, a credit router (1, 0) returns for a flit from router
    (0, 0) reaches (0, 0) one cycle after it leaves; without, in the same cycle."""
    from amaranth.hdl import Fragment

    fmt = FlitFormat(data_width=16, vcs=2)
    params = MeshParams(flit=fmt, geometry=MeshGeometry(columns=2, rows=1))
    for registered in (False, True):
        fragment = Fragment.get(Mesh(params, credit_registers=registered), None)
        mesh = fragment.origins[0]
        routers = {name: f.origins[0] for f, name, *_ in fragment.subfragments}
        sent = routers["router_1_0"].link_in[Direction.WEST].credit
        received = routers["router_0_0"].link_out[Direction.EAST].credit
        trace = []

        async def bench(ctx, mesh=mesh, sent=sent, received=received, trace=trace):
            flit = mesh.inject[0][0][1]
            ctx.set(flit.payload.data, fmt.head_layout.const({"dest": {"x": 1}}).as_value())
            ctx.set(flit.payload.head, 1)
            ctx.set(flit.payload.tail, 1)
            ctx.set(flit.valid, 1)
            await ctx.tick()
            ctx.set(flit.valid, 0)
            ctx.set(mesh.eject[1][0][1].ready, 1)
            for _ in range(12):
                trace.append((ctx.get(sent), ctx.get(received)))
                await ctx.tick()

        sim = Simulator(fragment)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        sends = [t for t, (s, _r) in enumerate(trace) if s]
        arrivals = [t for t, (_s, r) in enumerate(trace) if r]
        assert sends == [sends[0]] and trace[sends[0]][0] == 0b10, trace  # one, on VC 1
        assert arrivals == [sends[0] + registered], (registered, trace)


def model_flit(fmt, dest, rng):
    from chipknit.tb.models.noc import Flit
    return Flit(head=True, tail=True, vc=rng.randrange(fmt.vcs),
                data=fmt.head_data(dest, rng.getrandbits(fmt.payload_width)))


def test_network_wants_a_package():
    with pytest.raises(TypeError, match="Expected a Package"):
        PackageNetwork("default")


def test_gateway_directions_leave_the_die():
    package = Package.named("four_die")
    for die in package.dies:
        geometry = package.geometry(die.number)
        assert {g.die for g in geometry.gateways} == {d.number for d in package.dies} - {
            die.number}
        for gateway in geometry.gateways:
            assert isinstance(gateway.direction, Direction)
            assert geometry.on_edge(gateway.x, gateway.y, gateway.direction)


# ---- cocotb ---------------------------------------------------------------------------------

def test_package_network(seed):
    result = run(BENCH, simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 3


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a cold Verilator build of 16 routers takes >10 min here
def test_package_network_four_die_soak(seed):
    """The four-die ring (16 routers, transit traffic through dies 0 and 1), more packets."""
    result = run(BENCH, simulator="verilator", seed=seed,
                 params={"package": "four_die", "link_latency": 1},
                 env={"CHIPKNIT_NOC_PACKETS": "60"})
    result.check()
