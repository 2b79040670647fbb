"""A whole package in one FPGA: the dies, the interposer model between them, the host
bridge on the board's UART.

``chipknit build`` with no design builds the default package this way (issue 7, design
§4): :class:`~chipknit.rtl.package.top.PackageTop` of a package config, its host bridge's
byte streams on a :class:`~chipknit.rtl.host.uart.UartRx`/:class:`~chipknit.rtl.host.uart.
UartTx` pair on the board's USB UART (the ULX3S's FTDI, the iCEBreaker's FT2232H channel
B), at the host bridge tile's ``baud`` (default 115200, 8N1). The host API
(:class:`chipknit.host.Host`) talks to it over pyserial.

The core clock is an ECP5 PLL (:class:`~.clocks.Ecp5Pll`) making ``clock_mhz``, by default
the measured :data:`PACKAGE_CLOCK_MHZ` of the board and package (the default package on the
ULX3S: 90 MHz from its 25 MHz oscillator), else the board's oscillator; the build's timing
constraint is the frequency the design runs at. The host bridge's ``frame_timeout``, unless
its tile gives one, covers :data:`HOST_FRAME_PAUSE_S` at that clock. The die links'
interposer models run error-free (``ber``: a constant bit error rate on every lane, for a
board demo of replays).

LEDs: ``ok`` while the UART has seen no framing error or overrun, ``error`` once it has,
``heartbeat`` blinks at about 1.5 Hz (the core clock is running and out of reset).

**One die per board** (``die``, ``chipknit build --die N``): the board holds
:class:`PackageTop` of die ``N`` alone; its one cut link leaves on the header pins of
:data:`~.pinmaps.DIE_LINK_PINS` through a :class:`~chipknit.rtl.link.phy_ddr.DdrPhy` (DDR,
forwarded clock, 2 spare lanes) and trains with the board at its other end. The boards run
from one clock, as a package's dies share a reference: the die with the host bridge runs
from its oscillator (or PLL), every other from a PLL locked to the clock the far board
forwards with the lanes (held in reset until it locks), so the PHYs' clock crossings never
slip; both boards must be built with the same ``clock_mhz``, which the follower's PLL
expects at its input. The host bridge's UART is on the board whose die has it. LEDs
(:func:`link_leds`): ``ok`` while the link is ACTIVE (and the UART clean), ``error`` from a
failed training attempt until the link is next ACTIVE (or once the UART erred),
``heartbeat`` as above; a follower whose PLL has no forwarded clock to lock to (the host's
board is off) is held in reset, all its LEDs dark.

The boards may be powered in either order. Until the far board is up, the near end's
training fails and retries every ``train_timeout + error_backoff`` cycles (``error`` lit,
``link{i}_training_errors`` counting), the near die runs on, and a short host command to
the far die ends in a ``TIMEOUT`` status; commands that back up through the router into
the host's interface leave the host unanswered until the link is up (docs/package.md).
Once both are up the link trains by itself (``tb/tests/package_split.py``,
``far_die_powered_later``).
"""

import math

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from chipknit.rtl.host.bridge import HostBridgeParams
from chipknit.rtl.host.uart import UartParams, UartRx, UartTx
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.link.phy_ddr import DdrPhy, DdrPhyParams
from chipknit.rtl.link.training import TrainingState
from chipknit.rtl.package.config import Package
from chipknit.rtl.package.link_end import package_link_end
from chipknit.rtl.package.top import PackageTop

from .boards import Board
from .clocks import Ecp5Pll
from .pinmaps import die_link_pin_map, request_link_pins

__all__ = ["PackageBoard", "package_top", "link_leds", "PACKAGE_CLOCK_MHZ", "BOARD_PACKAGES",
           "HOST_FRAME_PAUSE_S", "host_frame_timeout"]

#: The package each board builds when none is named: the iCE40UP5K holds the small one.
BOARD_PACKAGES: dict[str, str] = {"ulx3s": "default", "icebreaker": "icebreaker"}

#: Baud rate of the host UART when the host bridge tile does not give one.
DEFAULT_BAUD = 115200

#: Core clock (MHz, from a PLL) of a whole package in one FPGA, per (board, package name),
#: when none is asked for. Chosen from measured builds with margin over every seed tried
#: (docs/build.md). A package not listed, and a die built alone for its own board, run at
#: the board's oscillator.
PACKAGE_CLOCK_MHZ: dict[tuple[str, str], float] = {("ulx3s", "default"): 90.0}

#: The longest pause between the bytes of one host frame that the host bridge waits out
#: (a USB UART may pause a frame for up to a USB frame, 1 ms).
HOST_FRAME_PAUSE_S = 2.5e-3


