"""The memory tile on its own (Amaranth's simulator): random reads and writes under random
response backpressure against a dictionary model, for every small queue and response FIFO.

The package and interface benches run the tile with its default sizes (``queue`` 2,
``response_depth`` 4); the small ``icebreaker`` package wanted a response FIFO of 2, which
lost a beat until the response stage stopped trusting the FIFO's ``level`` (a
``SyncFIFOBuffered`` of depth 2 refuses a write in the cycle after its first).
"""

import random

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.noc.transaction import Status, TransactionParams
from chipknit.rtl.tiles.memory import MemoryParams, MemoryTile

WORDS = 32


def _requests(rng, t, count):
    """Random requests: ``(write, addr, length, tag, beats)``, ``beats`` a list of ``(data,
    strobe)`` for a write; a few run past the end or are unaligned (refused)."""
    requests = []
    for n in range(count):
        write = rng.random() < 0.5
        length = rng.randrange(4)
        word = rng.randrange(WORDS + 2 - length)     # sometimes past the end
        addr = word * t.beat_bytes + (1 if rng.random() < 0.05 else 0)
        beats = [(rng.getrandbits(t.data_width), rng.getrandbits(t.strobe_width))
                 for _ in range(length + 1)] if write else []
        requests.append((write, addr, length, n % (1 << t.tag_bits), beats))
    return requests


def _expected(t, requests):
    """The response beats, in order, as ``(write, tag, status, data, last)``."""
    memory, beats = {}, []
    for write, addr, length, tag, data in requests:
        word = addr // t.beat_bytes
        refused = addr % t.beat_bytes or word + length >= WORDS
        status = Status.TARGET_ERROR if refused else Status.OKAY
        if write:
            if not refused:
                for i, (value, strobe) in enumerate(data):
                    old = memory.get(word + i, 0)
                    for byte in range(t.beat_bytes):
                        if strobe >> byte & 1:
                            mask = 0xFF << 8 * byte
                            old = (old & ~mask) | (value & mask)
                    memory[word + i] = old
            beats.append((1, tag, status, 0, 1))
        else:
            for i in range(length + 1):
                value = 0 if refused else memory.get(word + i, 0)
                beats.append((0, tag, status, value, int(i == length)))
    return beats


def _run(params, requests, ready_rate, seed):
    """Simulate; the response beats taken and the cycle each was taken in."""
    dut = MemoryTile(params)
    bus = dut.bus
    rng = random.Random(seed)
    taken = []
    want = sum(1 if write else length + 1 for write, _, length, _, _ in requests)

    async def send_requests(ctx):
        for write, addr, length, tag, _ in requests:
            ctx.set(bus.request.payload, {"write": write, "addr": addr, "length": length,
                                          "tag": tag})
            ctx.set(bus.request.valid, 1)
            await ctx.tick().until(bus.request.ready)
        ctx.set(bus.request.valid, 0)

    async def send_data(ctx):
        for _, _, length, _, beats in requests:
            for i, (value, strobe) in enumerate(beats):
                ctx.set(bus.wdata.payload, {"data": value, "strobe": strobe,
                                            "last": i == length})
                ctx.set(bus.wdata.valid, 1)
                await ctx.tick().until(bus.wdata.ready)
        ctx.set(bus.wdata.valid, 0)

    async def take_responses(ctx):
        cycle = 0
        while len(taken) < want:
            assert cycle < 40 * want + 100, f"hang: {len(taken)} of {want} beats"
            ready = rng.random() < ready_rate
            ctx.set(bus.response.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(bus.response.valid,
                                                           bus.response.payload)
            if valid and ready:
                taken.append(((int(payload.write), int(payload.tag), Status(payload.status),
                               int(payload.data), int(payload.last)), cycle))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(send_requests, background=True)
    sim.add_testbench(send_data, background=True)
    sim.add_testbench(take_responses)
    sim.run()
    return taken


@pytest.mark.parametrize("queue,response_depth", [(1, 2), (2, 2), (2, 3), (2, 4), (3, 5)])
@pytest.mark.parametrize("ready_rate", [1.0, 0.6, 0.2])
def test_random_traffic_against_the_model(queue, response_depth, ready_rate):
    t = TransactionParams(length_bits=2, tag_bits=3)
    params = MemoryParams(t, words=WORDS, queue=queue, response_depth=response_depth)
    rng = random.Random(f"{queue}-{response_depth}-{ready_rate}")
    requests = _requests(rng, t, 60)
    taken = _run(params, requests, ready_rate, seed=rng.random())
    assert [beat for beat, _ in taken] == _expected(t, requests)


@pytest.mark.parametrize("response_depth,every", [(2, 2), (3, 1), (4, 1)])
def test_read_rate(response_depth, every):
    """A long read under no backpressure: one beat a cycle from a response FIFO of 3 up, one
    every other cycle from a FIFO of 2 (a ``SyncFIFOBuffered`` of 2 takes a beat every
    other cycle)."""
    t = TransactionParams(length_bits=4, tag_bits=1)
    params = MemoryParams(t, words=WORDS, response_depth=response_depth)
    taken = _run(params, [(0, 0, 15, 0, [])], 1.0, seed=0)
    cycles = [cycle for _, cycle in taken]
    assert len(cycles) == 16
    assert all(b - a == every for a, b in zip(cycles, cycles[1:], strict=False)), cycles
