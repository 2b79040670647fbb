"""cocotb tests of the NPU tile with its DMA: the command queue, the engine and the DMA on a
memory-target model, running programs from the host compiler (:mod:`chipknit.npu`).

Scoreboard: every program also runs on :class:`~chipknit.npu.machine.TileModel` with the same
remote memory (and the same faults); statuses, results and the remote memory afterwards must
agree, and results must equal :func:`~chipknit.npu.model.qgemm` / ``qconv2d``.

:class:`MemoryTarget` serves the tile's initiator port (``bus``): random ready on requests
and write data, a random latency per request, random stalls of the response stream, a
bandwidth cap (bytes per cycle, for ``chipknit bench npu``), and TARGET_ERROR for any
request touching a faulty beat. It checks the protocol (aligned addresses, ``last`` on the
right write beat, no more requests outstanding than tags) and counts the requests in flight.
"""

import json
import os
import random
from collections import deque

import cocotb
import numpy as np
from amaranth.lib import data
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.npu import isa
from chipknit.npu.compiler import (
    ModelBackend,
    Quantisation,
    check_statuses,
    compile_conv2d,
    compile_gemm,
)
from chipknit.npu.machine import RemoteMemory
from chipknit.npu.model import gemm_int32, qconv2d, qgemm, quantize_multiplier
from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.transaction import Status, TransactionParams
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.stream import StreamSink, StreamSource, random_pauses
from chipknit.tb.tests.npu_driver import cycle, pack, unpack_signed

TIMEOUT_US = 20000
RESULT_ENV = "CHIPKNIT_RESULT_FILE"
BENCH_ENV = "CHIPKNIT_NPU_FABRIC"


def rng() -> np.random.Generator:
    return np.random.default_rng(random.getrandbits(32))


def _fields(layout, bits: int) -> dict:
    return {name: (bits >> member.offset) & ((1 << member.width) - 1)
            for name, member in layout}


