"""cocotb tests of the network interfaces and the memory tile on a 2x2 mesh.

The design (:func:`ni_system_top`, two local ports per router)::

    (0,1) p0 raw port (the test)     p1 initiator I2  | (1,1) p0 memory M1 (own reset) p1 empty
    (0,0) p0 initiator I0            p1 memory M0     | (1,0) p0 initiator I1           p1 empty

Every initiator has the same address map (:func:`address_map`): M0 behind a region twice its
size (the upper half is out of the tile's range), M1, an empty port (requests vanish), an
unroutable node, the raw port, and initiator I1's port (requests to a node with no target).

Scoreboard: :class:`~chipknit.tb.models.transaction.MemoryModel` per memory tile; each
initiator owns a slice of every memory (so the order between initiators does not matter)
and reads a shared, read-only area loaded from ``init``. Every response beat is checked
against the model, exactly once, in order, status included.
"""

import random
from collections import deque

import cocotb
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles
from cocotb.utils import get_sim_time

from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.interface import (
    AddressMap,
    InitiatorInterface,
    InitiatorParams,
    Node,
    Region,
    TargetInterface,
    TargetParams,
)
from chipknit.rtl.noc.mesh import Mesh, MeshParams
from chipknit.rtl.noc.route import MeshGeometry
from chipknit.rtl.noc.transaction import InitiatorSignature, TransactionParams
from chipknit.rtl.tiles.memory import MemoryParams, MemoryTile
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.noc import Dest, NocFormat
from chipknit.tb.models.transaction import (
    DECODE_ERROR,
    OKAY,
    STATUS_NAMES,
    TARGET_ERROR,
    TIMEOUT,
    MemoryModel,
    RequestPacket,
    ResponsePacket,
    TransactionFormat,
)
from chipknit.tb.models.transaction import AddressMap as ModelAddressMap
from chipknit.tb.models.transaction import (
    Region as ModelRegion,
)
from chipknit.tb.stream import StreamSink, StreamSource, burst_pauses, random_pauses

TIMEOUT_US = 20000

INITIATORS = {0: Node(0, 0, 0), 1: Node(1, 0, 0), 2: Node(0, 1, 1)}
MEMORIES = {0: Node(0, 0, 1), 1: Node(1, 1, 0)}
RAW = Node(0, 1, 0)
EMPTY = (Node(1, 1, 1), Node(1, 0, 1))
UNROUTABLE = Node(3, 0, 0)

BASE_M0, BASE_M1, BASE_EMPTY, BASE_UNROUTABLE, BASE_RAW, BASE_INITIATOR = (
    0x0000, 0x4000, 0x8000, 0x9000, 0xA000, 0xB000)


def _init_word(i, data_width):
    return (i * 0x9E3779B1 + 0x1234567) & ((1 << data_width) - 1)


def address_map(words, beat_bytes):
    size = words * beat_bytes
    return [(BASE_M0, 2 * size, MEMORIES[0]), (BASE_M1, size, MEMORIES[1]),
            (BASE_EMPTY, 0x100, EMPTY[0]), (BASE_UNROUTABLE, 0x100, UNROUTABLE),
            (BASE_RAW, 0x1000, RAW), (BASE_INITIATOR, 0x100, INITIATORS[1])]


