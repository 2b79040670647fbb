# amaranth: UnusedElaboratable=no
"""A package split one die per chip: each die's top alone (what ``chipknit build --die N``
builds), its cut links' ends, and the dies joined by interposers end to end (cocotb,
Verilator)."""

import pytest
from amaranth.back import rtlil

from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.package.config import Package
from chipknit.rtl.package.link_end import PackageLinkEnd, cut_link_params, package_link_end
from chipknit.rtl.package.split import SplitPackage
from chipknit.rtl.package.top import PackageTop
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run

BENCH = get_testbench("package_split")
DEFAULT_TESTS = ("trains_through_skew_and_dead_lanes|die_reset_mid_transfer|"
                 "far_die_powered_later|lanes_beyond_repair|errors_on_the_trained_link")


@pytest.mark.heavy(55)
@pytest.mark.timeout(1800)
def test_split_package(seed):
    """The minimal package split in two: training, a die reset, the far die powered late,
    dead lanes beyond repair (half width, then a training failure), bit errors."""
    run(BENCH, simulator="verilator", seed=seed, testcase=DEFAULT_TESTS).check()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_split_default_package_gemm(seed):
    """The default package split in two (what two ULX3S boards run): GEMMs on die 1's NPUs
    with operands in die 0's memory, over the trained link. (The die-reset tests reset the
    memory's die, which on ``default`` is the host's own: they run on ``minimal``.)"""
    run(BENCH, simulator="verilator", seed=seed, params={"package": "default"},
        testcase="gemm_over_the_trained_link").check()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_split_default_package_npu_die_reset(seed):
    """The default package split in two: die 1 (the NPUs' die) is held in reset in the
    middle of a GEMM; the host's call ends in a counted ``TIMEOUT``, the link retrains and
    a fresh GEMM on the same NPU is exact."""
    run(BENCH, simulator="verilator", seed=seed, params={"package": "default"},
        testcase="npu_die_reset_mid_gemm").check()


@pytest.mark.parametrize("name", ["default", "minimal", "four_die"])
def test_each_die_alone_converts(name):
    """Every die of the shipped multi-die packages elaborates alone to RTLIL, its cut links'
    lanes on the top, its counters bank listing the cut links' training registers."""
    package = Package.named(name)
    for die in package.dies:
        top = PackageTop(package, dies={die.number})
        cut = [i for i, link in enumerate(package.links) if die.number in (link.a.die, link.b.die)]
        assert sorted(top.cut) == cut
        for index in cut:
            assert f"link{index}_lanes_tx" in top.signature.members
        assert "link_error_threshold" in top.signature.members
        if any(t.kind == "counters" and t.die == die.number for t in package.tiles):
            names = [r.name for r in top.registers(die.number)]
            for index in cut:
                assert {f"link{index}_{name}" for name in (
                    "state", "lane_map", "mode", "retrains", "training_errors",
                    "link_resets", "lost_flits")} <= set(names)
                assert f"link{index}_bit_errors" not in names
        assert ("host_rx" in top.signature.members) == any(
            t.kind == "host_bridge" and t.die == die.number for t in package.tiles)
        if name != "four_die":
            rtlil.convert(top)


def test_split_tops_refuse_unknown_dies():
    package = Package.named("minimal")
    with pytest.raises(ValueError, match="has dies 0, 1, not \\[7\\]"):
        PackageTop(package, dies={7})
    with pytest.raises(ValueError, match="has dies 0, 1, not \\[\\]"):
        PackageTop(package, dies=())
    top = PackageTop(package, dies={0})
    with pytest.raises(ValueError, match="Die 1 is not built here"):
        top.registers(1)
    assert all(name.startswith("die0.") for name in top.counter_map())


def test_link_end_params():
    package = Package.named("default")
    params = cut_link_params(package, LaneParams(10, 2))
    # 8 of 10 DDR lanes carry a 16-bit beat, 2 spares; a 34-bit NoC flit takes 3 beats.
    assert (params.link.beat_width, params.link.flit_width, params.repair_lanes) == (16, 48, 2)
    with pytest.raises(ValueError, match="Repair lanes must be in"):
        cut_link_params(package, LaneParams(4, 2), repair_lanes=4)
    with pytest.raises(ValueError, match="has no single end on die 0"):
        PackageLinkEnd(Package.named("four_die"), 2, 0, params)
    factory = package_link_end(LaneParams(10, 2))
    end = factory(package, 0, 1)
    assert (end.side, end.end.die) == ("b", 1)


def test_split_package_answers_like_the_package():
    package = Package.named("minimal")
    split, whole = SplitPackage(package), PackageTop(package)
    assert split.map == whole.map
    assert split.region("memory") == whole.region("memory")
    assert set(split.counter_map()) >= {"die0.link0_state", "die1.link0_state",
                                        "die1.memory_errors", "die0.host_ni_timeouts"}
