"""The stream register slice: cocotb scoreboard tests on both simulators."""

import pytest

from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run

BENCH = get_testbench("register_slice")


@pytest.mark.parametrize("simulator,width", [("icarus", 36), ("verilator", 1),
                                             ("verilator", 70)])
def test_register_slice(simulator, width, seed):
    result = run(BENCH, simulator=simulator, params={"width": width}, seed=seed)
    result.check()
    assert result.tests == 5
