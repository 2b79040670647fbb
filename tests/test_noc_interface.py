# amaranth: UnusedElaboratable=no
"""Network interfaces and the memory tile: the cocotb system run on a 2x2 mesh, the model's
packet encoding against the RTL layouts bit for bit, and the parameter checks."""

import random

import pytest

from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.interface import (
    AddressMap,
    InitiatorInterface,
    InitiatorParams,
    Node,
    Region,
    TargetParams,
)
from chipknit.rtl.noc.transaction import Status, TransactionParams
from chipknit.rtl.tiles.memory import MemoryParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models.noc import Dest, NocFormat
from chipknit.tb.models.transaction import (
    DECODE_ERROR,
    OKAY,
    TARGET_ERROR,
    Malformed,
    MemoryModel,
    RequestPacket,
    ResponsePacket,
    TransactionFormat,
)
from chipknit.tb.models.transaction import AddressMap as ModelAddressMap
from chipknit.tb.models.transaction import Region as ModelRegion

BENCH = get_testbench("noc_interface")


def test_system(seed):
    result = run(BENCH, simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 5


@pytest.mark.slow
def test_system_with_two_address_flits(seed):
    """40-bit addresses over 32-bit flits: the initiator sends each address in two flits
    (the only configuration with an address-flit index; the default has none)."""
    result = run(BENCH, simulator="verilator", seed=seed, params={"addr_width": 40})
    result.check()
    assert result.tests == 5


# ---- model against the RTL layouts ---------------------------------------------------------

FORMATS = [
    (TransactionParams(), TransactionFormat()),
    (TransactionParams(flit=FlitFormat(data_width=64, x_bits=2, y_bits=4, port_bits=2),
                       addr_width=40, length_bits=6, tag_bits=3),
     TransactionFormat(noc=NocFormat(data_width=64, x_bits=2, y_bits=4, port_bits=2),
                       addr_width=40, length_bits=6, tag_bits=3)),
]


@pytest.mark.parametrize("rtl,model", FORMATS, ids=["default", "64bit"])
def test_model_heads_match_rtl_layouts(rtl, model):
    rng = random.Random(5)
    assert (rtl.addr_flits, rtl.strobes_per_flit, rtl.align_bits) == \
        (model.addr_flits, model.strobes_per_flit, model.align_bits)
    noc = model.noc
    for _ in range(300):
        src = Dest(x=rng.getrandbits(noc.x_bits), y=rng.getrandbits(noc.y_bits),
                   port=rng.getrandbits(noc.port_bits), die=rng.getrandbits(noc.die_bits))
        fields = {"write": rng.getrandbits(1), "masked": rng.getrandbits(1),
                  "tag": rng.getrandbits(model.tag_bits),
                  "length": rng.getrandbits(model.length_bits)}
        const = rtl.request_head_layout.const({**fields, "src": {
            "port": src.port, "x": src.x, "y": src.y, "die": src.die}})
        bits = model.request_head(src=src, **fields)
        assert const.as_value().value == bits
        assert model.decode_request_head(bits) == {
            **{k: (bool(v) if k in ("write", "masked") else v) for k, v in fields.items()},
            "src": src}
        rfields = {"write": rng.getrandbits(1), "status": rng.randrange(4),
                   "tag": rng.getrandbits(model.tag_bits),
                   "length": rng.getrandbits(model.length_bits)}
        const = rtl.response_head_layout.const(rfields)
        assert const.as_value().value == model.response_head(**rfields)
    for write in (False, True):
        for masked in (False, True):
            for length in (0, 7, 8, 20):
                assert rtl.packet_flits(write=write, length=length, masked=masked) == \
                    model.request_flits(write=write, length=length, masked=masked)


def test_model_packets_round_trip_and_catch_malformed():
    f = TransactionFormat()
    rng = random.Random(2)
    for _ in range(100):
        length = rng.randrange(20)
        write, masked = rng.random() < 0.5, rng.random() < 0.5
        data = tuple(rng.getrandbits(32) for _ in range(length + 1)) if write else ()
        strobes = tuple(rng.getrandbits(4) if masked else 15 for _ in data)
        packet = RequestPacket(dest=Dest(1, 0, 1), src=Dest(0, 1), write=write,
                               tag=rng.getrandbits(4), addr=rng.getrandbits(20) * 4,
                               length=length, masked=masked and write, data=data,
                               strobes=strobes if write else ())
        flits = f.encode_request(packet)
        assert len(flits) == f.request_flits(write=write, length=length,
                                             masked=masked and write)
        assert f.decode_request(flits) == packet
        with pytest.raises(Malformed, match="flits where the head says"):
            f.decode_request(flits[:-1])
    response = ResponsePacket(dest=Dest(0, 1), write=False, status=OKAY, tag=3, length=2,
                              data=(1, 2, 3))
    assert f.decode_response(f.encode_response(response)) == response
    with pytest.raises(Malformed):
        f.decode_response(f.encode_response(response)[:-1])


def test_model_address_map_and_memory():
    f = TransactionFormat()
    amap = ModelAddressMap(f, (ModelRegion(0x100, 0x40, Dest(1, 0)),))
    assert amap.decode(0x100, 15) == (OKAY, Dest(1, 0), 0)
    assert amap.decode(0x104, 15)[0] == DECODE_ERROR   # runs past the region
    assert amap.decode(0x102, 0)[0] == DECODE_ERROR    # unaligned
    assert amap.decode(0x140, 0)[0] == DECODE_ERROR    # no region
    mem = MemoryModel(f, 4, init=(0x11223344,))
    assert mem.write(0, [0xAABBCCDD], [0b0101]) == OKAY
    assert mem.read(0, 0) == (OKAY, [0x11BB33DD])
    assert mem.read(4, 3) == (TARGET_ERROR, [0, 0, 0, 0])


# ---- parameters ----------------------------------------------------------------------------

def test_parameter_messages():
    t = TransactionParams()
    with pytest.raises(ValueError, match="Regions overlap"):
        AddressMap((Region(0, 0x100, Node(0, 0)), Region(0x80, 0x100, Node(1, 0))))
    with pytest.raises(ValueError, match="not aligned to 4-byte beats"):
        InitiatorParams(address_map=AddressMap((Region(2, 0x100, Node(0, 0)),)))
    with pytest.raises(ValueError, match="does not fit the flit format's x_bits"):
        InitiatorParams(node=Node(8, 0))
    with pytest.raises(ValueError, match="Timeout must be an integer of at least 4"):
        InitiatorParams(timeout=3)
    with pytest.raises(ValueError, match="Depth must be an integer of at least 1"):
        TargetParams(depth=0)
    with pytest.raises(ValueError, match="Init has 3 words but the memory only 2"):
        MemoryParams(words=2, init=(1, 2, 3))
    with pytest.raises(ValueError, match="does not fit 32 bits"):
        MemoryParams(words=2, init=(1 << 32,))
    with pytest.raises(TypeError, match="Expected InitiatorParams"):
        InitiatorInterface(t)


# ---- the request skid entry ----------------------------------------------------------------

def test_request_ready_is_registered_and_requests_stay_back_to_back():
    """``bus.request.ready`` depends on no network input in the same cycle (flipping
    ``inject.ready`` within a cycle never changes it: the skid entry decouples the tile's
    request logic from the network side), and reads to a free target still leave as one
    head + address flit pair every two cycles, no bubble between requests."""
    from amaranth.sim import Simulator

    t = TransactionParams()
    ni = InitiatorInterface(InitiatorParams(
        transaction=t, address_map=AddressMap((Region(0, 0x1000, Node(1, 0)),)), timeout=32))
    request, inject = ni.bus.request, ni.inject[0]
    stats = {"accepted": 0, "heads": 0, "checked": 0}

    async def bench(ctx):
        gen = random.Random(7)
        ctx.set(ni.bus.response.ready, 1)
        # Random traffic with random network backpressure: in every cycle, ready must read
        # the same with inject.ready low and high.
        for _ in range(600):
            ctx.set(request.valid, gen.random() < 0.8)
            ctx.set(request.payload.addr, gen.randrange(0, 0x2000, t.beat_bytes))
            ctx.set(request.payload.length, gen.randrange(4))
            ctx.set(inject.ready, 0)
            low = ctx.get(request.ready)
            ctx.set(inject.ready, 1)
            high = ctx.get(request.ready)
            assert low == high, "request.ready follows inject.ready combinationally"
            stats["checked"] += 1
            ctx.set(inject.ready, gen.random() < 0.6)
            stats["accepted"] += ctx.get(request.valid) and ctx.get(request.ready)
            await ctx.tick()
        # Back to back: 8 in-range reads (one target, so no issue restriction), the network
        # always ready; after a reset of the traffic above, by the time-out of its slots
        # (the oldest waits ``timeout`` cycles, then the next: 16 slots of 32 cycles, and
        # the last one's quarantine).
        ctx.set(request.valid, 0)
        ctx.set(inject.ready, 1)
        await ctx.tick().repeat(16 * 32 + 64)
        sent = 0
        first = None
        for cycle in range(40):
            ctx.set(request.valid, sent < 8)
            ctx.set(request.payload.addr, 4 * sent)
            ctx.set(request.payload.length, 0)
            if ctx.get(inject.valid) and ctx.get(inject.payload.head):
                stats["heads"] += 1
                first = cycle if first is None else first
                last = cycle
            sent += ctx.get(request.valid) and ctx.get(request.ready)
            await ctx.tick()
        assert stats["heads"] == 8 and last - first == 2 * 7, (stats, first, last)

    sim = Simulator(ni)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert stats["accepted"] > 30, stats


# ---- the response stage --------------------------------------------------------------------

def test_response_stage_cases():
    """The initiator's response side driven flit by flit (Amaranth simulator): responses
    stream with no bubble between packets; one arriving out of order waits at the port
    until the oldest times out, and the oldest's response behind it is then late; a
    timed-out request gets TIMEOUT, its response in quarantine counts as ``late``, and a
    second copy right behind it (its slot no longer awaited) as ``malformed``; a response
    after the quarantine, or one whose length disagrees, counts as ``malformed`` and is
    never handed to the tile."""
    from amaranth.sim import Simulator

    from chipknit.tb.models.noc import Dest

    t = TransactionParams()
    f = TransactionFormat()
    timeout = 16
    ni = InitiatorInterface(InitiatorParams(
        transaction=t, address_map=AddressMap((Region(0, 0x1000, Node(1, 0)),)),
        timeout=timeout))
    request, response, eject = ni.bus.request, ni.bus.response, ni.eject[1]
    me = Dest(0, 0)
    to_send = []          # response flits queued for the NI's eject port
    beats = []            # (cycle, tag, status, data, last) as the tile takes them
    counters = {}

    def answer(tag, length, *, status=OKAY, write=False, data=None):
        data = tuple(data if data is not None else (tag * 100 + i for i in range(length + 1)))
        to_send.extend(f.encode_response(ResponsePacket(
            dest=me, write=write, status=status, tag=tag, length=length,
            data=data if status == OKAY and not write else ())))

    async def bench(ctx):
        cycle = 0
        ctx.set(ni.inject[0].ready, 1)
        ctx.set(response.ready, 1)

        async def step():
            nonlocal cycle
            ctx.set(eject.valid, bool(to_send))
            if to_send:
                ctx.set(eject.payload.as_value(), to_send[0])
            taken = to_send and ctx.get(eject.ready)
            if ctx.get(response.valid):
                beats.append((cycle, ctx.get(response.payload.tag),
                              ctx.get(response.payload.status),
                              ctx.get(response.payload.data), ctx.get(response.payload.last)))
            await ctx.tick()
            cycle += 1
            if taken:
                to_send.pop(0)

        async def issue(tag, length):
            ctx.set(request.valid, 1)
            ctx.set(request.payload.addr, 4 * tag)
            ctx.set(request.payload.length, length)
            ctx.set(request.payload.tag, tag)
            while not ctx.get(request.ready):
                await step()
            await step()
            ctx.set(request.valid, 0)

        async def idle(cycles):
            for _ in range(cycles):
                await step()

        # 1. Three 4-beat reads (slots 0-2), answered back to back: 15 flits (a head and
        #    4 beats each) taken in 15 cycles, so the 12 beats span 14.
        for slot in range(3):
            await issue(slot, 3)
        await idle(12)
        for slot in range(3):
            answer(slot, 3)
        await idle(20)
        cycles = [b[0] for b in beats]
        assert len(beats) == 12 and cycles[-1] - cycles[0] == 13, beats
        assert [(b[1], b[3]) for b in beats] == [(s, s * 100 + i)
                                                 for s in range(3) for i in range(4)]
        beats.clear()
        # 2. Out of order (slots 3, 4): the younger's response waits at the port for the
        #    older's; that one never passes it, so the older times out, then the younger is
        #    delivered and the older's response, now in quarantine, counts as late.
        await issue(3, 0)
        await issue(4, 0)
        await idle(6)        # both requests have left
        answer(4, 0)
        answer(3, 0)
        await idle(timeout + 12)
        assert [(b[1], b[2], b[3]) for b in beats] == [(3, Status.TIMEOUT, 0),
                                                       (4, Status.OKAY, 400)], beats
        assert not to_send
        beats.clear()
        # 3. Slot 5 times out; its response in quarantine is late, a second copy right
        #    behind it malformed (the first cleared the slot). 4. One past the quarantine:
        #    malformed. Nothing reaches the tile but the TIMEOUT.
        await issue(5, 1)
        await idle(timeout + 12)
        assert [(b[1], b[2]) for b in beats] == [(5, Status.TIMEOUT)] * 2, beats
        answer(5, 0, status=TARGET_ERROR)
        answer(5, 0, status=TARGET_ERROR)
        await idle(3 * timeout)
        answer(5, 1)
        await idle(10)
        # 5. Slot 6 answered with the wrong length: malformed, then TIMEOUT.
        await issue(6, 1)
        await idle(4)
        answer(6, 2)
        await idle(timeout + 16)
        assert [(b[1], b[2]) for b in beats] == [(5, Status.TIMEOUT)] * 2 \
            + [(6, Status.TIMEOUT)] * 2, beats
        for name in ("late", "malformed", "timeouts", "decode_errors"):
            counters[name] = ctx.get(getattr(ni, name))

    sim = Simulator(ni)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert counters == {"late": 2, "malformed": 3, "timeouts": 3, "decode_errors": 0}, \
        counters


def test_slots_run_out_and_requests_wait():
    """Every slot in use (here by refused requests whose DECODE_ERROR the tile does not
    take yet): the NI takes ``2 ** tag_bits`` requests into slots and two more into its
    command stage and skid entry, then holds ``request.ready`` low; once the tile takes
    responses, they come back in order, one per request, and the waiting requests go on."""
    from amaranth.sim import Simulator

    t = TransactionParams()
    slots = 1 << t.tag_bits
    ni = InitiatorInterface(InitiatorParams(
        transaction=t, address_map=AddressMap((Region(0, 0x1000, Node(1, 0)),)), timeout=32))
    request, response = ni.bus.request, ni.bus.response
    taken, delivered = [], []

    async def bench(ctx):
        ctx.set(ni.inject[0].ready, 1)
        ctx.set(response.ready, 0)
        ctx.set(request.valid, 1)
        for cycle in range(200):
            if cycle == 120:
                ctx.set(response.ready, 1)
            tag = len(taken) % slots
            ctx.set(request.payload.addr, 0x4000 + 4 * len(taken))   # outside every region
            ctx.set(request.payload.tag, tag)
            ctx.set(request.payload.length, 0)
            ctx.set(request.valid, len(taken) < slots + 4)
            if cycle == 110:
                assert len(taken) == slots + 2, taken
                assert not ctx.get(request.ready)
            if ctx.get(request.valid) and ctx.get(request.ready):
                taken.append(tag)
            if ctx.get(response.valid) and ctx.get(response.ready):
                delivered.append((ctx.get(response.payload.tag), ctx.get(response.payload.status)))
            await ctx.tick()

    sim = Simulator(ni)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(taken) == slots + 4
    assert delivered == [(tag, Status.DECODE_ERROR) for tag in taken], delivered


def test_target_holds_at_most_depth_requests():
    """A target that takes requests but does not answer: the target interface hands it
    exactly ``depth`` requests, then holds its eject port; once the target answers, every
    request gets its response, in order, and the rest go through."""
    from amaranth.sim import Simulator

    from chipknit.rtl.noc.interface import TargetInterface

    t = TransactionParams()
    f = TransactionFormat()
    depth = 3
    ni = TargetInterface(TargetParams(transaction=t, depth=depth))
    eject, inject, target = ni.eject[0], ni.inject[1], ni.target
    requests = 2 * depth + 2
    to_send = []
    for tag in range(requests):
        to_send.extend(f.encode_request(RequestPacket(
            dest=Dest(0, 0), src=Dest(1, 0), write=False, tag=tag, addr=4 * tag, length=0)))
    taken, flits = [], []

    async def bench(ctx):
        ctx.set(inject.ready, 1)
        ctx.set(target.request.ready, 1)
        answered = 0
        for cycle in range(300):
            ctx.set(eject.valid, bool(to_send))
            if to_send:
                ctx.set(eject.payload.as_value(), to_send[0])
            answering = cycle >= 100 and answered < len(taken)
            ctx.set(target.response.valid, answering)
            if answering:
                ctx.set(target.response.payload.tag, taken[answered])
                ctx.set(target.response.payload.data, 1000 + taken[answered])
                ctx.set(target.response.payload.last, 1)
            if cycle == 99:
                assert len(taken) == depth, taken
                assert not ctx.get(eject.ready) and to_send
            sent = to_send and ctx.get(eject.ready)
            if ctx.get(target.request.valid) and ctx.get(target.request.ready):
                taken.append(ctx.get(target.request.payload.tag))
            if answering and ctx.get(target.response.ready):
                answered += 1
            if ctx.get(inject.valid) and ctx.get(inject.ready):
                flits.append(ctx.get(inject.payload.as_value()))
            await ctx.tick()
            if sent:
                to_send.pop(0)

    sim = Simulator(ni)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert taken == list(range(requests))
    packets = []
    while flits:
        packets.append(f.decode_response(flits[:2]))
        flits = flits[2:]
    assert [(p.tag, p.status, p.data) for p in packets] == \
        [(tag, OKAY, (1000 + tag,)) for tag in range(requests)]
