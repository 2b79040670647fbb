# amaranth: UnusedElaboratable=no
"""The package on one board: the PLL's dividers, the board top's checks and its
elaboration. The full ULX3S build is ``slow`` (``chipknit build``, see docs/build.md)."""

import pytest
from amaranth.hdl import Fragment, Instance, Signal

from chipknit.platforms.boards import get_board
from chipknit.platforms.clocks import Ecp5Pll, ecp5_pll_dividers
from chipknit.platforms.package_board import (
    HOST_FRAME_PAUSE_S,
    PACKAGE_CLOCK_MHZ,
    PackageBoard,
    package_top,
)
from chipknit.platforms.top import BoardTop
from chipknit.rtl.package.config import Package
from chipknit.tb.tests.package_common import E2E_PARAMS, e2e_package


@pytest.mark.parametrize("output_mhz", [12.5, 25, 40, 50, 62.5, 75, 100, 125, 150, 200])
def test_pll_dividers_are_in_range_and_exact(output_mhz):
    d = ecp5_pll_dividers(25, output_mhz)
    assert abs(d.output_mhz - output_mhz) <= 0.01 * output_mhz
    assert 3.125 <= 25 / d.clki_div <= 400
    assert 400 <= d.vco_mhz <= 800
    assert 1 <= d.clki_div <= 128 and 1 <= d.clkfb_div <= 80 and 1 <= d.clkop_div <= 128
    assert 0 <= d.cphase < d.clkop_div


def test_pll_dividers_for_100_mhz_are_ecppll_s():
    d = ecp5_pll_dividers(25, 100)
    assert (d.clki_div, d.clkfb_div, d.clkop_div) == (1, 4, 6)


@pytest.mark.parametrize("output_mhz", [1, 401, 1000])
def test_pll_refuses_out_of_range(output_mhz):
    with pytest.raises(ValueError, match="ECP5 PLL"):
        ecp5_pll_dividers(25, output_mhz)


def test_pll_refuses_a_frequency_no_divider_reaches():
    with pytest.raises(ValueError, match="within 1 %"):
        ecp5_pll_dividers(25, 3.2)


def test_load_package_by_name_path_and_object(tmp_path):
    default = Package.named("default")
    assert Package.load("default") == default
    assert Package.load(default) is default
    path = tmp_path / "mine.toml"
    path.write_text(default.to_toml())
    assert Package.load(str(path)) == default
    with pytest.raises(ValueError, match="No shipped package"):
        Package.load("nope")


def test_package_board_checks():
    ulx3s, icebreaker = get_board("ulx3s"), get_board("icebreaker")
    with pytest.raises(ValueError, match="cannot hold package .default.: its NPU tiles"):
        PackageBoard(icebreaker, Package.named("default"))
    with pytest.raises(ValueError, match="Bit error rate"):
        PackageBoard(ulx3s, Package.named("default"), ber=1.5)
    table = Package.named("default").to_dict()
    table["tiles"] = [t for t in table["tiles"] if t["kind"] != "host_bridge"]
    with pytest.raises(ValueError, match="no host_bridge tile"):
        PackageBoard(ulx3s, Package.from_dict(table))


def test_each_board_builds_its_package_by_default():
    """`chipknit build` with no design builds the board's package: the default one on the
    ULX3S, the small `icebreaker` one (which fits the UP5K) on the iCEBreaker, whose
    elaboration is checked here; a package with NPU tiles is refused on the iCE40."""
    from chipknit.platforms.top import DEFAULT_DESIGNS, default_top
    assert DEFAULT_DESIGNS == {"ulx3s": "package", "icebreaker": "package"}
    icebreaker = get_board("icebreaker")
    top = default_top(icebreaker)
    assert isinstance(top, PackageBoard) and top.package.name == "icebreaker"
    assert package_top()(get_board("ulx3s")).package.name == "default"
    Fragment.get(BoardTop(icebreaker, top), icebreaker.make_platform())
    with pytest.raises(ValueError, match="cannot hold package 'four_die': its NPU tiles"):
        package_top("four_die")(icebreaker)


