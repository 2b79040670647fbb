"""Formal checks (SymbiYosys, bounded from reset) of the NPU tile's control on a small
configuration: the command queue never loses or reorders a command, and the DMA never
writes a scratchpad row outside the LOAD that asked for it. Each also fails on a broken
block, so the properties can fail."""

import pytest
from amaranth.hdl import Assert

from chipknit.tb.formal import FormalCheck, check
from chipknit.tb.properties_npu import DmaWriteRangeProperties, QueueOrderProperties

CHECKS = [
    FormalCheck("npu_queue_order", QueueOrderProperties, mode="bmc", depth=16,
                engine="smtbmc yices",
                description="statuses in command order, one per command, none lost; "
                            "LOADs reach the DMA only within their scratchpad"),
    FormalCheck("npu_dma_write_range", DmaWriteRangeProperties, mode="bmc", depth=10,
                engine="smtbmc yices",
                description="every scratchpad write is inside its LOAD's rows"),
]


@pytest.mark.parametrize("formal", CHECKS, ids=lambda formal: formal.name)
def test_bounded_proof(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]


class BrokenQueueProperties(QueueOrderProperties):
    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += Assert(~m.submodules.queue.status.valid)   # a false property
        return m


@pytest.mark.parametrize("name,design", [
    ("dma_without_range_check",
     lambda: DmaWriteRangeProperties(queue_range_check=False)),
    ("false_property", BrokenQueueProperties),
])
def test_npu_checks_can_fail(name, design):
    result = check(FormalCheck(f"must_fail_npu_{name}", design, mode="bmc", depth=10,
                               engine="smtbmc yices"))
    assert result.status == "FAIL", result.summary()
    assert result.traces, "a failed check must leave a counterexample trace"