class NiSystem(wiring.Component):
    """Initiators, target interfaces and memory tiles on a 2x2 mesh (see the module doc).

    Members
    -------
    ini : In(InitiatorSignature).array(3)
        The initiators' tile ports (the test plays the tiles).
    raw_inject, raw_eject : the raw port's streams, per VC
    target_rst : In(1)
        Resets memory M1 and its target interface (not the mesh).
    ini_<counter>, tgt_<counter>, mem_errors, mesh_<counter> : counters
    """

    def __init__(self, transaction, words, timeout, depth, counter_width=16):
        self.transaction, self.words, self.timeout = transaction, words, timeout
        self.depth = depth
        fmt = transaction.flit
        flit_stream = stream.Signature(fmt.layout)
        members = {
            "ini": In(InitiatorSignature(transaction)).array(len(INITIATORS)),
            "raw_inject": In(flit_stream).array(fmt.vcs),
            "raw_eject": Out(flit_stream).array(fmt.vcs),
            "target_rst": In(1),
        }
        for name in InitiatorInterface.COUNTERS:
            members[f"ini_{name}"] = Out(counter_width).array(len(INITIATORS))
        for name in TargetInterface.COUNTERS:
            members[f"tgt_{name}"] = Out(counter_width).array(len(MEMORIES))
        members["mem_errors"] = Out(counter_width).array(len(MEMORIES))
        members["mesh_unroutable"] = Out(counter_width).array(4)
        members["mesh_malformed"] = Out(counter_width).array(4)
        super().__init__(members)

    def elaborate(self, platform):
        from amaranth.hdl import ResetInserter
        m = Module()
        t = self.transaction
        fmt = t.flit
        geometry = MeshGeometry(columns=2, rows=2, local_ports=2)
        m.submodules.mesh = mesh = Mesh(MeshParams(flit=fmt, geometry=geometry, depth=4))
        amap = AddressMap(tuple(Region(base, size, node)
                                for base, size, node in address_map(self.words,
                                                                    t.beat_bytes)))

        def port(node, v):
            return mesh.inject[node.y * 2 + node.x][node.port][v], \
                mesh.eject[node.y * 2 + node.x][node.port][v]

        for n, node in INITIATORS.items():
            ni = m.submodules[f"initiator{n}"] = InitiatorInterface(InitiatorParams(
                transaction=t, node=node, address_map=amap, timeout=self.timeout))
            wiring.connect(m, wiring.flipped(self.ini[n]), ni.bus)
            for v in range(fmt.vcs):
                inject, eject = port(node, v)
                wiring.connect(m, ni.inject[v], inject)
                wiring.connect(m, eject, ni.eject[v])
            for name in InitiatorInterface.COUNTERS:
                m.d.comb += getattr(self, f"ini_{name}")[n].eq(getattr(ni, name))
        init = tuple(_init_word(i, t.data_width) for i in range(self.words))
        for n, node in MEMORIES.items():
            ni = TargetInterface(TargetParams(transaction=t, depth=self.depth))
            mem = MemoryTile(MemoryParams(transaction=t, words=self.words, init=init))
            if n == 1:
                m.submodules[f"target{n}"] = ResetInserter(self.target_rst)(ni)
                m.submodules[f"memory{n}"] = ResetInserter(self.target_rst)(mem)
            else:
                m.submodules[f"target{n}"] = ni
                m.submodules[f"memory{n}"] = mem
            wiring.connect(m, ni.target, mem.bus)
            for v in range(fmt.vcs):
                inject, eject = port(node, v)
                wiring.connect(m, ni.inject[v], inject)
                wiring.connect(m, eject, ni.eject[v])
            for name in TargetInterface.COUNTERS:
                m.d.comb += getattr(self, f"tgt_{name}")[n].eq(getattr(ni, name))
            m.d.comb += self.mem_errors[n].eq(mem.errors)
        for v in range(fmt.vcs):
            inject, eject = port(RAW, v)
            wiring.connect(m, wiring.flipped(self.raw_inject[v]), inject)
            wiring.connect(m, eject, wiring.flipped(self.raw_eject[v]))
            for node in EMPTY:  # nothing there: take whatever comes, send nothing
                inject, eject = port(node, v)
                m.d.comb += [eject.ready.eq(1), inject.valid.eq(0)]
        for n in range(4):
            m.d.comb += [self.mesh_unroutable[n].eq(mesh.unroutable[n]),
                         self.mesh_malformed[n].eq(mesh.malformed[n])]
        return m


def ni_system_top(data_width=32, addr_width=32, length_bits=8, tag_bits=4, words=256,
                  timeout=300, depth=4):
    transaction = TransactionParams(flit=FlitFormat(data_width=data_width),
                                    addr_width=addr_width, length_bits=length_bits,
                                    tag_bits=tag_bits)
    return NiSystem(transaction, words, timeout, depth)


# ---- Test side ---------------------------------------------------------------------------

def model_format(params) -> TransactionFormat:
    return TransactionFormat(noc=NocFormat(data_width=params["data_width"]),
                             addr_width=params["addr_width"],
                             length_bits=params["length_bits"], tag_bits=params["tag_bits"])


def _dest(node):
    return Dest(x=node.x, y=node.y, port=node.port, die=node.die)