class MemoryTarget:
    """Serves the DMA's initiator port from a :class:`RemoteMemory` (see the module docs).

    Parameters
    ----------
    latency : (int, int)
        Cycles from a request's acceptance to its first response beat, drawn uniformly.
    bytes_per_cycle : float or None
        Data beats (read or written) are limited to this rate; None: no limit.
    """

    def __init__(self, dut, params: TransactionParams, memory: RemoteMemory, *,
                 latency=(1, 12), request_pauses=None, wdata_pauses=None,
                 response_pauses=None, bytes_per_cycle=None, rand=None):
        self.dut, self.params, self.memory = dut, params, memory
        self.latency = latency
        self.rand = rand or random.Random(random.getrandbits(32))
        self.request_pauses = request_pauses or iter(lambda: False, None)
        self.wdata_pauses = wdata_pauses or iter(lambda: False, None)
        self.response_pauses = response_pauses or iter(lambda: False, None)
        self.bytes_per_cycle = bytes_per_cycle
        self.requests = 0
        self.beats = 0
        self.max_outstanding = 0
        self.errors = 0
        self.first_beat = None
        self.last_beat = None
        self.reset()
        self._task = cocotb.start_soon(self._serve())

    def reset(self):
        """Forget everything in flight (the tile's network interface resets with it)."""
        self.pending = deque()        # transactions in request order
        self.writes = deque()         # write transactions still taking data
        self.tokens = 0.0
        self.response = None          # the beat being offered: (transaction, index)
        for name in ("request__ready", "wdata__ready", "response__valid"):
            getattr(self.dut, f"bus__{name}").value = 0

    def stop(self):
        self._task.cancel()

    def _beat_budget(self) -> bool:
        return self.bytes_per_cycle is None or self.tokens >= self.params.beat_bytes

    def _spend(self):
        self.beats += 1
        now = cycle()
        self.first_beat = self.first_beat if self.first_beat is not None else now
        self.last_beat = now
        if self.bytes_per_cycle is not None:
            self.tokens -= self.params.beat_bytes

    async def _serve(self):
        p, dut = self.params, self.dut
        req_layout, wd_layout, rsp_layout = p.request_layout, p.wdata_layout, p.response_layout
        offering = False
        while True:
            await RisingEdge(dut.clk)
            now = cycle()
            # What happened at this edge (spending the budget), then this cycle's budget.
            # (Adding before spending, with the cap, lost the cycle's bytes whenever the
            # bucket was full: at B = 1 the memory served 0.8 B/cycle, at B = 2 1.33.)
            if int(dut.bus__request__ready.value) and int(dut.bus__request__valid.value):
                self._request(_fields(req_layout, int(dut.bus__request__payload.value)), now)
            if int(dut.bus__wdata__ready.value) and int(dut.bus__wdata__valid.value):
                self._wdata(_fields(wd_layout, int(dut.bus__wdata__payload.value)))
            # (A reset() between edges withdraws the beat being offered.)
            if offering and self.response is not None and int(dut.bus__response__ready.value):
                transaction, index = self.response
                if transaction["ok"] and not transaction["write"]:
                    self._spend()
                if index + 1 == transaction["beats_out"]:
                    self.pending.popleft()
                    self.response = None
                else:
                    self.response = (transaction, index + 1)
            if self.bytes_per_cycle is not None:
                self.tokens = min(self.tokens + self.bytes_per_cycle,
                                  max(p.beat_bytes, 2 * self.bytes_per_cycle))
            # What to offer next.
            dut.bus__request__ready.value = int(
                len(self.pending) < 1 << p.tag_bits and not next(self.request_pauses))
            dut.bus__wdata__ready.value = int(
                bool(self.writes) and self._beat_budget() and not next(self.wdata_pauses))
            offering = False
            if self.response is None and self.pending:
                head = self.pending[0]
                if head["due"] <= now and head["received"] == head["beats_in"]:
                    self.response = (head, 0)
            if self.response is not None and not next(self.response_pauses):
                transaction, index = self.response
                needs_budget = transaction["ok"] and not transaction["write"]
                if not needs_budget or self._beat_budget():
                    offering = True
                    self._offer(transaction, index, rsp_layout)
            dut.bus__response__valid.value = int(offering)

    def _request(self, fields, now):
        p = self.params
        assert fields["addr"] % p.beat_bytes == 0, f"unaligned request {fields}"
        beat, count = fields["addr"] // p.beat_bytes, fields["length"] + 1
        ok = not self.memory.faulty(beat, count)
        self.errors += not ok
        transaction = {"write": fields["write"], "tag": fields["tag"], "beat": beat,
                       "count": count, "ok": ok, "received": 0, "data": [],
                       "beats_in": count if fields["write"] else 0,
                       "beats_out": 1 if fields["write"] else count,
                       "due": now + self.rand.randint(*self.latency)}
        if not fields["write"]:
            blob = self.memory.read(beat, count) if ok else bytes(count * p.beat_bytes)
            transaction["data"] = [int.from_bytes(blob[i * p.beat_bytes:(i + 1) * p.beat_bytes],
                                                  "little") for i in range(count)]
        else:
            self.writes.append(transaction)
        self.pending.append(transaction)
        self.requests += 1
        self.max_outstanding = max(self.max_outstanding, len(self.pending))

    def _wdata(self, fields):
        p = self.params
        assert self.writes, "write data with no write request"
        transaction = self.writes[0]
        transaction["data"].append(fields["data"])
        transaction["received"] += 1
        self._spend()
        last = transaction["received"] == transaction["count"]
        assert fields["last"] == last, \
            f"wdata last={fields['last']} on beat {transaction['received']} of " \
            f"{transaction['count']}"
        assert fields["strobe"] == (1 << p.strobe_width) - 1, "the DMA writes whole beats"
        if last:
            self.writes.popleft()
            if transaction["ok"]:
                self.memory.write(transaction["beat"], b"".join(
                    value.to_bytes(p.beat_bytes, "little") for value in transaction["data"]))

    def _offer(self, transaction, index, layout):
        status = Status.OKAY if transaction["ok"] else Status.TARGET_ERROR
        value = {"write": transaction["write"], "tag": transaction["tag"],
                 "status": status.value,
                 "data": 0 if transaction["write"] or not transaction["ok"]
                 else transaction["data"][index],
                 "last": int(index + 1 == transaction["beats_out"])}
        self.dut.bus__response__payload.value = pack(layout, value)


