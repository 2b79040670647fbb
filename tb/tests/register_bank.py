"""cocotb tests of :class:`chipknit.rtl.registers.RegisterBank` against its model.

Random reads and writes (in and out of range, unaligned, to read-only registers, random
lengths and strobes) with random backpressure on every stream, while the status inputs
change every cycle; every response beat is checked against
:class:`~chipknit.tb.models.registers.RegisterBankModel` reading the status values of the
cycle its ``reads`` strobe was high (the bank samples a beat into its response register
then). A reset in the middle of a read returns the bank to idle with its
controls at their reset values.
"""

import random
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from chipknit.tb.benches import REGISTER_BANK_DEMO
from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.registers import OKAY, TARGET_ERROR, RegisterBankModel
from chipknit.tb.stream import StreamSource, random_pauses

DATA_WIDTH = 32


class Fields:
    """Packs and unpacks an LSB-first struct."""

    def __init__(self, *fields):
        self.fields = fields

    def pack(self, **values):
        word, shift = 0, 0
        for name, width in self.fields:
            word |= (values.get(name, 0) & ((1 << width) - 1)) << shift
            shift += width
        return word

    def unpack(self, word):
        values, shift = {}, 0
        for name, width in self.fields:
            values[name] = word >> shift & ((1 << width) - 1)
            shift += width
        return values


