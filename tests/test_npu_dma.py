# amaranth: UnusedElaboratable=no
"""The NPU tile with its DMA: compiled programs on Verilator against the tile model, the
memory target's backpressure, DMA errors, reset; and the DMA's parameters."""

import pytest

from chipknit.rtl.noc.transaction import TransactionParams
from chipknit.rtl.npu.array import ArrayParams
from chipknit.rtl.npu.dma import DmaParams
from chipknit.rtl.npu.engine import EngineParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run


@pytest.mark.parametrize("params", [
    {},
    # Not square, one lane, 64-bit beats (rows narrower than a beat), bursts of at most 4
    # beats, 4 tags with 3 requests in flight, a shallow command FIFO.
    {"rows": 3, "cols": 5, "lanes": 1, "a_depth": 16, "w_depth": 8, "acc_depth": 8,
     "qp_depth": 16, "data_width": 64, "length_bits": 2, "tag_bits": 2, "outstanding": 3,
     "depth": 2, "in_flight": 4},
], ids=["4x4", "3x5-64bit-short-bursts"])
def test_npu_dma(params, seed):
    result = run(get_testbench("npu_dma"), simulator="verilator", params=params, seed=seed)
    result.check()
    assert result.tests == 6


def test_dma_params_are_validated():
    with pytest.raises(ValueError, match=r"Outstanding must be an integer in \[1, 16\]"):
        DmaParams(outstanding=17)
    engine = EngineParams(array=ArrayParams(rows=16, cols=16), requant_lanes=16)
    with pytest.raises(ValueError, match="does not fit a request of 2 beats"):
        DmaParams(engine, TransactionParams(length_bits=1))


@pytest.mark.slow
def test_fabric_within_five_percent_of_the_roofline():
    """A 64³ GEMM through the DMA reaches >= 95 % of the roofline at every bandwidth of
    ``chipknit bench npu`` (design.md §3), bit-exact; ~1–4 min on Verilator."""
    from chipknit.bench.npu import utilisation_over_fabric
    figures = utilisation_over_fabric(size=64, progress=lambda text: None)
    assert figures["bit_exact"]
    for point in figures["points"]:
        assert point["bytes_moved"] == point["min_bytes"], point
        assert point["of_roofline"] >= 0.95, point


def test_dma_queue_is_validated():
    from chipknit.rtl.npu.commands import QueueParams
    with pytest.raises(ValueError, match="Dma queue must be a positive integer, not 0"):
        QueueParams(dma_queue=0)
