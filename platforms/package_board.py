"""A whole package in one FPGA: the dies, the interposer model between them, the host
bridge on the board's UART.

``chipknit build`` with no design builds the default package this way (issue 7, design
§4): :class:`~chipknit.rtl.package.top.PackageTop` of a package config, its host bridge's
byte streams on a :class:`~chipknit.rtl.host.uart.UartRx`/:class:`~chipknit.rtl.host.uart.
UartTx` pair on the board's USB UART (the ULX3S's FTDI, the iCEBreaker's FT2232H channel
B), at the host bridge tile's ``baud`` (default 115200, 8N1). The host API
(:class:`chipknit.host.Host`) talks to it over pyserial.

The core clock is the board's oscillator, or with ``clock_mhz`` an ECP5 PLL
(:class:`~.clocks.Ecp5Pll`) making that frequency; the build's timing constraint is the
frequency the design runs at. The die links' interposer models run error-free
(``ber``: a constant bit error rate on every lane, for a board demo of replays).

LEDs: ``ok`` while the UART has seen no framing error or overrun, ``error`` once it has,
``heartbeat`` blinks at about 1.5 Hz (the core clock is running and out of reset).
"""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from chipknit.rtl.host.uart import UartParams, UartRx, UartTx
from chipknit.rtl.package.config import Package
from chipknit.rtl.package.top import PackageTop

from .boards import Board
from .clocks import Ecp5Pll

__all__ = ["PackageBoard", "package_top", "PACKAGE_CLOCK_MHZ"]

#: Baud rate of the host UART when the host bridge tile does not give one.
DEFAULT_BAUD = 115200

#: Core clock of a package per board from a PLL (MHz) when none is asked for; a board not
#: listed runs the package at its oscillator. Chosen from measured builds (docs/build.md).
PACKAGE_CLOCK_MHZ: dict[str, float] = {}


class PackageBoard(Elaboratable):
    """``package`` on ``board``, its host bridge on the board's UART.

    Parameters
    ----------
    board : Board
    package : Package
        Must have a host bridge tile.
    clock_mhz : float, optional
        Core clock from a PLL (ECP5 boards only); default the board's entry in
        :data:`PACKAGE_CLOCK_MHZ`, else its oscillator.
    ber : float
        Bit error rate the interposer models inject on every lane (0: none).

    Attributes
    ----------
    params : dict
        What the build report records as the design's parameters.
    """

    def __init__(self, board: Board, package: Package, *, clock_mhz: float | None = None,
                 ber: float = 0.0):
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        hosts = [tile for tile in package.tiles if tile.kind == "host_bridge"]
        if not hosts:
            raise ValueError(f"Package {package.name!r} has no host_bridge tile, so a board "
                             f"build could not reach it")
        if board.family == "ice40":
            raise ValueError(f"{board.name}'s {board.device} cannot hold a package: one link "
                             f"adapter alone takes ~3400 LUT4 of its 5280 (docs/build.md); "
                             f"build a package for an ECP5 board")
        if clock_mhz is None:
            clock_mhz = PACKAGE_CLOCK_MHZ.get(board.name)
        if clock_mhz is not None and board.family != "ecp5":
            raise ValueError(f"A PLL core clock is built for ECP5 boards only; {board.name} "
                             f"runs at its {board.clock_mhz:g} MHz oscillator")
        if not 0.0 <= ber < 1.0:
            raise ValueError(f"Bit error rate must be in [0, 1), not {ber!r}")
        self.board, self.package, self.ber = board, package, ber
        self.clock_mhz = board.clock_mhz if clock_mhz is None else clock_mhz
        self.pll = clock_mhz is not None
        self.baud = hosts[0].params.get("baud", DEFAULT_BAUD)
        self.uart = UartParams.from_baud(self.clock_mhz * 1e6, self.baud)
        self.top = PackageTop(package)
        self.params = {"package": package.name, "clock_mhz": self.clock_mhz,
                       "baud": self.baud, "uart_divisor": self.uart.divisor, "ber": ber}
        self.ok, self.error, self.heartbeat = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        if self.pll:
            clk = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk)
            m.submodules.pll = Ecp5Pll(clk_buffer.i, self.board.clock_mhz, self.clock_mhz)

        m.submodules.package = top = self.top
        m.submodules.uart_rx = uart_rx = UartRx(self.uart)
        m.submodules.uart_tx = uart_tx = UartTx(self.uart)
        if platform is not None:
            pins = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
            m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
            m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
            m.d.comb += [uart_rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(uart_tx.tx)]
        wiring.connect(m, uart_rx.o, top.host_rx)
        wiring.connect(m, top.host_tx, uart_tx.i)
        m.d.comb += [top.host_framing_errors.eq(uart_rx.framing_errors),
                     top.host_overruns.eq(uart_rx.overruns)]
        threshold = min(round(self.ber * 2**32), 2**32 - 1)
        for index in range(len(self.package.links)):
            m.d.comb += top.link_error_threshold[index].eq(threshold)

        m.d.comb += self.error.eq((uart_rx.framing_errors != 0) | (uart_rx.overruns != 0))
        m.d.comb += self.ok.eq(~self.error)
        blink = Signal(range(1 << 30))
        m.d.sync += blink.eq(blink + 1)
        # About 1.5 Hz whatever the clock: the bit whose period is nearest 2**24 cycles at
        # 25 MHz.
        bit = max(1, round(self.clock_mhz * 1e6 / 1.5).bit_length() - 1)
        m.d.comb += self.heartbeat.eq(blink[bit])
        return m


def package_top(package: Package | str = "default", *, clock_mhz: float | None = None,
                ber: float = 0.0):
    """A top factory (see :mod:`.top`) building ``package`` (a config, a shipped name or a
    path to a TOML file) on the board it is given."""
    config = Package.load(package)

    def factory(board: Board) -> Elaboratable:
        return PackageBoard(board, config, clock_mhz=clock_mhz, ber=ber)
    factory.package = package
    return factory