class RegisterBankBench:
    def __init__(self, dut, *, pause=0.3):
        self.dut = dut
        params = design_params()
        self.model = RegisterBankModel(REGISTER_BANK_DEMO, DATA_WIDTH // 8)
        self.request = Fields(("write", 1), ("addr", params["addr_width"]),
                              ("length", params["length_bits"]), ("tag", params["tag_bits"]))
        self.wdata = Fields(("data", DATA_WIDTH), ("strobe", DATA_WIDTH // 8), ("last", 1))
        self.response = Fields(("write", 1), ("tag", params["tag_bits"]), ("status", 2),
                               ("data", DATA_WIDTH), ("last", 1))
        self.status_fields = Fields(*[(r.name, r.width) for r in self.model.registers
                                      if r.access == "r"])
        self.control_fields = Fields(*[(r.name, r.width) for r in self.model.registers
                                       if r.access == "rw"])
        self.params = params
        start_clock(dut)
        dut.bus__response__ready.value = 0
        dut.status.value = 0
        self.requests = StreamSource(dut, "bus__request", dut.clk, random_pauses(pause))
        self.beats = StreamSource(dut, "bus__wdata", dut.clk, random_pauses(pause))
        self.expected = deque()   # (write, tag, addr, length, beats)
        self.status_now = {}
        self.responses = 0
        self.pause = pause
        self.checking = True
        self.hold = False
        count = len(self.model.registers)
        self.strobed = {"reads": [0] * count, "writes": [0] * count}
        self.expected_strobes = {"reads": [0] * count, "writes": [0] * count}
        self.sampled = [deque() for _ in range(count)]   # status values at each read strobe
        cocotb.start_soon(self._drive_status())
        cocotb.start_soon(self._check())

    async def _drive_status(self):
        while True:
            values = {name: random.getrandbits(width)
                      for name, width in self.status_fields.fields}
            self.dut.status.value = self.status_fields.pack(**values)
            await RisingEdge(self.dut.clk)
            self.status_now = values

    def issue(self, *, write, addr, length, tag, beats=()):
        self.requests.send_nowait(self.request.pack(write=write, addr=addr, length=length,
                                                    tag=tag))
        for i, (data, strobe) in enumerate(beats):
            self.beats.send_nowait(self.wdata.pack(data=data, strobe=strobe,
                                                   last=i == len(beats) - 1))
        self.expected.append((write, tag, addr, length, list(beats)))

    async def _check(self):
        dut = self.dut
        beat_in_read = 0
        read_ok = None
        while True:
            ready = int(random.random() >= self.pause and not self.hold)
            dut.bus__response__ready.value = ready
            await RisingEdge(dut.clk)
            for kind in ("reads", "writes"):
                bits = int(getattr(dut, kind).value)
                for index in range(len(self.model.registers)):
                    self.strobed[kind][index] += bits >> index & 1
                    if kind == "reads" and bits >> index & 1:
                        # A read beat is sampled in the cycle of its strobe.
                        self.sampled[index].append(dict(self.status_now))
            if not (ready and int(dut.bus__response__valid.value)) or not self.checking:
                continue
            got = self.response.unpack(int(dut.bus__response__payload.value))
            assert self.expected, f"response with nothing outstanding: {got}"
            write, tag, addr, length, beats = self.expected[0]
            assert got["tag"] == tag and got["write"] == write, (
                f"response {got} does not match the oldest request "
                f"(write={write}, tag={tag}, addr={addr:#x}, length={length})")
            if write:
                status = self.model.write(addr, length, beats)
                if status == OKAY:
                    for index in range(addr // 4, addr // 4 + length + 1):
                        self.expected_strobes["writes"][index] += 1
                assert got["status"] == status and got["last"] == 1 and got["data"] == 0, (
                    f"write to {addr:#x}+{length}: expected status {status}, got {got}")
                self.expected.popleft()
                self.responses += 1
                continue
            if beat_in_read == 0:
                read_ok = self.model.read_ok(addr, length)
            if read_ok:
                index = addr // (DATA_WIDTH // 8) + beat_in_read
                assert self.sampled[index], (
                    f"read {addr:#x} beat {beat_in_read}: no read strobe for register "
                    f"{self.model.registers[index].name} before its beat")
                value = self.model.read_beat(index, self.sampled[index].popleft())
                self.expected_strobes["reads"][index] += 1
                assert got["status"] == OKAY and got["data"] == value, (
                    f"read {addr:#x} beat {beat_in_read} (register "
                    f"{self.model.registers[index].name}): expected {value:#x}, got {got}")
            else:
                assert got["status"] == TARGET_ERROR and got["data"] == 0, (
                    f"read {addr:#x}+{length} should be refused, got {got}")
            assert got["last"] == (beat_in_read == length), (
                f"read {addr:#x}+{length}: last on beat {beat_in_read} is {got['last']}")
            beat_in_read += 1
            if beat_in_read > length:
                beat_in_read = 0
                self.expected.popleft()
                self.responses += 1

    def random_request(self, tag):
        registers = len(self.model.registers)
        length = random.randrange(min(4, 1 << self.params["length_bits"]))
        word = random.randrange(registers + 2)
        addr = word * 4 + (random.random() < 0.1) * random.randrange(1, 4)
        if random.random() < 0.5:
            beats = [(random.getrandbits(32), random.choice([0xF, 0xF, 0x1, 0x6, 0x0]))
                     for _ in range(length + 1)]
            self.issue(write=1, addr=addr, length=length, tag=tag, beats=beats)
        else:
            self.issue(write=0, addr=addr, length=length, tag=tag)

    async def drain(self, limit=20000):
        for _ in range(limit):
            if not self.expected:
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"{len(self.expected)} requests never answered")

    def check_controls(self):
        got = self.control_fields.unpack(int(self.dut.control.value))
        assert got == self.model.control, f"controls {got} != model {self.model.control}"


@cocotb.test()
async def random_reads_and_writes(dut):
    """Random traffic, backpressure everywhere; every beat checked; controls match."""
    bench = RegisterBankBench(dut)
    await reset(dut)
    for round_ in range(60):
        for i in range(random.randrange(1, 8)):
            bench.random_request((round_ * 8 + i) % (1 << bench.params["tag_bits"]))
        await bench.drain()
        await ClockCycles(dut.clk, 2)
        bench.check_controls()
    assert bench.responses >= 20
    assert int(dut.errors.value) == bench.model.errors, (
        f"errors counter {int(dut.errors.value)} != model {bench.model.errors}")
    assert bench.model.errors > 0, "the random mix never hit a refused request"
    assert bench.strobed == bench.expected_strobes, (
        f"read/write strobes per register {bench.strobed} != {bench.expected_strobes}")


@cocotb.test()
async def full_rate_reads(dut):
    """Without backpressure a read streams one beat per cycle."""
    bench = RegisterBankBench(dut, pause=0.0)
    await reset(dut)
    registers = len(bench.model.registers)
    length = min(registers, 1 << bench.params["length_bits"]) - 1
    bench.issue(write=0, addr=0, length=length, tag=1)
    start = None
    beats = 0
    for _ in range(100):
        await RisingEdge(dut.clk)
        if int(dut.bus__response__valid.value):
            start = start if start is not None else cocotb.utils.get_sim_time("ns")
            beats += 1
            if beats == length + 1:
                break
    elapsed = (cocotb.utils.get_sim_time("ns") - start) / 10
    assert beats == length + 1 and elapsed == length, (
        f"{length + 1} beats took {elapsed + 1} cycles")
    await bench.drain()


@cocotb.test()
async def reset_mid_read(dut):
    """A reset during a read: the bank returns to idle, controls to their reset values."""
    bench = RegisterBankBench(dut, pause=0.0)
    await reset(dut)
    control = next(r for r in bench.model.registers if r.access == "rw")
    index = bench.model.registers.index(control)
    bench.issue(write=1, addr=index * 4, length=0, tag=2, beats=[(0xA5A5A5A5, 0xF)])
    await bench.drain()
    assert bench.model.control[control.name] != control.reset
    bench.checking = False
    bench.hold = True
    bench.issue(write=0, addr=0, length=3, tag=3)
    await ClockCycles(dut.clk, 5)
    assert int(dut.bus__response__valid.value), "the read should be waiting to send"
    bench.hold = False
    await reset(dut)
    bench.expected.clear()
    for samples in bench.sampled:
        samples.clear()
    bench.model.reset()
    await ClockCycles(dut.clk, 2)
    bench.check_controls()
    bench.checking = True
    bench.issue(write=0, addr=index * 4, length=0, tag=4)
    await bench.drain()