def tile_params(params: dict) -> tuple[isa.Limits, TransactionParams]:
    transaction = TransactionParams(flit=FlitFormat(data_width=params["data_width"]),
                                    length_bits=params["length_bits"],
                                    tag_bits=params["tag_bits"])
    limits = isa.Limits(rows=params["rows"], cols=params["cols"], lanes=params["lanes"],
                        a_depth=params["a_depth"], w_depth=params["w_depth"],
                        acc_depth=params["acc_depth"], qp_depth=params["qp_depth"],
                        beat_bytes=transaction.beat_bytes, addr_width=transaction.addr_width,
                        max_beats=transaction.max_beats)
    return limits, transaction


class TileBench:
    """Clock, reset, the command/status/result streams and the memory target."""

    def __init__(self, dut, *, pauses=0.3, memory_kwargs=None):
        self.dut = dut
        self.limits, self.transaction = tile_params(design_params())
        self.memory = RemoteMemory(self.limits.beat_bytes)
        self.pauses = pauses
        start_clock(dut)
        for port in ("a_wr", "w_wr", "qp_wr"):
            getattr(dut, f"{port}__en").value = 0
        kwargs = memory_kwargs if memory_kwargs is not None else {
            "request_pauses": random_pauses(pauses), "wdata_pauses": random_pauses(pauses),
            "response_pauses": random_pauses(pauses)}
        self.target = MemoryTarget(dut, self.transaction, self.memory, **kwargs)
        self.start()

    def start(self):
        self.statuses: list[tuple[int, int, int]] = []
        self.status_cycles: list[int] = []
        self.beats: list[list[int]] = []
        pause = random_pauses(self.pauses) if self.pauses else None
        self.cmd = StreamSource(self.dut, "cmd", self.dut.clk, pause)
        self.status = StreamSink(self.dut, "status", self.dut.clk,
                                 random_pauses(self.pauses) if self.pauses else None,
                                 callback=self._status)
        self.out = StreamSink(self.dut, "o", self.dut.clk,
                              random_pauses(self.pauses) if self.pauses else None,
                              callback=lambda word: self.beats.append(
                                  unpack_signed(word, 32, self.limits.lanes)))

    def stop(self):
        for driver in (self.cmd, self.status, self.out):
            driver.stop()

    def _status(self, word):
        self.statuses.append(isa.decode_status(word))
        self.status_cycles.append(cycle())

    async def wait_until(self, condition):
        while not condition():
            await RisingEdge(self.dut.clk)

    async def write_rows(self, port: str, rows: dict[int, int]):
        addr, payload, en = (getattr(self.dut, f"{port}__{name}")
                             for name in ("addr", "data", "en"))
        for address, bits in rows.items():
            addr.value, payload.value, en.value = address, bits, 1
            await RisingEdge(self.dut.clk)
        en.value = 0

    async def preload(self, images):
        lim = self.limits
        for name, rows in images.items():
            if name == "qp":
                packed = {r: isa.qp_entry_bits(values) for r, values in rows.items()}
            else:
                width = lim.rows if name == "a" else lim.cols
                packed = {r: pack(data.ArrayLayout(8, width), list(values))
                          for r, values in rows.items()}
            await self.write_rows(f"{name}_wr", packed)

    async def execute(self, words):
        """Send ``words``; wait for all their statuses."""
        first = len(self.statuses)
        start = cycle()
        self.cmd.send_all(words)
        await self.wait_until(lambda: len(self.statuses) - first == len(words))
        await ClockCycles(self.dut.clk, 2)
        assert len(self.statuses) - first == len(words), "a status without a command"
        return self.statuses[first:], cycle() - start


class CocotbBackend:
    """Runs :class:`~chipknit.npu.compiler.Program` s on the RTL tile (``await run(...)``)."""

    def __init__(self, bench: TileBench):
        self.bench = bench
        self.cycles = None

    async def run(self, program, *, check=True):
        bench = self.bench
        for address, blob in program.memory.items():
            bench.memory.write(address, blob)
        await bench.preload(program.preload)
        first = len(bench.beats)
        statuses, self.cycles = await bench.execute(program.commands)
        # Sequence numbers count from the last reset, modulo 256.
        base = statuses[0][2] if statuses else 0
        statuses = [(code, opcode, (seq - base) % 256) for code, opcode, seq in statuses]
        if check:
            check_statuses(program, statuses)
        return program.result(beats=bench.beats[first:], memory=bench.memory), statuses


