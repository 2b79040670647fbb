# amaranth: UnusedElaboratable=no
"""The FPGA build flow: boards, toolchain environment, report, and real builds.

The default run synthesises, places and routes a small real design (the self-test with
8-bit flits) on one ECP5 and one iCE40 board; each takes ~5 s with a warm YoWASP cache and
~35 s cold. The full default-board builds are marked slow.
"""

import json
import time

import pytest
from amaranth.hdl import Elaboratable, Fragment, Instance, Module, Signal
from amaranth.lib import io

from chipknit.platforms.boards import BOARDS, DEFAULT_BOARD, Board, get_board
from chipknit.platforms.build import (
    SCRIPT_AFTER_READ,
    SYNTH_OPTS,
    BuildError,
    build,
    format_summary,
    prepare_plan,
    read_nextpnr_report,
)
from chipknit.platforms.package_board import PackageBoard
from chipknit.platforms.toolchain import YOWASP_TOOLS, toolchain_env
from chipknit.platforms.top import (
    DEFAULT_DESIGNS,
    BoardTop,
    default_top,
    make_design,
    selftest_top,
    small_top,
)
from chipknit.rtl.selftest import CreditSelfTest


def test_registry():
    assert DEFAULT_BOARD == "ulx3s"
    ulx3s, icebreaker = BOARDS["ulx3s"], BOARDS["icebreaker"]
    assert (ulx3s.family, ulx3s.device, ulx3s.clock_hz) == ("ecp5", "LFE5U-85F", 25e6)
    assert (icebreaker.family, icebreaker.device, icebreaker.clock_hz) == \
        ("ice40", "iCE40UP5K", 12e6)
    assert get_board("icebreaker") is icebreaker
    assert get_board(ulx3s) is ulx3s
    with pytest.raises(ValueError, match="Unknown board"):
        get_board("nope")
    for board in BOARDS.values():
        platform = board.make_platform()
        for _, resource, number in board.leds:
            platform.lookup(resource, number)  # every LED the map names exists


def test_toolchain_env_fills_only_missing():
    env = toolchain_env({"YOSYS": "/opt/my-yosys", "PATH": "/usr/bin:/bin"})
    assert env["YOSYS"] == "/opt/my-yosys"
    for var, executable in YOWASP_TOOLS.items():
        if var != "YOSYS":
            assert env[var].endswith(executable)


def test_make_design():
    board = BOARDS["icebreaker"]   # whose default design is the small package
    designs = [make_design(selftest_top, board), small_top(board),
               make_design(selftest_top, BOARDS["ulx3s"])]
    assert all(isinstance(design, CreditSelfTest) for design in designs)
    assert isinstance(make_design(None, board), PackageBoard)
    assert isinstance(make_design(default_top, board), PackageBoard)
    assert make_design(designs[1], board) is designs[1]
    assert designs[1].params.credit.payload_width == 8
    with pytest.raises(TypeError):
        make_design(42, board)
    for design in designs:
        Fragment.get(design, None)  # they elaborate (and are used)


def test_board_top_needs_an_led_output():
    class Silent(Elaboratable):
        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="none of the LED outputs"):
        BoardTop(BOARDS["ulx3s"], Silent())

    class Partial(Elaboratable):
        def __init__(self):
            self.heartbeat = Signal()

        def elaborate(self, platform):
            return Module()

    board = BOARDS["icebreaker"]
    top = BoardTop(board, Partial())
    assert top.connected == ("heartbeat",)
    pcf = board.make_platform().prepare(top).files["top.pcf"]
    assert "set_io led_g_1__io 27" in pcf  # PMOD 2 pin 1 = FPGA pin 27
    assert "led_r" not in pcf and "led_g_0" not in pcf


@pytest.mark.parametrize("board", ["ulx3s", "icebreaker"])
def test_yosys_script_hides_array_element_names_before_synthesis(board):
    """Every build's Yosys script gives the wires Amaranth names after array elements
    (``x[0]``) private names right after reading the netlist, before ``synth_<family>``
    with the family's options: the Yosys abc9 name clash of docs/build.md."""
    script = prepare_plan(board, CreditSelfTest()).files["top.ys"]
    family = get_board(board).family
    lines = [line.strip() for line in script.splitlines()]
    read = lines.index("read_rtlil top.il")
    assert lines[read + 1] == SCRIPT_AFTER_READ == "rename -hide w:*]"
    synth = next(i for i, line in enumerate(lines) if line.startswith(f"synth_{family}"))
    assert synth > read + 1 and SYNTH_OPTS[family] in lines[synth]