@pytest.mark.parametrize("clock_mhz, divisor, frame_timeout", [
    (None, 781, 1 << 18), (25, 217, 1 << 16), (50, 434, 1 << 17), (100, 868, 1 << 18)])
def test_uart_and_frame_timeout_follow_the_core_clock(clock_mhz, divisor, frame_timeout):
    """The default package on the ULX3S runs from the PLL at 90 MHz unless told otherwise
    (25 MHz: its oscillator, no PLL); the UART's divisor and the host bridge's frame
    timeout (>= 2.5 ms) follow the clock."""
    board = PackageBoard(get_board("ulx3s"), Package.named("default"), clock_mhz=clock_mhz)
    assert board.uart.divisor == divisor
    assert board.params["clock_mhz"] == (90.0 if clock_mhz is None else clock_mhz)
    assert board.pll == (clock_mhz != 25)   # the oscillator's own 25 MHz needs no PLL
    assert board.top.tile_params["host"].frame_timeout == frame_timeout
    assert frame_timeout / (board.clock_mhz * 1e6) >= HOST_FRAME_PAUSE_S


def test_default_clock_is_per_board_and_package():
    """A package with no measured clock, and the iCEBreaker, run at the oscillator; a
    host tile's own ``frame_timeout`` is kept."""
    ulx3s = get_board("ulx3s")
    assert PACKAGE_CLOCK_MHZ == {("ulx3s", "default"): 90.0}
    four = PackageBoard(ulx3s, Package.named("four_die"))
    assert (four.clock_mhz, four.pll) == (25.0, False)
    small = PackageBoard(get_board("icebreaker"), Package.named("icebreaker"), fit_check=False)
    assert (small.clock_mhz, small.pll) == (12.0, False)
    assert small.top.tile_params["host"].frame_timeout == 1 << 16   # 5.5 ms at 12 MHz
    own = e2e_package("default", npu=E2E_PARAMS["npu"], host={"frame_timeout": 99999})
    kept = PackageBoard(ulx3s, own, clock_mhz=90)
    assert kept.top.tile_params["host"].frame_timeout == 99999


def test_uart_counters_are_as_wide_as_the_host_bridges():
    """The UART's error counters feed the host bridge's transport counters: the
    ``icebreaker`` package's host tile asks for 8-bit counters, the default keeps 16."""
    small = PackageBoard(get_board("icebreaker"), Package.named("icebreaker"), fit_check=False)
    assert small.uart.counter_width == small.top.tile_params["host"].counter_width == 8
    default = PackageBoard(get_board("ulx3s"), Package.named("default"))
    assert default.uart.counter_width == default.top.tile_params["host"].counter_width == 16


@pytest.mark.parametrize("clock_mhz", [pytest.param(None, marks=pytest.mark.slow), 100])
def test_package_board_elaborates_on_the_ulx3s(clock_mhz):
    # The default package with the testbench's small NPUs (the full one is the slow test
    # below and the build itself).
    package = e2e_package("default", npu=E2E_PARAMS["npu"])
    board = get_board("ulx3s")
    design = package_top(package, clock_mhz=clock_mhz, ber=1e-5)(board)
    Fragment.get(BoardTop(board, design), board.make_platform())


@pytest.mark.slow
def test_default_package_board_elaborates():
    board = get_board("ulx3s")
    Fragment.get(BoardTop(board, package_top("default", clock_mhz=100)(board)),
                 board.make_platform())


