"""``rtl/block_ram.py``: the same reads as a sync read port in simulation, and no
read-during-write emulation after synthesis."""

import json
import random
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from chipknit.platforms.build import SCRIPT_AFTER_READ, SYNTH_OPTS
from chipknit.platforms.toolchain import toolchain_env
from chipknit.rtl.block_ram import collision_free_memory, registered_read

WIDTH, DEPTH = 18, 256


class _Ram(wiring.Component):
    """One write port and one registered read, either a plain sync read port (``plain``)
    or :func:`registered_read` of a :func:`collision_free_memory`."""
    w_addr: In(range(DEPTH))
    w_data: In(WIDTH)
    w_en: In(1)
    r_addr: In(range(DEPTH))
    r_en: In(1)
    r_data: Out(WIDTH)

    def __init__(self, plain: bool):
        self.plain = plain
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        if self.plain:
            m.submodules.ram = ram = memory.Memory(shape=WIDTH, depth=DEPTH, init=[])
            read = ram.read_port()
            m.d.comb += [read.addr.eq(self.r_addr), read.en.eq(self.r_en),
                         self.r_data.eq(read.data)]
        else:
            m.submodules.ram = ram = collision_free_memory(shape=WIDTH, depth=DEPTH)
            m.d.comb += self.r_data.eq(registered_read(m, ram, self.r_addr,
                                                       enable=self.r_en, name="r_word"))
        write = ram.write_port()
        m.d.comb += [write.addr.eq(self.w_addr), write.data.eq(self.w_data),
                     write.en.eq(self.w_en)]
        return m


def _trace(plain):
    dut = _Ram(plain)
    rng = random.Random(7)
    seen = []

    async def bench(ctx):
        for _ in range(400):
            address = rng.randrange(8)   # few addresses: many collisions
            ctx.set(dut.w_addr, address if rng.random() < 0.5 else rng.randrange(8))
            ctx.set(dut.w_data, rng.getrandbits(WIDTH))
            ctx.set(dut.w_en, rng.random() < 0.6)
            ctx.set(dut.r_addr, address)
            ctx.set(dut.r_en, rng.random() < 0.8)
            await ctx.tick()
            seen.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_simulation_reads_the_old_word_like_a_sync_port():
    """In simulation a colliding read gives the old word in both forms (so a testbench
    cannot tell them apart: each user states why it never uses such a read)."""
    assert _trace(plain=False) == _trace(plain=True)


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_synthesis_drops_the_collision_emulation(family, tmp_path):
    """The plain port gets Yosys's emulation (a delayed write and a bypass multiplexer);
    the collision-free one maps to the block RAM alone but for a flag and its gates
    (the register's reset value)."""
    yosys = toolchain_env()["YOSYS"]

    def flip_flops(plain):
        name = "plain" if plain else "free"
        (tmp_path / f"{name}.il").write_text(rtlil.convert(_Ram(plain), name="top"))
        script = (f"read_rtlil {name}.il; {SCRIPT_AFTER_READ}; "
                  f"synth_{family} {SYNTH_OPTS[family]} -top top; "
                  f"tee -q -o {name}.json stat -json")
        done = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        cells = json.loads((tmp_path / f"{name}.json").read_text())["design"]["num_cells_by_type"]
        return sum(n for kind, n in cells.items() if "FF" in kind or "DFF" in kind)

    plain, free = flip_flops(True), flip_flops(False)
    assert plain >= 2 * WIDTH
    assert free <= 2
