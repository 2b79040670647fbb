"""The link self-test on a board's header pins: one die's end of a board-to-board link.

``chipknit build --design link-end`` builds it (ULX3S). A :class:`~chipknit.rtl.link.
end_selftest.LinkEndSelfTest` drives a :class:`~chipknit.rtl.link.phy_ddr.DdrPhy` on the
pins of :data:`~.pinmaps.LINK_PINS`; the LEDs say ``ok`` (flits arrive on every VC, none
lost, duplicated or corrupted), ``error`` (a checker saw a bad flit) and ``heartbeat``.
"""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import wiring

from chipknit.rtl.link.end_selftest import LinkEndParams, LinkEndSelfTest
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.link.phy_ddr import DdrPhy, DdrPhyParams

from .boards import Board
from .pinmaps import link_pin_map, request_link_pins

__all__ = ["LinkEndBoard", "link_end_top"]


class LinkEndBoard(Elaboratable):
    """:class:`LinkEndSelfTest` on the DDR PHY and the header pins of ``board``."""

    def __init__(self, board: Board):
        self.board = board
        self.pin_map = link_pin_map(board.name)
        lanes = LaneParams(lanes=self.pin_map.lanes, bits_per_lane=2)
        self.params = LinkEndParams(lanes=lanes)
        self.selftest = LinkEndSelfTest(self.params)
        self.ok, self.error, self.heartbeat = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.selftest = end = self.selftest
        pins = request_link_pins(platform, self.board.name,
                                 rx_clock_hz=self.board.clock_mhz * 1e6)
        m.submodules.phy = phy = DdrPhy(DdrPhyParams(self.params.lanes, shared_valid=True),
                                        pins)
        wiring.connect(m, end.lanes_tx, phy.tx)
        wiring.connect(m, phy.rx, end.lanes_rx)
        m.d.comb += [self.ok.eq(end.ok), self.error.eq(end.error),
                     self.heartbeat.eq(end.heartbeat)]
        return m


def link_end_top(board: Board) -> Elaboratable:
    return LinkEndBoard(board)
