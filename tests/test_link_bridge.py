# amaranth: UnusedElaboratable=no
"""The NoC ↔ link bridge: unit runs against the Python model (Amaranth simulator), the
two-die cocotb bench (Verilator), parameters, and the bridge on the FPGAs (slow)."""

import random

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.link.frame import LinkParams
from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.link_bridge import (
    LinkBridge,
    LinkBridgeParams,
    link_flit_width,
)
from chipknit.rtl.noc.route import MeshGeometry, RouteComputer
from chipknit.tb.models.link_bridge import BridgeModel, from_link, to_link
from chipknit.tb.models.noc import Dest, Flit, Geometry, NocFormat, xy_route

FMT = FlitFormat(data_width=30)
MODEL_FMT = NocFormat(data_width=30)
GEOMETRY = MeshGeometry(columns=2, rows=1)
MODEL_GEOMETRY = Geometry(columns=2, rows=1)


def _bridge(depth=4, vcs=2, x=1, guard_slices=False, tail_guards=True, out_depth=None):
    fmt = FlitFormat(data_width=30, vcs=vcs)
    params = LinkBridgeParams(flit=fmt, link=LinkParams(flit_width=32, vcs=vcs),
                              ports=GEOMETRY.ports, depth=depth, guard_slices=guard_slices,
                              tail_guards=tail_guards, out_depth=out_depth)
    return LinkBridge(params, lambda: RouteComputer(fmt, GEOMETRY, x, 0))


# ---- parameters ---------------------------------------------------------------------------

def test_link_flit_width_rounds_up_to_beats():
    assert link_flit_width(FlitFormat(data_width=30), 16) == 32
    assert link_flit_width(FlitFormat(data_width=32), 16) == 48
    assert link_flit_width(FlitFormat(data_width=62), 16) == 64
    params = LinkBridgeParams(flit=FlitFormat(data_width=32), link=LinkParams(flit_width=48))
    assert params.mapping_efficiency == pytest.approx(34 / 48)