# Two registers named ``a`` and ``a[0]`` (the names Amaranth gives a view and its first
# array element), both feeding logic: the smallest netlist found that trips Yosys's abc9
# reintegration (docs/build.md).
_NAME_CLASH_RTLIL = """
module \\clash
  wire input 1 \\clk
  wire width 2 input 2 \\i
  wire width 2 input 3 \\j
  wire width 2 output 4 \\o
  wire width 2 \\a
  wire width 2 \\a[0]
  cell $dff $a_reg
    parameter \\WIDTH 2
    parameter \\CLK_POLARITY 1
    connect \\CLK \\clk
    connect \\D \\i
    connect \\Q \\a
  end
  cell $dff $a0_reg
    parameter \\WIDTH 2
    parameter \\CLK_POLARITY 1
    connect \\CLK \\clk
    connect \\D \\j
    connect \\Q \\a[0]
  end
  cell $xor $mix
    parameter \\A_SIGNED 0
    parameter \\B_SIGNED 0
    parameter \\A_WIDTH 2
    parameter \\B_WIDTH 2
    parameter \\Y_WIDTH 2
    connect \\A \\a
    connect \\B \\a[0]
    connect \\Y \\o
  end
end
"""


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_yosys_name_clash_workaround(family, tmp_path):
    """With :data:`SCRIPT_AFTER_READ` the name-clash netlist synthesises. Without it, the
    pinned Yosys fails an assertion: when this part fails, a Yosys upgrade fixed the bug and
    the workaround can go."""
    import subprocess
    (tmp_path / "clash.il").write_text(_NAME_CLASH_RTLIL)
    yosys = toolchain_env()["YOSYS"]

    def synthesise(before):
        script = f"read_rtlil clash.il; {before} synth_{family} {SYNTH_OPTS[family]} -top clash"
        log = tmp_path / "yosys.log"
        done = subprocess.run([yosys, "-q", "-l", log.name, "-p", script], cwd=tmp_path,
                              capture_output=True, text=True)
        return done.returncode, log.read_text()

    code, log = synthesise(SCRIPT_AFTER_READ + ";")
    assert code == 0, log[-2000:]
    code, log = synthesise("")
    assert code != 0 and "ERROR: Assert" in log, log[-2000:]


def test_read_nextpnr_report():
    report = {
        "utilization": {
            "TRELLIS_COMB": {"used": 10, "available": 100},
            "TRELLIS_FF": {"used": 7, "available": 100},
            "MULT18X18D": {"used": 1, "available": 4},
        },
        "fmax": {"$glbnet$cd_sync.clk": {"achieved": 123.456, "constraint": 25},
                 "other_clk": {"achieved": 50.0, "constraint": 40.0}},
        "critical_paths": [{
            "from": "posedge $glbnet$cd_sync.clk", "to": "posedge $glbnet$cd_sync.clk",
            "path": [
                {"type": "clk-to-q", "delay": 0.5, "from": {"cell": "a"}, "to": {"cell": "a"}},
                {"type": "logic", "delay": 1.0, "from": {"cell": "a"}, "to": {"cell": "b"}},
                {"type": "setup", "delay": 0.25, "from": {"cell": "b"}, "to": {"cell": "b"}},
            ],
        }],
    }
    figures = read_nextpnr_report(report, "ecp5")
    assert (figures["luts"], figures["ffs"], figures["dsps"], figures["brams"]) == (10, 7, 1, 0)
    assert figures["capacity"]["luts"] == 100
    assert figures["fmax_mhz"] == {"other_clk": 50.0, "sync": 123.46}
    assert figures["fmax_constraint_mhz"]["sync"] == 25.0
    assert figures["clock_nets"]["sync"] == "$glbnet$cd_sync.clk"
    assert figures["critical_paths"]["sync"] == {
        "delay_ns": 1.75, "logic_levels": 1, "from": "a", "to": "b"}

    # A PLL's domain, made inside the design: nextpnr names it after the design module's
    # clock input (measured on the default package, docs/build.md).
    pll = read_nextpnr_report({"fmax": {
        "$glbnet$design.clk": {"achieved": 103.49, "constraint": 90.001},
        "$glbnet$design.phy.rx_clk": {"achieved": 150.0, "constraint": 90.0}}}, "ecp5")
    assert pll["fmax_mhz"] == {"sync": 103.49, "rx": 150.0}

    ice = read_nextpnr_report(
        {"utilization": {"ICESTORM_LC": {"used": 20, "available": 5280}}, "fmax": {}},
        "ice40", {"SB_DFF": 3, "SB_DFFESR": 4, "SB_LUT4": 9})
    assert (ice["luts"], ice["ffs"]) == (20, 7)