class Fields:
    """Pack/unpack of the tile-side stream payloads (StructLayout order, LSB first)."""

    def __init__(self, fmt: TransactionFormat):
        self.fmt = fmt

    def request(self, write, addr, length, tag):
        f = self.fmt
        return (int(write) | addr << 1 | length << (1 + f.addr_width)
                | tag << (1 + f.addr_width + f.length_bits))

    def wdata(self, data, strobe, last):
        f = self.fmt
        return data | strobe << f.data_width | int(last) << (f.data_width + f.strobe_width)

    def response(self, value):
        f = self.fmt
        write = value & 1
        value >>= 1
        tag = value & ((1 << f.tag_bits) - 1)
        value >>= f.tag_bits
        status = value & 3
        value >>= 2
        data = value & ((1 << f.data_width) - 1)
        last = value >> f.data_width & 1
        return bool(write), tag, status, data, bool(last)


_MEMORIES = {}  # the memory models live as long as the simulation (RAM has no reset)


class Bench:
    """Drivers and scoreboard. Create with ``await Bench.start(dut)``: it resets the design
    before the drivers start, so nothing left from an earlier test reaches them."""

    @classmethod
    async def start(cls, dut, **kwargs):
        bench = cls(dut, **kwargs)
        await reset(dut)
        bench.start_drivers()
        return bench

    def __init__(self, dut, *, backpressure=True):
        self.dut = dut
        self.params = params = design_params()
        self.fmt = model_format(params)
        self.fields = Fields(self.fmt)
        self.rng = random.Random(random.getrandbits(32))
        self.words = params["words"]
        self.timeout = params["timeout"]
        init = [_init_word(i, self.fmt.data_width) for i in range(self.words)]
        if not _MEMORIES:
            _MEMORIES.update({n: MemoryModel(self.fmt, self.words, init) for n in MEMORIES})
        self.memories = _MEMORIES
        self.amap = ModelAddressMap(self.fmt, tuple(
            ModelRegion(base, size, _dest(node))
            for base, size, node in address_map(self.words, self.fmt.beat_bytes)))
        self.backpressure = backpressure
        start_clock(dut)

    def start_drivers(self):
        self.expected = {n: deque() for n in INITIATORS}   # per initiator: expected beats
        self.received = {n: 0 for n in INITIATORS}
        self.flexible = {}   # (initiator, index) -> predicate for a beat (reset test)
        self.sources, self.wsources, self.sinks = {}, {}, {}
        bp = self.backpressure
        for n in INITIATORS:
            rng = random.Random(self.rng.random())
            self.sources[n] = StreamSource(self.dut, f"ini__{n}__request", self.dut.clk,
                                           random_pauses(0.3, rng) if bp else None)
            self.wsources[n] = StreamSource(self.dut, f"ini__{n}__wdata", self.dut.clk,
                                            random_pauses(0.3, rng) if bp else None)
            self.sinks[n] = StreamSink(self.dut, f"ini__{n}__response", self.dut.clk,
                                       burst_pauses(6, 4, rng) if bp else None,
                                       callback=lambda v, n=n: self._observe(n, v))
        self.raw_sources = [StreamSource(self.dut, f"raw_inject__{v}", self.dut.clk)
                            for v in range(2)]
        self.raw_received = [deque(), deque()]
        self.raw_sinks = [StreamSink(self.dut, f"raw_eject__{v}", self.dut.clk,
                                     random_pauses(0.2, random.Random(self.rng.random())),
                                     callback=lambda x, v=v: self.raw_received[v].append(x))
                          for v in range(2)]

    def stop_drivers(self):
        for d in [*self.sources.values(), *self.wsources.values(), *self.sinks.values(),
                  *self.raw_sources, *self.raw_sinks]:
            d.stop()

    def _observe(self, n, value):
        got = self.fields.response(value)
        queue = self.expected[n]
        assert queue, f"initiator {n}: response beat {got} but none was expected"
        want = queue.popleft()
        index = self.received[n]
        self.received[n] += 1
        if callable(want):
            want(got)
            return
        assert got == want, (
            f"initiator {n}, beat {index}: got (write, tag, status, data, last) = "
            f"{_show(got)}, want {_show(want)}")

    # Requests ----------------------------------------------------------------------------

    def issue(self, n, *, write, addr, length, tag=None, data=None, strobes=None):
        """Send a request; the expectation comes from the address map and memory model."""
        f = self.fmt
        tag = self.rng.getrandbits(f.tag_bits) if tag is None else tag
        if write:
            data = data or [self.rng.getrandbits(f.data_width) for _ in range(length + 1)]
            strobes = strobes or [self.rng.getrandbits(f.strobe_width)
                                  for _ in range(length + 1)]
        status, dest, offset = self.amap.decode(addr, length)
        memory = next((k for k, node in MEMORIES.items()
                       if dest is not None and _dest(node) == dest), None)
        if status != OKAY:
            result, beats = status, None
        elif memory is None:
            result, beats = TIMEOUT, None
        elif write:
            result, beats = self.memories[memory].write(offset, data, strobes), None
        else:
            result, beats = self.memories[memory].read(offset, length)
        self.expected[n].extend(f.response_beats(write=write, status=result, tag=tag,
                                                 length=length, data=beats or ()))
        self.sources[n].send_nowait(self.fields.request(write, addr, length, tag))
        if write:
            for i in range(length + 1):
                self.wsources[n].send_nowait(self.fields.wdata(data[i], strobes[i],
                                                               i == length))
        return result

    def slice_addr(self, n, memory, length):
        """A burst inside initiator ``n``'s slice of ``memory``."""
        per = self.words // (len(INITIATORS) + 1)
        start = per * (n + 1)
        word = self.rng.randrange(start, start + per - length)
        return (BASE_M0, BASE_M1)[memory] + word * self.fmt.beat_bytes

    def random_access(self, n, memories=(0, 1), max_length=20):
        length = self.rng.choice([0, 0, 1, 3, 7, 8, self.rng.randrange(max_length)])
        memory = self.rng.choice(memories)
        if self.rng.random() < 0.5:
            strobes = None if self.rng.random() < 0.5 else \
                [self.fmt.full_strobe] * (length + 1)
            self.issue(n, write=True, addr=self.slice_addr(n, memory, length),
                       length=length, strobes=strobes)
        elif self.rng.random() < 0.3:  # the shared, read-only area
            per = self.words // (len(INITIATORS) + 1)
            word = self.rng.randrange(0, per - length)
            self.issue(n, write=False, length=length,
                       addr=(BASE_M0, BASE_M1)[memory] + word * self.fmt.beat_bytes)
        else:
            self.issue(n, write=False, addr=self.slice_addr(n, memory, length),
                       length=length)

    async def drain(self, limit=100000):
        for _ in range(limit // 8):
            await ClockCycles(self.dut.clk, 8)
            if all(not q for q in self.expected.values()) and \
                    all(s.idle() for s in [*self.sources.values(), *self.wsources.values()]):
                break
        await ClockCycles(self.dut.clk, 20)
        for n, queue in self.expected.items():
            assert not queue, (f"initiator {n}: {len(queue)} response beats never came, "
                               f"next {queue[0] if not callable(queue[0]) else 'any'}")

    def counter(self, name, index):
        return int(self.dut._id(f"{name}__{index}", extended=False).value)

    def counters(self, name, count):
        return [self.counter(name, i) for i in range(count)]


def _show(beat):
    write, tag, status, data, last = beat
    return f"({int(write)}, {tag}, {STATUS_NAMES[status]}, {data:#x}, {int(last)})"


# ---- Tests -------------------------------------------------------------------------------

@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def random_reads_and_writes(dut):
    """Three initiators, two memory tiles: random bursts with strobes, backpressure
    everywhere; every beat checked against the memory model, in order, exactly once."""
    bench = await Bench.start(dut)
    for _ in range(60):
        for n in INITIATORS:
            bench.random_access(n)
    total = sum(len(q) for q in bench.expected.values())
    await bench.drain()
    assert sum(bench.received.values()) == total
    for name in ("decode_errors", "timeouts", "late", "malformed"):
        assert bench.counters(f"ini_{name}", 3) == [0, 0, 0], name
    for name in ("tgt_malformed", "tgt_dropped", "mem_errors"):
        assert bench.counters(name, 2) == [0, 0], name


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def back_to_back_throughput(dut):
    """No backpressure: a 64-beat read and write stream at the NI's rates."""
    bench = await Bench.start(dut, backpressure=False)
    f = bench.fmt
    # Reads: 4 x 16 beats from I0 to M0's shared area.
    for k in range(4):
        bench.issue(0, write=False, addr=BASE_M0 + 16 * k * f.beat_bytes, length=15)
    start = get_sim_time(unit="ns")
    await bench.drain()
    read_cycles = (get_sim_time(unit="ns") - start) / 10
    for _ in range(4):
        bench.issue(0, write=True, addr=bench.slice_addr(0, 0, 15), length=15,
                    strobes=[f.full_strobe] * 16)
    start = get_sim_time(unit="ns")
    await bench.drain()
    write_cycles = (get_sim_time(unit="ns") - start) / 10
    dut._log.info(f"64 read beats in {read_cycles:.0f} cycles, 64 write beats in "
                  f"{write_cycles:.0f} cycles (both including ~20 drain cycles)")
    # One beat per cycle for reads; 8 data flits per 9 for writes; plus latency and drain.
    assert read_cycles < 64 + 60, read_cycles
    assert write_cycles < 64 * 9 / 8 + 60, write_cycles


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def error_responses(dut):
    """Unmapped, unaligned and region-crossing bursts (DECODE_ERROR), out of the memory's
    range (TARGET_ERROR), to an empty port, an unroutable node and an initiator's port
    (TIMEOUT), mixed with good traffic; counted where decided; nothing stalls."""
    bench = await Bench.start(dut)
    f = bench.fmt
    size = bench.words * f.beat_bytes
    decode = [0, 0, 0]
    timeouts = [0, 0, 0]
    target_errors = 0
    unroutable = [0, 0, 0, 0]
    to_initiator = 0
    for round_ in range(8):
        for n, node in INITIATORS.items():
            bench.random_access(n)
            kind = (round_ + n) % 7
            write = bench.rng.random() < 0.5
            length = bench.rng.randrange(4)
            if kind == 0:
                addr = 0x20000 + bench.rng.randrange(0x1000) * f.beat_bytes
            elif kind == 1:
                addr = BASE_M1 + 1
            elif kind == 2:
                addr = BASE_M1 + size - f.beat_bytes * length  # one beat past the end
                length += 1
            elif kind == 3:
                addr = BASE_M0 + size + bench.rng.randrange(16) * f.beat_bytes
            elif kind == 4:
                addr = BASE_EMPTY
            elif kind == 5:
                addr = BASE_UNROUTABLE
            else:
                addr = BASE_INITIATOR
            status = bench.issue(n, write=write, addr=addr, length=length)
            decode[n] += status == DECODE_ERROR
            if kind == 3:
                assert status == TARGET_ERROR
                target_errors += 1
            if kind in (4, 5, 6):
                assert status == TIMEOUT
                timeouts[n] += 1
                if kind == 5:
                    unroutable[node.y * 2 + node.x] += 1
                if kind == 6:
                    to_initiator += 1
    await bench.drain(limit=200000)
    assert bench.counters("ini_decode_errors", 3) == decode
    assert bench.counters("ini_timeouts", 3) == timeouts
    assert bench.counters("mem_errors", 2) == [target_errors, 0]
    assert bench.counters("mesh_unroutable", 4) == unroutable
    malformed = bench.counters("ini_malformed", 3)
    assert malformed == [0, to_initiator, 0], malformed
    assert bench.counters("ini_late", 3) == [0, 0, 0]
    # And the network still works.
    for _ in range(10):
        for n in INITIATORS:
            bench.random_access(n)
    await bench.drain()


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def raw_port_speaks_the_model_format(dut):
    """Requests from the initiators to the raw port decode with the model; the test answers
    with model-encoded responses (OKAY, errors, malformed ones); raw requests to a memory
    tile, good and malformed, get the model's responses."""
    bench = await Bench.start(dut)
    f = bench.fmt
    raw_mem = {}  # what the test's "target" at the raw port holds (per initiator slot)
    # 1. Initiators -> raw port. The test answers each request packet.
    plan = []
    for k in range(12):
        n = k % 3
        write = k % 2 == 1
        length = bench.rng.randrange(10)
        addr = BASE_RAW + bench.rng.randrange(64) * f.beat_bytes
        tag = bench.rng.getrandbits(f.tag_bits)
        data = [bench.rng.getrandbits(f.data_width) for _ in range(length + 1)]
        strobes = [bench.rng.getrandbits(f.strobe_width) for _ in range(length + 1)]
        answer = ["okay", "okay", "error", "bad_length", "unknown_tag", "none"][k % 6]
        plan.append((n, write, length, addr, tag, data, strobes, answer))
        status = {"okay": OKAY, "error": TARGET_ERROR}.get(answer, TIMEOUT)
        reply = [bench.rng.getrandbits(f.data_width) for _ in range(length + 1)]
        raw_mem[k] = reply
        bench.expected[n].extend(f.response_beats(
            write=write, status=status, tag=tag, length=length,
            data=reply if status == OKAY else ()))
        bench.sources[n].send_nowait(bench.fields.request(write, addr, length, tag))
        if write:
            for i in range(length + 1):
                bench.wsources[n].send_nowait(bench.fields.wdata(data[i], strobes[i],
                                                                 i == length))
        # Serve one request at a time so the plan's order is the arrival order.
        packet = await _raw_packet(bench, 0)
        req = f.decode_request(packet)
        assert req.dest == _dest(RAW) and req.src == _dest(INITIATORS[n]), req
        assert (req.write, req.length, req.addr) == (write, length, addr - BASE_RAW), req
        if write:
            assert req.masked and list(req.data) == data and list(req.strobes) == strobes
        if answer == "none":
            continue
        resp_tag = req.tag if answer != "unknown_tag" else (req.tag + 5) % (1 << f.tag_bits)
        response = ResponsePacket(dest=req.src, write=write,
                                  status=TARGET_ERROR if answer == "error" else OKAY,
                                  tag=resp_tag, length=length,
                                  data=tuple(reply) if not write else ())
        flits = f.encode_response(response)
        if answer == "bad_length":
            flits = f.encode_response(ResponsePacket(
                dest=req.src, write=False, status=OKAY, tag=req.tag, length=length + 1,
                data=tuple(reply) + (0,)))
        bench.raw_sources[1].send_all(flits)
    await bench.drain(limit=200000)
    malformed = bench.counters("ini_malformed", 3)
    assert sum(malformed) == 4, malformed  # bad_length and unknown_tag, twice each
    # 2. Raw requests -> memory M0 (good, masked/unmasked) and malformed ones.
    mem = bench.memories[0]
    src = _dest(RAW)
    cases = []
    for k in range(10):
        length = bench.rng.randrange(12)
        word = bench.rng.randrange(64, bench.words - length)  # any slice: only raw writes
        write = k % 2 == 0
        masked = k % 4 == 0
        data = [bench.rng.getrandbits(f.data_width) for _ in range(length + 1)]
        strobes = [bench.rng.getrandbits(f.strobe_width) if masked else f.full_strobe
                   for _ in range(length + 1)]
        cases.append(("good", RequestPacket(
            dest=_dest(MEMORIES[0]), src=src, write=write, tag=k, addr=word * f.beat_bytes,
            length=length, masked=masked, data=tuple(data) if write else (),
            strobes=tuple(strobes) if write else ())))
    good_write = RequestPacket(dest=_dest(MEMORIES[0]), src=src, write=True, tag=1, addr=0,
                               length=3, masked=False, data=(1, 2, 3, 4), strobes=(15,) * 4)
    good_read = RequestPacket(dest=_dest(MEMORIES[0]), src=src, write=False, tag=2, addr=4,
                              length=2)
    cases += [("head_only", good_read), ("read_with_body", good_read),
              ("short_write", good_write), ("long_write", good_write),
              ("unaligned", good_read), ("orphan_body", good_read)]
    bad_answers = 0
    for kind, req in cases:
        flits = f.encode_request(req)
        if kind == "head_only":
            flits = [_retail(f, flits[0], True)]
        elif kind == "read_with_body":
            flits = flits[:-1] + [_retail(f, flits[-1], False), _body(f, 7, True)]
        elif kind == "short_write":
            flits = flits[:-2] + [_retail(f, flits[-2], True)]
        elif kind == "long_write":
            flits = flits[:-1] + [_retail(f, flits[-1], False), _body(f, 9, True)]
        elif kind == "unaligned":
            flits = flits[:1] + [_body(f, 2, True)]
        elif kind == "orphan_body":
            flits = [_body(f, 3, False), _body(f, 4, True)]
        bench.raw_sources[0].send_all(flits)
        if kind == "orphan_body":
            continue  # the router drops it at injection; no response
        packet = await _raw_packet(bench, 1)
        resp = f.decode_response(packet)
        assert resp.dest == src and resp.tag == req.tag, resp
        if kind == "good":
            if req.write:
                want = mem.write(req.addr, req.data, req.strobes)
                assert (resp.status, resp.write) == (want, True), resp
            else:
                want, beats = mem.read(req.addr, req.length)
                assert resp.status == want and list(resp.data) == beats, resp
        else:
            bad_answers += 1
            assert resp.status == TARGET_ERROR, (kind, resp)
            if kind in ("short_write", "long_write"):
                # Poisoned but cut-through: the beats that came may have been written.
                # (An early tail flit is not data: the short write wrote two beats.)
                mem.write(req.addr, req.data[:2] if kind == "short_write" else req.data,
                          req.strobes[:2] if kind == "short_write" else req.strobes)
    await ClockCycles(dut.clk, 50)
    assert bench.counters("tgt_malformed", 2) == [bad_answers, 0]
    assert bench.counter("mesh_malformed", 2) == 2  # the orphan body, two flits
    # The memory still serves, and holds what the model says (including raw writes).
    for _ in range(10):
        for n in INITIATORS:
            bench.random_access(n)
    await bench.drain()


def _retail(f, flit, tail):
    return (flit & ~2) | (int(tail) << 1)


def _body(f, data, tail):
    from chipknit.tb.models.noc import Flit
    return f.noc.encode(Flit(head=False, tail=tail, vc=0, data=data))


async def _raw_packet(bench, vc, limit=5000):
    received = bench.raw_received[vc]
    flits = []
    for _ in range(limit):
        while received:
            flit = received.popleft()
            flits.append(flit)
            if flit >> 1 & 1:
                return flits
        await ClockCycles(bench.dut.clk, 1)
    raise AssertionError(f"no whole packet on the raw port's VC {vc} ({flits})")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def target_reset_mid_transfer(dut):
    """Reset memory M1 and its interface while reads stream out of it: those reads end in
    OKAY, or their missing beats in TIMEOUT/TARGET_ERROR; nothing hangs, and afterwards
    every initiator's traffic to both memories is served exactly."""
    bench = await Bench.start(dut)
    f = bench.fmt
    outcomes = {"okay": 0, "failed": 0}

    def read_checker(n, tag, beats):
        state = {"i": 0, "broken": False}

        def check(got):
            i = state["i"]
            state["i"] += 1
            write, got_tag, status, data, last = got
            assert (write, got_tag, last) == (False, tag, i == len(beats) - 1), got
            if status == OKAY:
                assert not state["broken"], f"OKAY after an error beat: {got}"
                assert data == beats[i], f"beat {i}: {data:#x}, want {beats[i]:#x}"
            else:
                assert status in (TIMEOUT, TARGET_ERROR), got
                state["broken"] = True
            if last:
                outcomes["failed" if state["broken"] else "okay"] += 1
        return check

    for _ in range(6):
        for n in INITIATORS:
            length = bench.rng.randrange(8, 24)
            word = bench.rng.randrange(0, bench.words - length)
            tag = bench.rng.getrandbits(f.tag_bits)
            _, beats = bench.memories[1].read(word * f.beat_bytes, length)
            checker = read_checker(n, tag, beats)
            bench.expected[n].extend([checker] * (length + 1))
            bench.sources[n].send_nowait(bench.fields.request(
                False, BASE_M1 + word * f.beat_bytes, length, tag))
            bench.random_access(n, memories=(0,))
    await ClockCycles(dut.clk, bench.rng.randint(60, 120))
    dut.target_rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.target_rst.value = 0
    await bench.drain(limit=200000)
    dut._log.info(f"reads around the reset: {outcomes}")
    assert outcomes["failed"] > 0, "the reset cut no read short: move it"
    # Later traffic works exactly (M1 was only read, so the model still holds).
    for _ in range(25):
        for n in INITIATORS:
            bench.random_access(n)
    await bench.drain()
    timeouts = sum(bench.counters("ini_timeouts", 3))
    malformed = sum(bench.counters("ini_malformed", 3))
    dropped = bench.counter("tgt_dropped", 1)
    dut._log.info(f"initiator timeouts {timeouts}, malformed {malformed}; "
                  f"target fragments dropped {dropped}")
    assert timeouts + malformed >= outcomes["failed"], "a failed read was not counted"
