# amaranth: UnusedElaboratable=no
"""CycleTimer: ``expiring`` is high exactly in the cycle the count reaches ``limit - 1``,
whatever mix of steps, holds and restarts led there."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from chipknit.rtl.timer import CycleTimer


@pytest.mark.parametrize("limit", [1, 2, 5, 16])
def test_expiring_matches_the_count(limit):
    m = Module()
    do_step, do_restart = Signal(), Signal()
    timer = CycleTimer(m, "t", limit)
    with m.If(do_restart):
        timer.restart()
    with m.Elif(do_step):
        timer.step()
    checked = []

    async def bench(ctx):
        rng = random.Random(limit)
        count = 0
        for _ in range(400):
            assert ctx.get(timer.count) == count
            assert ctx.get(timer.expiring) == (count == limit - 1), (count, limit)
            checked.append(count == limit - 1)
            restart = rng.random() < 0.05 or count == limit - 1
            step = rng.random() < 0.7
            ctx.set(do_restart, restart)
            ctx.set(do_step, step)
            await ctx.tick()
            count = 0 if restart else count + 1 if step else count

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert any(checked) and not all(checked) or limit == 1


def test_limit_is_checked():
    with pytest.raises(ValueError, match="positive integer"):
        CycleTimer(Module(), "t", 0)
