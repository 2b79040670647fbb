"""Board tops: a design plus the board's clock and LEDs.

A design plugs in through a *top factory*, a callable that takes the :class:`Board` and
returns an Amaranth elaboratable. The design runs in the ``sync`` domain, which the platform
drives from the board's default clock unless the design makes its own (the package's PLL,
:mod:`.clocks`), and follows the status-port convention of
the self-test: any of the 1-bit outputs ``ok``, ``error`` and ``heartbeat`` it has go to the
board's LEDs (see :data:`~chipknit.platforms.boards.BOARDS`); other ports stay inside the
FPGA. A design must drive at least one LED, or synthesis would remove all of it.
"""

from collections.abc import Callable

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from chipknit.rtl.credit import CreditParams
from chipknit.rtl.selftest import CreditSelfTest, SelfTestParams

from .boards import Board
from .link_end import link_end_top
from .package_board import package_top

__all__ = ["BoardTop", "TopFactory", "default_top", "selftest_top", "small_top",
           "package_default_top", "make_design", "DESIGNS", "DEFAULT_DESIGNS"]

TopFactory = Callable[[Board], Elaboratable]


def package_default_top(board: Board) -> Elaboratable:
    """The board's package in one FPGA (:mod:`.package_board`: the default package, the
    ``icebreaker`` one on the iCEBreaker) at the board's default core clock."""
    return package_top()(board)


def selftest_top(board: Board) -> Elaboratable:
    """The credit-channel self-test with default parameters."""
    return CreditSelfTest()


def small_top(board: Board) -> Elaboratable:
    """A small real design for quick place-and-route checks: the self-test, 8-bit flits."""
    return CreditSelfTest(SelfTestParams(credit=CreditParams(payload_width=8, depth=4)))


#: Designs ``chipknit build --design`` can build, by name.
DESIGNS: dict[str, TopFactory] = {
    # The board's package (rtl/package/configs/default.toml; icebreaker.toml on the
    # iCEBreaker) with its host bridge on the board's UART; ``--package`` picks another.
    "package": package_default_top,
    "selftest": selftest_top,
    "selftest-small": small_top,
    # One end of a board-to-board link on the header pins (ULX3S; see pinmaps.py).
    "link-end": link_end_top,
}

#: The design each board builds by default: its package (the iCEBreaker's is the small
#: ``icebreaker`` one, :data:`~.package_board.BOARD_PACKAGES`).
DEFAULT_DESIGNS: dict[str, str] = {"ulx3s": "package", "icebreaker": "package"}


def default_top(board: Board) -> Elaboratable:
    """The board's default design (:data:`DEFAULT_DESIGNS`)."""
    return DESIGNS[DEFAULT_DESIGNS.get(board.name, "selftest")](board)


def make_design(top: Elaboratable | TopFactory | None, board: Board) -> Elaboratable:
    """The design for ``board``: ``top`` itself if it is an elaboratable, else ``top(board)``;
    :func:`default_top` when ``top`` is None."""
    if top is None:
        top = default_top
    if isinstance(top, Elaboratable):
        return top
    if callable(top):
        design = top(board)
        if not isinstance(design, Elaboratable):
            raise TypeError(f"Top factory {top!r} returned {design!r}, not an Elaboratable")
        return design
    raise TypeError(f"top must be an Elaboratable or a callable(board), not {top!r}")


class BoardTop(Elaboratable):
    """``design`` with its status outputs on the LEDs of ``board``."""

    def __init__(self, board: Board, design: Elaboratable):
        self.board = board
        self.design = design
        self.connected = tuple(port for port, _, _ in board.leds if hasattr(design, port))
        if not self.connected:
            ports = ", ".join(port for port, _, _ in board.leds)
            raise ValueError(
                f"Design {type(design).__name__} has none of the LED outputs ({ports}); "
                f"synthesis would remove it entirely")

    def elaborate(self, platform):
        m = Module()
        m.submodules.design = self.design
        for port, resource, number in self.board.leds:
            if port not in self.connected:
                continue
            signal = getattr(self.design, port)
            if len(signal) != 1:
                raise ValueError(f"LED output {port!r} must be 1 bit wide, not {len(signal)}")
            led = io.Buffer("o", platform.request(resource, number, dir="-"))
            m.submodules[f"led_{port}"] = led
            m.d.comb += led.o.eq(signal)
        return m
