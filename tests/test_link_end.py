# amaranth: UnusedElaboratable=no
"""The board link self-test: its status outputs in simulation, its parameters, its lint."""

import pytest

from chipknit.rtl.link.end_selftest import LinkEndParams
from chipknit.rtl.link.frame import LinkParams
from chipknit.rtl.link.lanes import LaneParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run

BENCH = get_testbench("link_end")


def test_link_end_loopback(seed):
    run(BENCH, simulator="verilator", seed=seed).check()



@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": LaneParams(4, 2)}, "A 16-bit beat does not fill 4 lanes × 2 bits"),
    ({"idle_period": 1}, "would never send a beat"),
    ({"idle_period": -1}, "non-negative integer"),
    ({"link": 3}, "must be a LinkParams"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        LinkEndParams(**kwargs)


def test_default_link_is_the_efficient_one():
    assert LinkEndParams().link == LinkParams()


def test_pin_maps_are_checked():
    from amaranth.build import Attrs

    from chipknit.platforms.pinmaps import LinkPinMap
    common = dict(board="x", connector=("gpio", 0), tx_valid="8", tx_clk="9", rx_valid="10",
                  rx_clk="11", attrs=Attrs())
    with pytest.raises(ValueError, match="tx_data names 1 pins for 2 lanes"):
        LinkPinMap(lanes=2, tx_data="0", rx_data="1 2", **common)
    with pytest.raises(ValueError, match="a pin is used twice"):
        LinkPinMap(lanes=1, tx_data="0", rx_data="0", **common)


def test_link_end_board_prepares_on_ulx3s():
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.pinmaps import LINK_PINS
    from chipknit.platforms.top import DESIGNS, BoardTop, make_design

    board = get_board("ulx3s")
    platform = board.make_platform()
    design = make_design(DESIGNS["link-end"], board)
    plan = platform.prepare(BoardTop(board, design), name="link_end")
    rtlil = "".join(text if isinstance(text, str) else text.decode()
                    for name, text in plan.files.items() if name.endswith(".il"))
    assert "ODDRX1F" in rtlil and "IDDRX1F" in rtlil
    lpf = "".join(text if isinstance(text, str) else text.decode()
                  for name, text in plan.files.items() if name.endswith(".lpf"))
    lanes = LINK_PINS["ulx3s"].lanes
    assert lpf.count("link_0__") >= 2 * (lanes + 2), lpf


def test_link_end_needs_a_pin_map():
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.link_end import LinkEndBoard
    with pytest.raises(ValueError, match="No link pin map for board 'icebreaker'"):
        LinkEndBoard(get_board("icebreaker"))


@pytest.mark.slow
def test_link_end_builds_for_ulx3s(tmp_path):
    from chipknit.platforms.build import build
    from chipknit.platforms.top import DESIGNS
    result = build("ulx3s", build_dir=tmp_path, top=DESIGNS["link-end"], progress=None)
    report = result.report
    assert report["luts"] > 1000
    clocks = report["fmax_mhz"]
    assert clocks["sync"] >= 25, clocks
