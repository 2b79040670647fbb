"""Where a die-to-die link leaves a board: header pins for the DDR lanes.

One die per board puts the link's lanes on a header (:class:`~chipknit.rtl.link.phy_ddr.
DdrPhy`: data lanes, a valid and a forwarded clock per direction). :data:`LINK_PINS` says
which pins, per board. A board wired to itself with a loopback cable (each transmit pin to
its receive pin) tests its own link; two boards wired crosswise form a two-die package.
"""

from dataclasses import dataclass

from amaranth.build import Attrs, Clock, Pins, Resource, Subsignal

from chipknit.rtl.link.phy_ddr import DdrPhyPins

__all__ = ["LinkPinMap", "LINK_PINS", "DIE_LINK_PINS", "PIN_NAMES", "link_pin_map",
           "die_link_pin_map", "request_link_pins"]

PIN_NAMES = ("tx_data", "tx_valid", "tx_clk", "rx_data", "rx_valid", "rx_clk")


@dataclass(frozen=True)
class LinkPinMap:
    """The pins of one link end on one board.

    Parameters
    ----------
    board : str
        Board name (:data:`~chipknit.platforms.boards.BOARDS`).
    connector : (str, int)
        The header, as amaranth-boards names it.
    lanes : int
        Data lanes each way (2 bits per lane per core cycle on DDR pins).
    tx_data, tx_valid, tx_clk, rx_data, rx_valid, rx_clk : str
        Connector pin names, space separated (``lanes`` of them for data).
    attrs : Attrs
        I/O standard of every pin.
    cabling : str
        How to wire a loopback and a board-to-board cable, for the docs.
    repair_lanes : int
        Of ``lanes``, how many are spares a link trainer maps in for dead ones.
    """
    board: str
    connector: tuple[str, int]
    lanes: int
    tx_data: str
    tx_valid: str
    tx_clk: str
    rx_data: str
    rx_valid: str
    rx_clk: str
    attrs: Attrs
    cabling: str = ""
    repair_lanes: int = 0

    def __post_init__(self):
        if not isinstance(self.repair_lanes, int) or not 0 <= self.repair_lanes < self.lanes:
            raise ValueError(f"{self.board}: repair lanes must be in [0, {self.lanes}), not "
                             f"{self.repair_lanes!r}")
        for name in ("tx_data", "rx_data"):
            if len(getattr(self, name).split()) != self.lanes:
                raise ValueError(f"{self.board}: {name} names "
                                 f"{len(getattr(self, name).split())} pins for "
                                 f"{self.lanes} lanes")
        pins = [pin for name in PIN_NAMES for pin in getattr(self, name).split()]
        if len(set(pins)) != len(pins):
            raise ValueError(f"{self.board}: a pin is used twice in the link pin map")

    def resource(self, number: int = 0, rx_clock_hz: float | None = None) -> Resource:
        """The link as one resource; ``rx_clock_hz`` (the far end's core clock) constrains
        the forwarded receive clock pin for timing."""
        def subsignal(name):
            pins = Pins(getattr(self, name), dir="io", conn=self.connector)
            if name == "rx_clk" and rx_clock_hz:
                return Subsignal(name, pins, Clock(rx_clock_hz))
            return Subsignal(name, pins)
        return Resource("link", number, *[subsignal(name) for name in PIN_NAMES], self.attrs)


LINK_PINS: dict[str, LinkPinMap] = {
    # ULX3S: the GPIO header's differential pairs gpN/gnN sit side by side, so a loopback
    # is ten jumpers gpN-gnN, N = 0..9; two boards: gpN of one to gnN of the other.
    "ulx3s": LinkPinMap(
        board="ulx3s", connector=("gpio", 0), lanes=8,
        tx_data="0+ 1+ 2+ 3+ 4+ 5+ 6+ 7+", tx_valid="8+", tx_clk="9+",
        rx_data="0- 1- 2- 3- 4- 5- 6- 7-", rx_valid="8-", rx_clk="9-",
        attrs=Attrs(IO_TYPE="LVCMOS33", DRIVE="8"),
        cabling="loopback: jumper gpN to gnN for N = 0..9; two boards: gpN of each to gnN of "
                "the other, and ground to ground",
    ),
}


#: The die link of a package split one die per board (``chipknit build --die N``): 8 lanes
#: carry a 16-bit DDR beat and 2 spares let the trainer map out up to 2 dead lanes.
DIE_LINK_PINS: dict[str, LinkPinMap] = {
    # ULX3S: gpN (transmit) and gnN (receive), N = 0..12, on the GPIO header.
    "ulx3s": LinkPinMap(
        board="ulx3s", connector=("gpio", 0), lanes=10, repair_lanes=2,
        tx_data="0+ 1+ 2+ 3+ 4+ 5+ 6+ 7+ 8+ 9+", tx_valid="10+", tx_clk="11+",
        rx_data="0- 1- 2- 3- 4- 5- 6- 7- 8- 9-", rx_valid="10-", rx_clk="11-",
        attrs=Attrs(IO_TYPE="LVCMOS33", DRIVE="8"),
        cabling="two boards: gpN of each to gnN of the other for N = 0..11, and ground to "
                "ground",
    ),
}


def _pin_map(table: dict, what: str, board: str) -> LinkPinMap:
    try:
        return table[board]
    except KeyError:
        raise ValueError(f"No {what} pin map for board {board!r}; boards with one: "
                         f"{', '.join(sorted(table))}") from None


def die_link_pin_map(board: str) -> LinkPinMap:
    """``board``'s pin map for a package's die link (:data:`DIE_LINK_PINS`)."""
    return _pin_map(DIE_LINK_PINS, "die link", board)


def link_pin_map(board: str) -> LinkPinMap:
    """``board``'s pin map for the link end (:data:`LINK_PINS`)."""
    return _pin_map(LINK_PINS, "link", board)


def request_link_pins(platform, board: str, number: int = 0,
                      pin_map: LinkPinMap | None = None,
                      rx_clock_hz: float | None = None) -> DdrPhyPins:
    """Add the link resource for ``board`` (``pin_map``, default :data:`LINK_PINS`'s) to
    ``platform`` and request its pins; ``rx_clock_hz`` constrains the receive clock."""
    pin_map = pin_map or link_pin_map(board)
    platform.add_resources([pin_map.resource(number, rx_clock_hz)])
    link = platform.request("link", number, dir={name: "-" for name in PIN_NAMES})
    return DdrPhyPins(**{name: getattr(link, name) for name in PIN_NAMES})
