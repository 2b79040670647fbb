# amaranth: UnusedElaboratable=no
"""The DDR PHY elaborates and converts on the ECP5 and iCE40 platforms, with its pins on a
header connector, and instantiates the vendor DDR primitives.

Not simulated: Amaranth's DDR buffers have no simulation model. See rtl/link/phy_ddr.py for
what is and is not verified.
"""

import pytest
from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from chipknit.platforms.boards import get_board
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.link.phy_ddr import DdrPhy, DdrPhyParams, DdrPhyPins

# Test fixture pin maps: which header pins one end of the link uses on each board. (The
# project's pin assignments belong in platforms/; these are only for the conversion test.)
LINK_PINS = {
    # ULX3S: 4 lanes on the GPIO header's gp0..gp5 / gn0..gn5.
    "ulx3s": dict(board="ulx3s", lanes=4, conn=("gpio", 0), attrs=Attrs(IO_TYPE="LVCMOS33"),
                  tx_data="0+ 1+ 2+ 3+", tx_valid="4+", tx_clk="5+",
                  rx_data="0- 1- 2- 3-", rx_valid="4-", rx_clk="5-"),
    # iCEBreaker: 2 lanes on PMOD 1A (connector pmod 0).
    "icebreaker": dict(board="icebreaker", lanes=2, conn=("pmod", 0),
                       attrs=Attrs(IO_STANDARD="SB_LVCMOS"),
                       tx_data="1 2", tx_valid="3", tx_clk="4",
                       rx_data="7 8", rx_valid="9", rx_clk="10"),
}
PRIMITIVES = {"ulx3s": ("ODDRX1F", "IDDRX1F"), "icebreaker": ("SB_IO",)}
NAMES = ("tx_data", "tx_valid", "tx_clk", "rx_data", "rx_valid", "rx_clk")


class PhyTop(Elaboratable):
    """The PHY on a board: a counter into tx, rx and the overflow count onto an LED."""

    def __init__(self, pins):
        self.pins = pins
        self.ok = Signal()

    def elaborate(self, platform):
        m = Module()
        lanes = self.pins["lanes"]
        link = platform.request("link", 0, dir={name: "-" for name in NAMES})
        m.submodules.phy = phy = DdrPhy(
            DdrPhyParams(LaneParams(lanes=lanes, bits_per_lane=2)),
            DdrPhyPins(**{name: getattr(link, name) for name in NAMES}))
        count = Signal(2 * lanes)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [phy.tx.data.eq(count), phy.tx.valid.eq(-1)]
        m.d.sync += self.ok.eq(phy.rx.data.xor() ^ phy.rx.valid.xor() ^ phy.rx_overflows.xor())
        _, resource, number = get_board(self.pins["board"]).leds[0]
        m.submodules.led = led = io.Buffer("o", platform.request(resource, number, dir="-"))
        m.d.comb += led.o.eq(self.ok)
        return m


def _link_resource(pins):
    conn = pins["conn"]
    return Resource("link", 0, *[Subsignal(name, Pins(pins[name], dir="io", conn=conn))
                                 for name in NAMES], pins["attrs"])


@pytest.mark.parametrize("board_name", ["ulx3s", "icebreaker"])
def test_phy_elaborates_and_converts(board_name, tmp_path):
    board = get_board(board_name)
    platform = board.make_platform()
    pins = LINK_PINS[board_name]
    platform.add_resources([_link_resource(pins)])
    plan = platform.prepare(PhyTop(pins), name="phy")
    rtlil = plan.files["phy.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    for primitive in PRIMITIVES[board_name]:
        assert primitive in rtlil, f"{primitive} not instantiated on {board_name}"
    if board_name == "icebreaker":
        # DDR output (PIN_TYPE 0b0100xx) and DDR input (0bxxxx00) modes of SB_IO.
        assert "PIN_TYPE" in rtlil
    # Every pin of the resource is constrained.
    constraints = "".join(text if isinstance(text, str) else text.decode()
                          for name, text in plan.files.items()
                          if name.endswith((".lpf", ".pcf")))
    assert constraints.count("link_0__") >= 2 * pins["lanes"] + 4, constraints


@pytest.mark.parametrize("kwargs,message", [
    ({"lane_params": LaneParams(4, 1)}, "A DDR PHY carries 2 bits per lane per cycle, not 1"),
    ({"fifo_depth": 6}, "FIFO depth must be a power of two of at least 4, not 6"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DdrPhyParams(**kwargs)