def host_frame_timeout(clock_mhz: float) -> int:
    """The host bridge's ``frame_timeout`` at ``clock_mhz``: a power of two covering
    :data:`HOST_FRAME_PAUSE_S`, and at least the bridge's default (2**16 cycles)."""
    return max(HostBridgeParams.frame_timeout,
               1 << math.ceil(math.log2(clock_mhz * 1e6 * HOST_FRAME_PAUSE_S)))


class PackageBoard(Elaboratable):
    """``package`` on ``board``, its host bridge on the board's UART.

    Parameters
    ----------
    board : Board
    package : Package
        Must have a host bridge tile.
    clock_mhz : float, optional
        Core clock from a PLL (ECP5 boards only); default the board and package's entry
        in :data:`PACKAGE_CLOCK_MHZ` for a whole package, else the board's oscillator. The
        oscillator's own frequency means no PLL.
    ber : float
        Bit error rate the interposer models inject on every lane (0: none).
    die : int, optional
        Build die ``die`` alone, its link on the header pins (module documentation).
    fit_check : bool
        Refuse a package with NPU tiles on an iCE40 board, whose 5280 LCs hold only the
        ``icebreaker`` package (default). ``False`` builds anyway, to measure how far a
        package is from fitting (``chipknit.bench.package`` ``ice40_fit``).

    Attributes
    ----------
    params : dict
        What the build report records as the design's parameters.
    keep_blocks : bool
        True on ECP5 boards: the build synthesises each tile, interface, router and link
        end as a module of its own (:func:`~chipknit.platforms.build.package_blocks`). On
        the default package this placed at 95.0 / 93.6 / 99.4 MHz (seeds 1–3) against
        88.1 / 92.4 / 81.0 flat, for about 11 % more LUTs (docs/package.md). False on iCE40
        boards, where every LUT counts: kept blocks keep the counters nothing reads (their
        outputs cross a kept edge) and the small package took 9048 of the UP5K's 5280 LCs
        kept.
    """

    def __init__(self, board: Board, package: Package, *, clock_mhz: float | None = None,
                 ber: float = 0.0, die: int | None = None, fit_check: bool = True):
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        hosts = [tile for tile in package.tiles if tile.kind == "host_bridge"]
        if not hosts:
            raise ValueError(f"Package {package.name!r} has no host_bridge tile, so a board "
                             f"build could not reach it")
        self.die = die
        if die is not None:
            numbers = [d.number for d in package.dies]
            if die not in numbers:
                raise ValueError(f"Package {package.name!r} has dies "
                                 f"{', '.join(map(str, numbers))}, not a die {die}")
            self.pin_map = die_link_pin_map(board.name)
            lanes = LaneParams(self.pin_map.lanes, bits_per_lane=2)
            self.top = PackageTop(package, dies={die}, link_end=package_link_end(
                lanes, repair_lanes=self.pin_map.repair_lanes))
            if len(self.top.cut) != 1:
                raise ValueError(f"Die {die} of package {package.name!r} has "
                                 f"{len(self.top.cut)} die links; a board carries exactly "
                                 f"one on its header pins")
            (self.link,) = self.top.cut
            if ber:
                raise ValueError("--ber injects errors in the interposer models inside one "
                                 "FPGA; a die on its own board has real wires")
        if board.family == "ice40" and fit_check and any(
                tile.kind == "npu" for tile in package.tiles):
            raise ValueError(
                f"{board.name}'s {board.device} cannot hold package {package.name!r}: its "
                f"NPU tiles do not fit; the `icebreaker` package (no NPU) takes 4974 of the "
                f"5280 LCs (docs/package.md). Build this one for an ECP5 board")
        if clock_mhz is None and die is None:
            clock_mhz = PACKAGE_CLOCK_MHZ.get((board.name, package.name))
        if clock_mhz == board.clock_mhz:
            clock_mhz = None   # the oscillator itself: no PLL
        # One clock for all the boards: the host's die makes it, the others follow the link.
        self.host_die = hosts[0].die
        self.follower = die is not None and die != self.host_die
        if self.follower and board.family != "ecp5":
            raise ValueError("A die without the host bridge runs from a PLL locked to the "
                             "link's forwarded clock, which is built for ECP5 boards only")
        if clock_mhz is not None and board.family != "ecp5":
            raise ValueError(f"A PLL core clock is built for ECP5 boards only; {board.name} "
                             f"runs at its {board.clock_mhz:g} MHz oscillator")
        if not 0.0 <= ber < 1.0:
            raise ValueError(f"Bit error rate must be in [0, 1), not {ber!r}")
        self.board, self.package, self.ber = board, package, ber
        self.keep_blocks = board.family == "ecp5"
        self.clock_mhz = board.clock_mhz if clock_mhz is None else clock_mhz
        self.pll = clock_mhz is not None
        self.baud = hosts[0].params.get("baud", DEFAULT_BAUD)
        if die is None:
            if "frame_timeout" not in hosts[0].params:
                package = package.with_tile_params(
                    hosts[0].name, frame_timeout=host_frame_timeout(self.clock_mhz))
            self.top = PackageTop(package)
        self.has_host = "host_rx" in self.top.signature.members
        # The UART's error counters are the host bridge's transport counters: same width.
        self.uart = UartParams.from_baud(
            self.clock_mhz * 1e6, self.baud,
            counter_width=self.top.tile_params[hosts[0].name].counter_width
            if self.has_host else UartParams.counter_width)
        self.params = {"package": package.name, "clock_mhz": self.clock_mhz,
                       "baud": self.baud, "uart_divisor": self.uart.divisor, "ber": ber,
                       "die": die}
        self.ok, self.error, self.heartbeat = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.package = top = self.top
        phy = None
        if self.die is not None:
            # The far board's core clock arrives with the lanes: the same frequency as ours.
            pins = request_link_pins(platform, self.board.name, pin_map=self.pin_map,
                                     rx_clock_hz=self.clock_mhz * 1e6)
            m.submodules.phy = phy = DdrPhy(DdrPhyParams(
                top.cut[self.link].params.lanes, shared_valid=True, mesochronous=True), pins)
            wiring.connect(m, getattr(top, f"link{self.link}_lanes_tx"), phy.tx)
            wiring.connect(m, phy.rx, getattr(top, f"link{self.link}_lanes_rx"))
            m.d.comb += getattr(top, f"link{self.link}_restart").eq(0)
        if self.follower:
            m.submodules.pll = Ecp5Pll(phy.rx_clock, self.clock_mhz, self.clock_mhz)
        elif self.pll:
            clk = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk)
            m.submodules.pll = Ecp5Pll(clk_buffer.i, self.board.clock_mhz, self.clock_mhz)

        blink = Signal(range(1 << 30))
        m.d.sync += blink.eq(blink + 1)
        # About 1.5 Hz whatever the clock: the bit whose period is nearest 2**24 cycles at
        # 25 MHz.
        bit = max(1, round(self.clock_mhz * 1e6 / 1.5).bit_length() - 1)
        m.d.comb += self.heartbeat.eq(blink[bit])
        if self.die is not None:
            active, failed = link_leds(m, getattr(top, f"link{self.link}_training").state)
            m.d.comb += [self.ok.eq(active), self.error.eq(failed)]
        if not self.has_host:
            return m

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

        uart_error = (uart_rx.framing_errors != 0) | (uart_rx.overruns != 0)
        if self.die is None:
            m.d.comb += [self.error.eq(uart_error), self.ok.eq(~uart_error)]
        else:
            m.d.comb += [self.error.eq(failed | uart_error), self.ok.eq(active & ~uart_error)]
        return m