def test_pll_constrains_its_output_clock():
    class Recorder:
        def __init__(self):
            self.constraints = []

        def add_clock_constraint(self, clock, frequency):
            self.constraints.append((clock, frequency))

    platform = Recorder()
    pll = Ecp5Pll(Signal(), 25, 100)
    fragment = Fragment.get(pll, platform)
    assert [freq for _, freq in platform.constraints] == [100e6]
    # Reset as Amaranth resets the oscillator's domain: no reset net to every flip-flop,
    # the global set/reset released two flip-flops after lock.
    assert fragment.domains["sync"].rst is None
    cells = [sub.type for sub, _, _ in fragment.subfragments if isinstance(sub, Instance)]
    assert sorted(cells) == ["EHXPLLL", "FD1S3AX", "FD1S3AX", "SGSR"]


# ---- one die per board ---------------------------------------------------------------------

def test_die_board_checks():
    ulx3s, icebreaker = get_board("ulx3s"), get_board("icebreaker")
    with pytest.raises(ValueError, match="not a die 5"):
        PackageBoard(ulx3s, Package.named("default"), die=5)
    with pytest.raises(ValueError, match="has 2 die links; a board carries exactly one"):
        PackageBoard(ulx3s, Package.named("four_die"), die=0)
    with pytest.raises(ValueError, match="a die on its own board has real wires"):
        PackageBoard(ulx3s, Package.named("default"), die=1, ber=1e-5)
    with pytest.raises(ValueError, match="No die link pin map"):
        PackageBoard(icebreaker, Package.named("minimal"), die=1)


@pytest.mark.parametrize("die", [0, 1])
def test_die_board_elaborates_on_the_ulx3s(die):
    """Each die of the minimal package alone on a ULX3S: its link on the header's DDR pins
    (10 lanes, 2 spares), the host's die from the oscillator, the other from a PLL on the
    forwarded clock; the UART only where the host bridge is."""
    board = get_board("ulx3s")
    design = package_top("minimal", die=die)(board)
    assert design.params["die"] == die
    assert design.follower == (die == 1) and design.has_host == (die == 0)
    link = design.top.cut[0]
    assert (link.params.lanes.lanes, link.params.repair_lanes, link.params.link.beat_width) \
        == (10, 2, 16)
    platform = board.make_platform()
    Fragment.get(BoardTop(board, design), platform)
    assert {r.name for r in platform.resources.values()} >= {"link"}
    # The forwarded receive clock is constrained at the shared core clock on both boards;
    # the follower's core clock is its PLL's output, constrained too.
    ports = {port.name: freq for port, freq in platform.iter_port_clock_constraints()}
    assert ports == {"link_0__rx_clk__io": design.clock_mhz * 1e6}
    plls = {clock.name: freq for clock, freq in platform._clocks.items()}
    assert plls == ({"clk": design.clock_mhz * 1e6} if die == 1 else {})


def test_link_leds_clear_once_the_link_trains():
    """A board powered before its peer: ``error`` lights on the failed attempts and clears
    once the link is ACTIVE (it is not latched for good); ``ok`` only while ACTIVE."""
    from amaranth.hdl import Module
    from amaranth.sim import Simulator

    from chipknit.platforms.package_board import link_leds
    from chipknit.rtl.link.training import TrainingState

    m = Module()
    state = Signal(TrainingState)
    active, failed = link_leds(m, state)
    S = TrainingState
    # (state for one cycle, then (ok, error) expected)
    script = [(S.RESET, 0, 0), (S.DETECT, 0, 0), (S.ERROR, 0, 1), (S.DETECT, 0, 1),
              (S.TEST, 0, 1), (S.ACTIVE, 1, 0), (S.DRAIN, 0, 0), (S.DETECT, 0, 0),
              (S.ERROR, 0, 1), (S.ERROR, 0, 1), (S.ACTIVE, 1, 0)]
    seen = []

    async def bench(ctx):
        for value, _ok, _error in script:
            ctx.set(state, value)
            await ctx.tick()
            seen.append((ctx.get(active), ctx.get(failed)))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(ok, error) for _state, ok, error in script]
