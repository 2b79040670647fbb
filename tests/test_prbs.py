"""PRBS generator and checker against the reference model, in Amaranth's simulator."""

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.prbs import PrbsChecker, PrbsGenerator, PrbsParams
from chipknit.tb.models.prbs import PRBS_POLYNOMIALS, prbs_bits, prbs_words


@pytest.mark.parametrize("order", [7, 9, 15])
def test_model_is_maximal_length(order):
    """An m-sequence of order n shows every non-zero n-bit window exactly once per period."""
    period = (1 << order) - 1
    bits = prbs_bits(order, seed=1, count=period + order - 1)
    windows = {tuple(bits[i:i + order]) for i in range(period)}
    assert len(windows) == period
    assert (0,) * order not in windows


def test_hardware_taps_match_model():
    from chipknit.rtl.prbs import PRBS_TAPS
    assert PRBS_TAPS == PRBS_POLYNOMIALS


@pytest.mark.parametrize("width,order,seed", [(1, 7, 1), (8, 7, 0x5A), (32, 31, 1),
                                              (13, 23, 12345)])
def test_generator_matches_model_under_backpressure(width, order, seed):
    dut = PrbsGenerator(PrbsParams(width=width, order=order, seed=seed))
    expected = prbs_words(order, seed, width, 40)
    got = []

    async def bench(ctx):
        ctx.set(dut.enable, 1)
        cycle = 0
        while len(got) < len(expected):
            ready = cycle % 3 != 1
            ctx.set(dut.o.ready, ready)
            if ready and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected


def test_checker_counts_words_and_errors():
    params = PrbsParams(width=16, order=15, seed=7)
    dut = PrbsChecker(params)
    words = prbs_words(15, 7, 16, 30)
    corrupt = {5, 17}

    async def bench(ctx):
        for index, word in enumerate(words):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, word ^ (0x100 if index in corrupt else 0))
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
            await ctx.tick()
        assert ctx.get(dut.words) == len(words)
        assert ctx.get(dut.errors) == len(corrupt)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_params_are_validated():
    with pytest.raises(ValueError, match="PRBS order must be one of"):
        PrbsParams(order=8)
    with pytest.raises(ValueError, match="Seed must be non-zero"):
        PrbsParams(order=7, seed=0)
    with pytest.raises(ValueError, match="Width must be a positive integer"):
        PrbsParams(width=0)