def link_leds(m: Module, state) -> tuple[Signal, Signal]:
    """The link's LEDs from its trainer's ``state``: ``active`` while ACTIVE, ``failed``
    from a failed training attempt (``ERROR``) until the link is next ACTIVE. A board whose
    peer is off, unplugged or miswired shows ``failed``; once the peer comes up and the
    link trains, it clears (a board powered before the other is not left showing an error).
    """
    active, failed = Signal(name="link_active"), Signal(name="link_failed")
    m.d.comb += active.eq(state == TrainingState.ACTIVE)
    with m.If(state == TrainingState.ERROR):
        m.d.sync += failed.eq(1)
    with m.Elif(active):
        m.d.sync += failed.eq(0)
    return active, failed


def package_top(package: Package | str | None = None, *, clock_mhz: float | None = None,
                ber: float = 0.0, die: int | None = None):
    """A top factory (see :mod:`.top`) building ``package`` (a config, a shipped name or a
    path to a TOML file; default the board's, :data:`BOARD_PACKAGES`), or its die ``die``
    alone, on the board it is given."""
    config = None if package is None else Package.load(package)

    def factory(board: Board) -> Elaboratable:
        chosen = config or Package.named(BOARD_PACKAGES.get(board.name, "default"))
        return PackageBoard(board, chosen, clock_mhz=clock_mhz, ber=ber, die=die)
    return factory