def random_quant(gen, n, a_zp=None):
    pairs = [quantize_multiplier(float(s)) for s in np.exp(gen.uniform(-11, 1.4, n))]
    multiplier, shift = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    wild = gen.random(n) < 0.2
    multiplier[wild] = gen.integers(-(1 << 31), 1 << 31, wild.sum())
    shift[wild] = gen.integers(-31, 8, wild.sum())
    out_zp = int(gen.integers(-128, 128))
    act_min, act_max = ((-128, 127), (out_zp, 127),
                        (out_zp, int(min(127, out_zp + gen.integers(1, 100)))))[
        int(gen.integers(3))]
    return Quantisation(bias=gen.integers(-(1 << 14), 1 << 14, n), multiplier=multiplier,
                        shift=shift,
                        a_zero_point=int(gen.integers(-128, 128)) if a_zp is None else a_zp,
                        w_zero_point=int(gen.integers(-128, 128)), out_zero_point=out_zp,
                        act_min=act_min, act_max=act_max)


def expected(a, w, q, bypass=False):
    if bypass:
        return gemm_int32(a, w, q.a_zero_point, q.w_zero_point)
    return qgemm(a, w, q.bias, q.multiplier, q.shift, a_zero_point=q.a_zero_point,
                 w_zero_point=q.w_zero_point, out_zero_point=q.out_zero_point,
                 act_min=q.act_min, act_max=q.act_max)