@pytest.mark.parametrize("kwargs,message", [
    ({"link": LinkParams(flit_width=32, vcs=3)}, "The link has 3 VCs but the NoC has 2"),
    ({"flit": FlitFormat(data_width=32)}, "Link flit width 32 cannot hold a NoC flit "
     r"\(34 bits: head, tail, 32 data\); use 48"),
    ({"depth": 0}, "Depth must be an integer of at least 1, not 0"),
    ({"out_depth": 0}, "Outbound depth must be an integer of at least 1, not 0"),
    ({"ports": 1}, "Ports must be an integer of at least 2, not 1"),
    ({"counter_width": True}, "Counter width must be an integer of at least 1, not True"),
    ({"tail_guards": 0}, "tail_guards must be True or False, not 0"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinkBridgeParams(**kwargs)


def test_route_computer_must_be_a_factory():
    with pytest.raises(TypeError, match="Route computer must be a callable"):
        LinkBridge(LinkBridgeParams(), RouteComputer(FMT, GEOMETRY, 0, 0))


# ---- inbound: link → router against the model --------------------------------------------

def _random_link_stream(rng, vc, packets, cut_rate=0.1):
    """Link flits for one VC: packets, some unroutable, with framing errors mixed in (and
    packets whose tail is missing, at ``cut_rate``)."""
    flits = []
    for _ in range(packets):
        kind = rng.random()
        if kind < 0.08:       # orphan body/tail
            flits.append(to_link(MODEL_FMT, MODEL_FMT.encode(Flit(
                head=False, tail=rng.random() < 0.5, vc=vc, data=rng.getrandbits(30))))[1])
            continue
        dest = Dest(x=rng.randrange(2), y=0)
        if kind < 0.16:
            dest = rng.choice([Dest(x=2, y=0), Dest(x=0, y=1), Dest(x=1, y=0, die=1)])
        length = rng.randint(1, 5)
        cut = length > 1 and rng.random() < cut_rate   # tail missing: next head inside
        payload = rng.getrandbits(MODEL_FMT.payload_width)
        for index in range(length - cut):
            head = index == 0
            data = MODEL_FMT.head_data(dest, payload) if head else rng.getrandbits(30)
            flits.append(to_link(MODEL_FMT, MODEL_FMT.encode(Flit(
                head=head, tail=index == length - 1, vc=vc, data=data)))[1])
    return flits


def _route(dest):
    return xy_route(MODEL_GEOMETRY, 1, 0, dest)


@pytest.mark.parametrize("guard_slices,tail_guards", [(False, True), (True, True),
                                                     (False, False)],
                         ids=["plain", "guard-slices", "no-tail-guards"])
@pytest.mark.parametrize("seed_", [1, 2])
def test_inbound_matches_model_with_framing_errors_and_peer_resets(seed_, guard_slices,
                                                                   tail_guards):
    """Random link traffic with orphans, unroutable and cut packets, random link pauses,
    random router credit returns and peer resets: what the router sees, per VC, equals the
    model; the bridge never sends without a credit; counters equal the model's. Without
    tail guards, for a link that cannot be cut: no cut packets and no peer resets, the
    rest the same."""
    rng = random.Random(seed_)
    depth, vcs = 3, 2
    dut = _bridge(depth=depth, guard_slices=guard_slices, tail_guards=tail_guards)
    model = BridgeModel(MODEL_FMT, _route)
    streams = [_random_link_stream(rng, vc, 60, cut_rate=0.1 if tail_guards else 0)
               for vc in range(vcs)]
    got = [[] for _ in range(vcs)]

    async def bench(ctx):
        queues = [list(s) for s in streams]
        held = [0] * vcs          # entries the modelled router buffer holds
        credit_next = 0
        cycles = 0
        idle_cycles = 0
        while idle_cycles < 40:
            cycles += 1
            assert cycles < 20000, "inbound did not drain"
            reset_now = tail_guards and rng.random() < 0.01
            ctx.set(dut.peer_reset, reset_now)
            for vc in range(vcs):
                offer = bool(queues[vc]) and rng.random() < 0.7
                ctx.set(dut.from_link[vc].valid, offer)
                ctx.set(dut.from_link[vc].payload, queues[vc][0] if queues[vc] else 0)
            ctx.set(dut.noc_out.credit, credit_next)
            taken = []
            for vc in range(vcs):
                if ctx.get(dut.from_link[vc].valid) and ctx.get(dut.from_link[vc].ready):
                    taken.append(vc)
            if ctx.get(dut.noc_out.valid):
                value = ctx.get(dut.noc_out.payload.flit.as_value())
                vc = MODEL_FMT.decode(value).vc
                got[vc].append((value, ctx.get(dut.noc_out.payload.route)))
                held[vc] += 1
                assert held[vc] <= depth, f"VC {vc}: sent without a credit"
            credit_next = 0
            for vc in range(vcs):
                if held[vc] and rng.random() < 0.5:
                    held[vc] -= 1
                    credit_next |= 1 << vc
            # The model sees this cycle's events in the order the hardware applies them.
            for vc in taken:
                model.receive(vc, queues[vc].pop(0))
            if reset_now:
                model.peer_reset()
            busy = any(queues) or ctx.get(dut.noc_out.valid)
            idle_cycles = 0 if busy else idle_cycles + 1
            await ctx.tick()
        for vc in range(vcs):
            for name, counts in model.counters.items():
                assert ctx.get(getattr(dut.status, name)[vc]) == counts[vc], (name, vc)
            assert ctx.get(dut.status.flits_in[vc]) == len(streams[vc])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for vc in range(vcs):
        assert got[vc] == model.out[vc], f"VC {vc}: router saw something else than the model"
    assert sum(sum(c) for c in model.counters.values()) > 10   # errors were exercised
    truncated = model.counters["truncated"][0] + model.counters["truncated"][1]
    assert truncated > 0 if tail_guards else truncated == 0


def test_inbound_stalled_vc_does_not_block_the_other():
    """VC 1's credits never come back: VC 0 still delivers every flit at full rate."""
    dut = _bridge(depth=2)
    flits = [to_link(MODEL_FMT, MODEL_FMT.encode(Flit(
        head=True, tail=True, vc=vc, data=MODEL_FMT.head_data(Dest(x=1, y=0), n))))[1]
        for n in range(40) for vc in range(2)]
    sent = {0: 0, 1: 0}

    async def bench(ctx):
        queues = {0: flits[0::2], 1: flits[1::2]}
        credit_next = 0
        for _ in range(100):
            for vc in range(2):
                ctx.set(dut.from_link[vc].valid, bool(queues[vc]))
                ctx.set(dut.from_link[vc].payload, queues[vc][0] if queues[vc] else 0)
            ctx.set(dut.noc_out.credit, credit_next)
            for vc in range(2):
                if ctx.get(dut.from_link[vc].valid) and ctx.get(dut.from_link[vc].ready):
                    queues[vc].pop(0)
            credit_next = 0
            if ctx.get(dut.noc_out.valid):
                vc = ctx.get(dut.noc_out.payload.flit.vc)
                sent[vc] += 1
                credit_next = 1 if vc == 0 else 0   # only VC 0's buffer drains
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sent[1] == 2, f"VC 1 sent {sent[1]} flits on 2 credits"
    assert sent[0] == 40, f"VC 0 sent {sent[0]} of 40 flits behind a stalled VC 1"


# ---- outbound: router → link --------------------------------------------------------------

async def _outbound_cycle(ctx, dut, rng, pending, credits, depth, got, *, reset_rate,
                          ready_rate, discard=False):
    """One cycle of router traffic into the bridge's outbound side: a random peer reset,
    random link readiness per VC, and the next pending flit of a VC with a credit offered
    (80 % of the time). Flits handed to the link are appended to ``got[vc]`` (never during
    a peer reset or while ``discard``); credits coming back are counted into ``credits``.
    Returns the flit offered as ``(vc, flit)``, or None."""
    vcs = len(pending)
    reset_now = rng.random() < reset_rate
    ctx.set(dut.peer_reset, reset_now)
    ready = [rng.random() < ready_rate for _ in range(vcs)]
    for vc in range(vcs):
        ctx.set(dut.to_link[vc].ready, ready[vc])
    offered = None
    can = [vc for vc in range(vcs) if pending[vc] and credits[vc]]
    if can and rng.random() < 0.8:
        vc = rng.choice(can)
        offered = vc, pending[vc].pop(0)
        credits[vc] -= 1
        ctx.set(dut.noc_in.valid, 1)
        ctx.set(dut.noc_in.payload.flit.as_value(), offered[1])
    else:
        ctx.set(dut.noc_in.valid, 0)
    for vc in range(vcs):
        if ctx.get(dut.to_link[vc].valid) and ready[vc]:
            assert not reset_now, "a flit was handed to the link during a peer reset"
            assert not discard, "a flit was handed to the link while discarding"
            got[vc].append(ctx.get(dut.to_link[vc].payload))
    returned = ctx.get(dut.noc_in.credit)
    for vc in range(vcs):
        if returned >> vc & 1:
            credits[vc] += 1
            assert credits[vc] <= depth, f"VC {vc}: more credits back than flits"
    await ctx.tick()
    return offered


@pytest.mark.parametrize("out_depth", [None, 1], ids=["depth", "one"])
def test_outbound_packs_flits_and_returns_credits(out_depth):
    """Flits from the router on random VCs (on credit), random link backpressure and peer
    resets: each VC's link stream carries the packed flits in order; one credit per flit
    handed over; nothing handed over during a peer reset. Also with a one-flit outbound
    buffer (``out_depth``), the router then starting with one credit."""
    rng = random.Random(3)
    vcs = 2
    dut = _bridge(depth=4, x=0, out_depth=out_depth)
    depth = out_depth or 4
    want = [[] for _ in range(vcs)]
    got = [[] for _ in range(vcs)]

    async def bench(ctx):
        credits = [depth] * vcs
        pending = [[] for _ in range(vcs)]
        for _ in range(300):
            vc = rng.randrange(vcs)
            flit = MODEL_FMT.encode(Flit(head=rng.random() < 0.5, tail=rng.random() < 0.5,
                                         vc=vc, data=rng.getrandbits(30)))
            pending[vc].append(flit)
        for _ in range(3000):
            offered = await _outbound_cycle(ctx, dut, rng, pending, credits, depth, got,
                                            reset_rate=0.05, ready_rate=0.4)
            if offered is not None:
                want[offered[0]].append(offered[1])
        assert not any(pending), "the router's flits were not all taken"
        for vc in range(vcs):
            assert ctx.get(dut.status.flits_out[vc]) == len(want[vc])
            assert credits[vc] == depth

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for vc in range(vcs):
        assert [from_link(MODEL_FMT, vc, f) for f in got[vc]] == want[vc], (
            f"VC {vc}: the link stream does not carry the router's flits in order")


@pytest.mark.parametrize("seed_", [1, 2, 3])
def test_outbound_discards_whole_packets_while_the_link_cannot_train(seed_):
    """Packets from the router on random VCs, random link backpressure, peer resets and
    random ``discard`` windows: per VC the link carries the router's flits in order with
    some left out, and what is left out is counted in ``discarded``; nothing is handed over
    while discarding; every credit comes back (so the router never wedges); a packet whose
    head was discarded is discarded to its tail, so every packet on the link starts with its
    head."""
    rng = random.Random(seed_)
    depth, vcs = 4, 2
    dut = _bridge(depth=depth, x=0)
    packets = [[] for _ in range(vcs)]     # per VC: lists of flits (unique data)
    for vc in range(vcs):
        for number in range(60):
            length = rng.randint(1, 5)
            packets[vc].append([MODEL_FMT.encode(Flit(
                head=i == 0, tail=i == length - 1, vc=vc, data=(number << 3) | i))
                for i in range(length)])
    handed = [[] for _ in range(vcs)]      # link flits as the bridge handed them over
    got = [[] for _ in range(vcs)]         # ... as the NoC flits they stand for
    discarding = []                         # per cycle: discard was high

    async def bench(ctx):
        credits = [depth] * vcs
        pending = [[f for packet in packets[vc] for f in packet] for vc in range(vcs)]
        discard = 0
        for cycle in range(6000):
            if rng.random() < 0.01:
                discard ^= 1
            if cycle > 5000:
                discard = 0
            ctx.set(dut.discard, discard)
            discarding.append(discard)
            await _outbound_cycle(ctx, dut, rng, pending, credits, depth, handed,
                                  reset_rate=0.03, ready_rate=0.5, discard=discard)
        for vc in range(vcs):
            got[vc] = [from_link(MODEL_FMT, vc, f) for f in handed[vc]]
        assert not any(pending), "the router's flits were not all taken"
        for vc in range(vcs):
            assert credits[vc] == depth, f"VC {vc}: credits not all returned"
            sent = sum(len(packet) for packet in packets[vc])
            assert ctx.get(dut.status.flits_out[vc]) == len(got[vc])
            assert ctx.get(dut.status.discarded[vc]) == sent - len(got[vc]), vc
            dut_discarded[vc] = sent - len(got[vc])

    dut_discarded = [0] * vcs
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert any(discarding) and not all(discarding)
    for vc in range(vcs):
        flits = [f for packet in packets[vc] for f in packet]
        position = 0
        for flit in got[vc]:       # in order, a subsequence of what the router sent
            while position < len(flits) and flits[position] != flit:
                position += 1
            assert position < len(flits), f"VC {vc}: {flit} out of order or never sent"
            position += 1
        on_link = {(MODEL_FMT.decode(f).data >> 3, MODEL_FMT.decode(f).data & 7)
                   for f in got[vc]}
        whole = 0
        for number, packet in enumerate(packets[vc]):
            delivered = [i for i in range(len(packet)) if (number, i) in on_link]
            # What went out of a packet is a prefix of it: never a body without its head.
            assert delivered == list(range(len(delivered))), (vc, number, delivered)
            whole += len(delivered) == len(packet)
        assert dut_discarded[vc] > 0 and whole > 0, (vc, dut_discarded[vc], whole)


# ---- two dies across the link (cocotb, Verilator) ----------------------------------------

def test_cross_link(seed):
    from chipknit.tb.benches import get_testbench
    from chipknit.tb.harness import run
    result = run(get_testbench("noc_cross_link"), simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 6


# ---- one bridge on the FPGAs (slow) ------------------------------------------------------

def fpga_bridge():
    """The bridge measured on the FPGAs: 30-bit NoC data in 32-bit link flits, 2 VCs x 4,
    feeding router (3, 1) of a 4x4 mesh (an east edge router)."""
    fmt = FlitFormat(data_width=30)
    params = LinkBridgeParams(flit=fmt, link=LinkParams(flit_width=32), ports=5, depth=4)
    return LinkBridge(params, lambda: RouteComputer(fmt, MeshGeometry(4, 4), 3, 1))


@pytest.mark.slow
@pytest.mark.parametrize("board", ["ulx3s", "icebreaker"])
def test_bridge_on_fpga(board, tmp_path):
    """Place one isolated bridge; prints LUTs, FFs and Fmax (`pytest -m slow -s -k fpga`)."""
    import json

    from chipknit.platforms.build import build
    from chipknit.platforms.isolate import IsolatedComponent
    report = build(board, top=IsolatedComponent(fpga_bridge()), seed=1, progress=None,
                   build_dir=tmp_path).report
    figures = {key: report[key] for key in ("device", "luts", "ffs", "fmax_mhz", "seed")}
    figures["logic_levels"] = report["critical_paths"]["sync"]["logic_levels"]
    print(json.dumps({board: figures}))
    assert report["luts"] > 0 and report["fmax_mhz"]["sync"] > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the cold Verilator build of two meshes and a link: ~10+ min
def test_package_network_over_bridged_die_links(seed):
    """The default package's NoC with its die link made of bridges and link adapters."""
    from chipknit.tb.harness import Testbench, run
    from chipknit.tb.tests.noc_package_bridged import package_bridged_top
    bench = Testbench(name="noc_package_bridged", top=package_bridged_top,
                      module="chipknit.tb.tests.noc_package_bridged",
                      params={"package": "default", "latency": 2, "frame_flits": 4,
                              "rx_credits": 8, "replay_timeout": 128})
    result = run(bench, simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 1
