"""What every cocotb test module needs: parameters, clock and reset."""

import json
import os

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from .harness import PARAMS_ENV

__all__ = ["design_params", "start_clock", "reset", "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 10


def design_params() -> dict:
    """The parameters the harness built the design with."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


def start_clock(dut, period_ns: int = CLOCK_PERIOD_NS) -> None:
    Clock(dut.clk, period_ns, unit="ns").start()


async def reset(dut, cycles: int = 2) -> None:
    """Hold Amaranth's synchronous ``rst`` for ``cycles`` rising edges."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