def compare(got, want, what):
    if not np.array_equal(got, want):
        where = tuple(int(i) for i in np.argwhere(got != want)[0])
        raise AssertionError(f"{what}: first difference at {where}: got {got[where]}, "
                             f"model {want[where]}")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def compiled_gemms_bit_exact(dut):
    """Random GEMMs (1x1x1, non-multiples, several M tiles and K chunks) compiled to
    LOAD/COMPUTE/STORE programs, with random stalls everywhere; one preloaded program."""
    bench = TileBench(dut)
    await reset(dut)
    backend = CocotbBackend(bench)
    gen = rng()
    lim = bench.limits
    shapes = [(1, 1, 1), (3, 2 * lim.rows + 1, lim.cols + 1)] + \
        [tuple(int(v) for v in gen.integers(1, 3 * lim.acc_depth // 2, 3)) for _ in range(3)]
    base = 0
    for m, k, n in shapes:
        a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
        q = random_quant(gen, n)
        bypass = bool(gen.integers(2))
        program = compile_gemm(a, w, q, lim, bypass=bypass, memory_base=base)
        base = max(program.memory) + 4096 // lim.beat_bytes
        got, _ = await backend.run(program)
        compare(got, expected(a, w, q, bypass), f"{m}x{k}x{n} bypass={bypass}")
        dut._log.info(f"{m}x{k}x{n}: {len(program.commands)} commands, {backend.cycles} "
                      f"cycles, {bench.target.max_outstanding} requests in flight at most")
    assert bench.target.max_outstanding >= 2, "the DMA never had two requests in flight"
    # A preloaded program (host writes the scratchpads, results stream out of ``o``).
    m, k, n = 3, lim.rows, lim.cols + 1
    a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
    q = random_quant(gen, n)
    program = compile_gemm(a, w, q, lim, dma=False)
    got, _ = await backend.run(program)
    compare(got, expected(a, w, q), "preloaded")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def conv_layer_bit_exact(dut):
    """A real small layer: 3×3 conv, 8 → 16 channels, 10×10 input, padding 1 (the input
    zero point), per-channel scales, ReLU; via im2col, through the DMA."""
    bench = TileBench(dut, pauses=0.1)
    await reset(dut)
    gen = rng()
    x = gen.integers(-128, 128, (10, 10, 8))
    weights = gen.integers(-127, 128, (3, 3, 8, 16))
    q = random_quant(gen, 16, a_zp=-3)
    q = Quantisation(**{**q.__dict__, "w_zero_point": 0, "act_min": q.out_zero_point,
                        "act_max": 127})
    program = compile_conv2d(x, weights, q, bench.limits, padding=1)
    backend = CocotbBackend(bench)
    got, _ = await backend.run(program)
    compare(got, qconv2d(x, weights, q.bias, q.multiplier, q.shift, padding=1,
                         x_zero_point=-3, out_zero_point=q.out_zero_point,
                         act_min=q.act_min, act_max=q.act_max), "conv 3x3 8->16 10x10")
    dut._log.info(f"conv: {len(program.commands)} commands, {backend.cycles} cycles")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def dma_errors_and_illegal_commands(dut):
    """Faulty remote beats: LOADs and STOREs touching them end with DMA_ERROR, failed rows
    keep their contents, the tile goes on; out-of-range DMA commands are refused. Every
    status and the remote memory afterwards match the tile model."""
    bench = TileBench(dut)
    await reset(dut)
    gen = rng()
    lim = bench.limits
    m, k, n = 5, 2 * lim.rows + 1, lim.cols + 2
    a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
    q = random_quant(gen, n)
    program = compile_gemm(a, w, q, lim)
    # Fault one beat of the results and one of the weights.
    w_beat = max(program.memory)
    faults = [(program.out_base + 1, program.out_base + 2), (w_beat + 1, w_beat + 2)]
    bench.memory.faults[:] = faults
    model_memory = RemoteMemory(lim.beat_bytes, faults=list(faults))
    model = ModelBackend(model_memory).execute(program)
    # Rows of a failed LOAD keep their contents: start from the model's (zero) scratchpads.
    for name, depth in (("a", lim.a_depth), ("w", lim.w_depth), ("qp", lim.qp_depth)):
        await bench.write_rows(f"{name}_wr", dict.fromkeys(range(depth), 0))
    backend = CocotbBackend(bench)
    _, statuses = await backend.run(program, check=False)
    assert statuses == model.statuses, "statuses differ from the tile model"
    codes = [code for code, *_ in statuses]
    assert codes.count(isa.Status.DMA_ERROR) >= 2, codes
    assert bench.memory.beats == model_memory.beats, "remote memory differs from the model"
    # Out-of-range and illegal DMA commands, then the tile still computes exactly.
    bad = [isa.load(isa.Target.A, spad_base=lim.a_depth - 1, rows=2, remote=0),
           isa.raw(isa.Opcode.LOAD, 1 | 1 << 12, flags=3),
           isa.load(isa.Target.QP, spad_base=0, rows=1, remote=lim.remote_beats),
           isa.store(m=lim.acc_depth, acc_base=1, remote=0),
           isa.store(m=1, qp_base=lim.qp_depth - lim.groups + 1, remote=0),
           isa.raw(8 + int(gen.integers(8)), int(gen.integers(1 << 56)))]
    statuses, _ = await bench.execute(bad)
    assert [code for code, *_ in statuses] == \
        [isa.expected_status(word, lim) for word in bad] == \
        [isa.Status.OUT_OF_RANGE] * 5 + [isa.Status.ILLEGAL_OPCODE]
    bench.memory.faults.clear()
    program = compile_gemm(a, w, q, lim, memory_base=max(program.memory) + 1024)
    got, _ = await backend.run(program)
    compare(got, expected(a, w, q), "after errors")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def reset_mid_dma_then_clean_rerun(dut):
    """A reset while LOADs have requests in flight and STOREs send data; the network
    interface forgets them too. Then the same program runs exactly."""
    bench = TileBench(dut)
    await reset(dut)
    gen = rng()
    lim = bench.limits
    m, k, n = lim.acc_depth, 4 * lim.rows, 3 * lim.cols
    a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
    q = random_quant(gen, n)
    program = compile_gemm(a, w, q, lim)
    for address, blob in program.memory.items():
        bench.memory.write(address, blob)
    bench.cmd.send_all(program.commands)
    await bench.wait_until(lambda: bench.target.requests >= 8 and bench.target.pending)
    await ClockCycles(dut.clk, int(gen.integers(0, 40)))
    assert int(dut.busy.value), "nothing running at the reset"
    bench.stop()
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    bench.target.reset()
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    for name in ("busy", "status__valid", "o__valid", "bus__request__valid",
                 "bus__wdata__valid"):
        assert not int(getattr(dut, name).value), f"{name} high after reset"
    bench.start()
    got, _ = await CocotbBackend(bench).run(program)
    compare(got, expected(a, w, q), "rerun after reset")


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def load_overlaps_compute(dut):
    """A LOAD into one half of a scratchpad runs while a COMPUTE reads the other: the pair
    takes less than the two one after the other (FENCE between)."""
    bench = TileBench(dut, pauses=0, memory_kwargs={"latency": (4, 4)})
    await reset(dut)
    lim = bench.limits
    half = lim.a_depth // 2
    kb = min(lim.w_depth // lim.rows, 255)
    m = min(half // kb, lim.acc_depth)
    bench.memory.write(0, bytes(range(256)) * 8)
    compute = [isa.compute(m=m, k_blocks=kb)] * 4
    load = isa.load(isa.Target.A, spad_base=half, rows=half, remote=0)
    _, serial = await bench.execute([*compute, isa.fence(), load, isa.fence()])
    _, overlapped = await bench.execute([*compute, load, isa.fence()])
    _, alone_compute = await bench.execute([*compute, isa.fence()])
    _, alone_load = await bench.execute([load, isa.fence()])
    dut._log.info(f"compute {alone_compute}, load {alone_load}, one after the other "
                  f"{serial}, overlapped {overlapped} cycles")
    assert overlapped < serial - min(alone_compute, alone_load) // 2, \
        f"overlapped {overlapped} cycles, serial {serial}"
    assert all(code == isa.Status.OK for code, *_ in bench.statuses)
    if RESULT_ENV in os.environ and os.environ.get(BENCH_ENV) == "overlap":
        with open(os.environ[RESULT_ENV], "w") as file:
            json.dump({"compute": alone_compute, "load": alone_load, "serial": serial,
                       "overlapped": overlapped}, file)


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def unexpected_responses_are_counted(dut):
    """Response beats with no request outstanding, or with a tag no outstanding request
    has, are dropped and counted on ``dma_unexpected``; the tile still computes exactly."""
    bench = TileBench(dut, pauses=0)
    await reset(dut)
    assert int(dut.dma_unexpected.value) == 0
    t = bench.transaction
    target = bench.target

    async def stray(tag, beats=1):
        target._task.cancel()                  # the network sends what it likes
        for index in range(beats):
            dut.bus__response__payload.value = pack(t.response_layout, {
                "write": 0, "tag": tag, "status": Status.OKAY.value, "data": 0xdeadbeef,
                "last": int(index + 1 == beats)})
            dut.bus__response__valid.value = 1
            await RisingEdge(dut.clk)
        dut.bus__response__valid.value = 0
        target._task = cocotb.start_soon(target._serve())
    await stray(tag=3, beats=2)                 # nothing outstanding
    await ClockCycles(dut.clk, 2)
    assert int(dut.dma_unexpected.value) == 2, int(dut.dma_unexpected.value)
    # A LOAD's request is outstanding (the memory holds its answer back): a response with
    # another tag is not taken for its data.
    lim = bench.limits
    gen = rng()
    bench.memory.write(0, bytes(range(64)))
    target.latency = (60, 60)
    bench.cmd.send_all([isa.load(isa.Target.A, spad_base=0, rows=1, remote=0)])
    await bench.wait_until(lambda: target.requests >= 1)
    tag = target.pending[0]["tag"]
    await stray(tag=(tag + 1) % (1 << t.tag_bits))
    await bench.wait_until(lambda: len(bench.statuses) >= 1)
    assert bench.statuses[-1][0] == isa.Status.OK
    assert int(dut.dma_unexpected.value) == 3, int(dut.dma_unexpected.value)
    target.latency = (1, 12)
    m, k, n = 3, 2 * lim.rows + 1, lim.cols + 1
    a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
    q = random_quant(gen, n)
    got, _ = await CocotbBackend(bench).run(compile_gemm(a, w, q, lim, memory_base=64))
    compare(got, expected(a, w, q), "after unexpected responses")
    assert int(dut.dma_unexpected.value) == 3
