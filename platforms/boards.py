"""The boards chipknit builds for, and the only place that names their pins.

Each :class:`Board` wraps an amaranth-boards platform class and says how the design's status
outputs map onto the board's LEDs. :data:`BOARDS` is the registry the build flow and the
command line look names up in; :data:`DEFAULT_BOARD` is the ULX3S with the ECP5-85F.
"""

from dataclasses import dataclass

from amaranth.build import Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "BOARDS", "DEFAULT_BOARD", "get_board"]


@dataclass(frozen=True)
class Board:
    """One FPGA board.

    Parameters
    ----------
    name : str
        Registry name (``--board``).
    platform : type
        The amaranth-boards :class:`~amaranth.build.Platform` subclass.
    family : str
        ``"ecp5"`` or ``"ice40"``: selects synthesis options and how the nextpnr report is
        read.
    device : str
        Part number as the platform names it (``LFE5U-85F``, ``iCE40UP5K``).
    package : str
        Package as the platform names it.
    clock_hz : float
        Frequency of the board's default clock, the ``sync`` domain of the design; also the
        timing constraint nextpnr is given.
    leds : tuple of (str, str, int)
        ``(design port, resource name, resource number)``: which output of the design lights
        which LED. Ports the design does not have are left unconnected.
    description : str
        One line for summaries.
    extra_resources : tuple
        Resources added to the platform before the build (e.g. the iCEBreaker's snap-off
        PMOD with its LEDs, which amaranth-boards keeps apart).
    """
    name: str
    platform: type
    family: str
    device: str
    package: str
    clock_hz: float
    leds: tuple[tuple[str, str, int], ...]
    description: str = ""
    extra_resources: tuple = ()

    def __post_init__(self):
        if not (isinstance(self.platform, type) and issubclass(self.platform, Platform)):
            raise TypeError(f"Board platform must be a Platform subclass, not {self.platform!r}")
        if self.family not in ("ecp5", "ice40"):
            raise ValueError(f"Board family must be 'ecp5' or 'ice40', not {self.family!r}")

    @property
    def clock_mhz(self) -> float:
        return self.clock_hz / 1e6

    def make_platform(self) -> Platform:
        """A fresh platform instance (a platform can prepare only one design)."""
        platform = self.platform()
        if self.extra_resources:
            platform.add_resources(list(self.extra_resources))
        return platform


def _board(name, platform, family, leds, description, extra_resources=()):
    # Device, package and clock come from the platform class itself, so they cannot drift
    # from what Amaranth hands to nextpnr.
    default_clk = platform().lookup(platform.default_clk)
    return Board(
        name=name,
        platform=platform,
        family=family,
        device=platform.device,
        package=platform.package,
        clock_hz=float(default_clk.clock.frequency),
        leds=tuple(leds),
        description=description,
        extra_resources=tuple(extra_resources),
    )


BOARDS: dict[str, Board] = {
    "ulx3s": _board(
        "ulx3s", ULX3S_85F_Platform, "ecp5",
        # LEDs D0, D1, D2 (the row of eight next to the buttons).
        leds=[("ok", "led", 0), ("error", "led", 1), ("heartbeat", "led", 2)],
        description="Radiona ULX3S, Lattice ECP5 LFE5U-85F, 25 MHz clock",
    ),
    "icebreaker": _board(
        "icebreaker", ICEBreakerPlatform, "ice40",
        # The main board has one green and one red LED; the heartbeat goes to LED1 of the
        # snap-off PMOD (PMOD 2), which is still attached when the board ships.
        leds=[("ok", "led_g", 0), ("error", "led_r", 0), ("heartbeat", "led_g", 1)],
        description="1BitSquared iCEBreaker, Lattice iCE40UP5K, 12 MHz clock",
        extra_resources=ICEBreakerPlatform.break_off_pmod,
    ),
}

DEFAULT_BOARD = "ulx3s"


def get_board(name: str | Board = DEFAULT_BOARD) -> Board:
    """Look a board up by name (a :class:`Board` is returned as it is)."""
    if isinstance(name, Board):
        return name
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None