def _check_report(result, board_name, seed):
    report = json.loads(result.report_path.read_text())
    assert report == result.report
    board = BOARDS[board_name]
    assert report["board"] == board_name
    assert report["device"] == board.device
    assert report["design"] == "chipknit.rtl.selftest.CreditSelfTest"
    assert report["seed"] == seed
    assert f"--seed {seed}" in report["options"]["nextpnr"]
    for key in ("luts", "ffs", "dsps", "brams"):
        assert isinstance(report[key], int) and report[key] >= 0
        assert report[key] <= report["capacity"][key]
    assert report["luts"] > 0 and report["ffs"] > 0
    assert report["dsps"] == 0 and report["brams"] == 0  # the self-test uses neither
    assert set(report["fmax_mhz"]) == {"sync"}
    assert report["fmax_mhz"]["sync"] > board.clock_mhz  # met at the board clock
    assert report["fmax_constraint_mhz"]["sync"] == pytest.approx(board.clock_mhz, rel=1e-3)
    assert report["tools"]["amaranth"].startswith("0.5")
    assert report["tools"]["yosys"].startswith("Yosys ")
    assert "nextpnr" in report["tools"]["nextpnr"]
    for step in ("elaborate", "synth", "pnr", "pack", "total"):
        assert report["time_s"][step] >= 0
    assert result.bitstream.is_file() and result.bitstream.stat().st_size > 0
    assert result.bitstream.name == report["files"]["bitstream"]
    for name in report["files"].values():
        assert (result.build_dir / name).is_file(), name
    summary = format_summary(report)
    assert len(summary.splitlines()) <= 24 and "Fmax" in summary
    return report


@pytest.mark.parametrize("board_name", ["ulx3s", "icebreaker"])
def test_small_design_builds(board_name, tmp_path):
    lines = []
    t0 = time.monotonic()
    result = build(board_name, seed=3, build_dir=tmp_path / board_name, top=small_top,
                   progress=lines.append)
    seconds = time.monotonic() - t0
    report = _check_report(result, board_name, seed=3)
    assert report["design_params"] and "payload_width=8" in report["design_params"]
    assert any("pnr: done" in line for line in lines)
    assert "Fmax" in lines[-1]
    print(f"{board_name}: {seconds:.1f} s, {report['luts']} LUTs, {report['ffs']} FFs, "
          f"{report['fmax_mhz']['sync']} MHz")


def test_rebuild_is_reproducible(tmp_path):
    """Same design, board and seed: same figures and the same bitstream (iCE40, quickest)."""
    a = build("icebreaker", build_dir=tmp_path / "a", top=small_top, progress=None)
    b = build("icebreaker", build_dir=tmp_path / "b", top=small_top, progress=None)
    for key in ("luts", "ffs", "fmax_mhz", "critical_paths", "utilization"):
        assert a.report[key] == b.report[key], key
    assert a.bitstream.read_bytes() == b.bitstream.read_bytes()


def test_tool_failure_names_the_step(tmp_path):
    class Broken(Elaboratable):
        def __init__(self):
            self.ok = Signal()

        def elaborate(self, platform):
            m = Module()
            m.submodules.nope = Instance("NO_SUCH_CELL", o_Y=self.ok)
            return m

    with pytest.raises(BuildError, match=r"(synth|pnr) .* failed .*full log"):
        build("icebreaker", build_dir=tmp_path, top=Broken(), progress=None)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("board_name", sorted(BOARDS))
def test_default_board_build(board_name, tmp_path):
    """The board's default design: the default package on the ULX3S (a PLL core clock,
    met), the small `icebreaker` package on the iCEBreaker (its 12 MHz oscillator, met)."""
    result = build(board_name, build_dir=tmp_path / board_name, progress=print)
    report = result.report
    assert DEFAULT_DESIGNS[board_name] == "package"
    assert report["design"] == f"{PackageBoard.__module__}.PackageBoard"
    if board_name == "icebreaker":
        assert "'package': 'icebreaker'" in report["design_params"]
        assert report["brams"] > 0 and report["fmax_mhz"]["sync"] >= 12
        return
    assert "'package': 'default'" in report["design_params"]
    assert report["dsps"] > 0 and report["brams"] > 0   # the NPUs' MACs, the memories
    assert report["fmax_mhz"]["sync"] >= report["clock_mhz"]   # timing met at the PLL clock
    assert report["fmax_constraint_mhz"]["sync"] == pytest.approx(report["clock_mhz"],
                                                                  rel=1e-3)


def test_default_design_per_board():
    assert DEFAULT_DESIGNS == {"ulx3s": "package", "icebreaker": "package"}
    assert isinstance(make_design(None, BOARDS["ulx3s"]), PackageBoard)


def test_board_dataclass_checks():
    with pytest.raises(TypeError):
        Board(name="x", platform=object, family="ecp5", device="d", package="p",
              clock_hz=1e6, leds=())
    with pytest.raises(ValueError):
        Board(name="x", platform=BOARDS["ulx3s"].platform, family="xilinx", device="d",
              package="p", clock_hz=1e6, leds=())


def test_timing_allow_fail_reports_the_failed_constraint(tmp_path):
    """A constraint no design meets (the 8-bit self-test from a 400 MHz PLL): the build
    fails, unless told to finish, and then its report says the constraint failed."""
    from chipknit.platforms.clocks import Ecp5Pll

    class FastSelfTest(Elaboratable):
        def __init__(self):
            self.design = small_top(BOARDS["ulx3s"])
            self.ok, self.error, self.heartbeat = (self.design.ok, self.design.error,
                                                   self.design.heartbeat)

        def elaborate(self, platform):
            m = Module()
            clk = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buffer = buffer = io.Buffer("i", clk)
            m.submodules.pll = Ecp5Pll(buffer.i, 25, 400)
            m.submodules.design = self.design
            return m

    with pytest.raises(BuildError, match="pnr"):
        build("ulx3s", build_dir=tmp_path / "strict", top=FastSelfTest(), progress=None)
    result = build("ulx3s", build_dir=tmp_path / "allowed", top=FastSelfTest(),
                   progress=None, timing_allow_fail=True)
    report = result.report
    (clock,) = report["fmax_mhz"]                      # the PLL's output, by nextpnr's name
    assert report["fmax_constraint_mhz"][clock] == pytest.approx(400, rel=1e-3)
    assert report["fmax_mhz"][clock] < 400
    assert "--timing-allow-fail" in report["options"]["nextpnr"]
    assert "FAILED" in format_summary(report)


def test_package_fmax_sets_the_one_clock_constraint():
    """``chipknit.bench.package_fmax`` rewrites the board clock's FREQUENCY line only, and
    refuses an LPF with none or several."""
    from chipknit.bench.package_fmax import constrain
    lpf = ('LOCATE COMP "clk25_0__io" SITE "G2";\n'
           'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\nBLOCK ASYNCPATHS;\n')
    assert constrain(lpf, 100) == lpf.replace("25000000.0", "100000000.0")
    assert constrain(lpf, 62.5).count("62500000.0 HZ;") == 1
    for bad in ("BLOCK ASYNCPATHS;\n", lpf + lpf):
        with pytest.raises(ValueError, match="one FREQUENCY PORT"):
            constrain(bad, 100)


def test_more_nextpnr_options_reach_nextpnr_and_the_report(tmp_path):
    """``nextpnr_opts`` (``chipknit build --nextpnr-opts``) is passed on after the seed and
    the report, and recorded: here router2 routes the small design (its log says so)."""
    result = build("icebreaker", build_dir=tmp_path, top=small_top, progress=None,
                   nextpnr_opts=" --router router2 ")
    assert result.report["options"]["nextpnr"].endswith("--report report_nextpnr.json "
                                                        "--router router2")
    assert "Router2" in (tmp_path / "pnr.log").read_text()
    with pytest.raises(TypeError, match="Nextpnr options"):
        build("icebreaker", build_dir=tmp_path, top=small_top, nextpnr_opts=["--router"])
