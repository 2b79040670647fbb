"""The ``chipknit`` command line: thin over the Python API the tests use too.

- ``chipknit build``  → :func:`chipknit.platforms.build.build`
- ``chipknit sim``    → :func:`chipknit.tb.harness.run` on :data:`chipknit.tb.benches.TESTBENCHES`
- ``chipknit lint``   → :func:`chipknit.tb.lint.lint` on :data:`chipknit.tops.TOPS`
- ``chipknit bench``  → :data:`chipknit.bench.BENCHMARKS`
"""

import argparse
import json
import sys
import textwrap

__all__ = ["main", "make_parser"]


def _param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _cmd_build(args) -> int:
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.build import BuildError, build
    from chipknit.platforms.package_board import package_top
    from chipknit.platforms.top import DEFAULT_DESIGNS, DESIGNS
    design = args.design or DEFAULT_DESIGNS.get(args.board, "selftest")
    package_options = (args.package is not None or args.clock_mhz is not None or args.ber
                       or args.die is not None)
    if design != "package" and package_options:
        print(f"--package, --clock-mhz, --ber and --die apply to the package design, not "
              f"{design!r}", file=sys.stderr)
        return 2
    top = DESIGNS[design]
    if design == "package":
        try:
            top = package_top(args.package, clock_mhz=args.clock_mhz,
                              ber=args.ber, die=args.die)(get_board(args.board))
        except (ValueError, TypeError, OSError) as error:
            print(f"build: {error}", file=sys.stderr)
            return 2
    try:
        build(args.board, seed=args.seed, build_dir=args.build_dir, top=top,
              synth_opts=args.synth_opts, timing_allow_fail=args.timing_allow_fail,
              nextpnr_opts=args.nextpnr_opts)
    except BuildError as error:
        print(f"build failed: {error}", file=sys.stderr)
        return 1
    return 0


def _cmd_sim(args) -> int:
    from chipknit.tb.benches import TESTBENCHES, get_testbench
    from chipknit.tb.harness import run
    if args.list or args.test is None:
        width = max(map(len, TESTBENCHES))
        for name, bench in TESTBENCHES.items():
            defaults = " ".join(f"{k}={v}" for k, v in bench.params.items())
            print(f"{name:<{width}}  {bench.description}\n{'':<{width}}  params: {defaults}"
                  f"\n{'':<{width}}  simulator: {bench.simulator}")
        return 0 if args.list else 2
    try:
        bench = get_testbench(args.test)
        result = run(bench, simulator=args.simulator or bench.simulator, seed=args.seed,
                     waves=args.waves,
                     params=dict(args.param), testcase=args.testcase, progress=print)
    except (KeyError, ValueError, RuntimeError) as error:
        print(f"chipknit sim: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.passed else 1


def _cmd_lint(args) -> int:
    from chipknit.tb.lint import lint
    from chipknit.tops import TOPS
    names = args.top or list(TOPS)
    unknown = [name for name in names if name not in TOPS]
    if unknown:
        print(f"chipknit lint: no top {', '.join(unknown)}; there are: {', '.join(TOPS)}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        result = lint(TOPS[name](), name)
        print(result)
        failed += not result.clean
    return 1 if failed else 0


def _cmd_bench(args) -> int:
    import inspect

    from chipknit.bench import BENCHMARKS
    run = BENCHMARKS[args.target].run
    options = {"quick": args.quick, "plot": args.plot, "progress": print}
    if args.full:
        if "full" not in inspect.signature(run).parameters:
            print(f"chipknit bench: {args.target} has no --full variant", file=sys.stderr)
            return 2
        options["full"] = True
    figures = run(**options)
    text = json.dumps(figures, indent=2)
    if args.json:
        with open(args.json, "w") as file:
            file.write(text + "\n")
    print(text)
    return 0


def make_parser() -> argparse.ArgumentParser:
    from chipknit.bench import BENCHMARKS
    from chipknit.platforms.boards import BOARDS, DEFAULT_BOARD
    from chipknit.platforms.top import DESIGNS
    from chipknit.tb.toolchain import SIMULATORS

    parser = argparse.ArgumentParser(
        prog="chipknit",
        description="chipknit: an open chiplet interconnect fabric. Build FPGA bitstreams, "
                    "run cocotb testbenches with waves, lint the RTL and run benchmarks.",
        epilog="Run `chipknit COMMAND --help` for the options of each command.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = commands.add_parser(
        "build", help="build a bitstream and report.json for a board",
        description="Synthesise (Yosys), place and route (nextpnr) and pack the default design "
                    "for a board, with the YoWASP tools from PyPI. Writes the bitstream, every "
                    "tool's log and report.json (LUTs, FFs, DSPs, BRAMs, Fmax per clock, seed, "
                    "tool versions) into the build folder and prints a summary.")
    build.add_argument("--board", choices=sorted(BOARDS), default=DEFAULT_BOARD,
                       help=f"target board (default: {DEFAULT_BOARD})")
    build.add_argument("--seed", type=int, default=1,
                       help="nextpnr placement seed, recorded in the report (default: 1)")
    build.add_argument("--build-dir", default=None,
                       help="output folder (default: build/<board>)")
    build.add_argument("--design", choices=list(DESIGNS), default=None,
                       help="what to build (default: package, the board's package with "
                            "its host bridge on the USB UART: default on the ULX3S, "
                            "icebreaker on the iCEBreaker)")
    build.add_argument("--package", default=None, metavar="NAME|FILE",
                       help="package config for --design package: a shipped name "
                            "(default, four_die, ...) or a TOML file (default: the board's)")
    build.add_argument("--clock-mhz", type=float, default=None, metavar="MHZ",
                       help="core clock of the package from the ECP5 PLL (default: 90 "
                            "for the default package on the ULX3S, measured in docs/build.md; "
                            "else, and with the oscillator's own MHz, the oscillator)")
    build.add_argument("--ber", type=float, default=0.0,
                       help="bit error rate the package's interposer models inject on "
                            "every lane, to watch replays on the board (default: 0)")
    build.add_argument("--die", type=int, default=None, metavar="N",
                       help="build die N of the package alone, for one board of a package "
                            "split one die per board: its die link on the header pins "
                            "(DDR, trained), the boards wired as docs/package.md shows "
                            "(default: the whole package in one FPGA)")
    build.add_argument("--timing-allow-fail", action="store_true",
                       help="finish even if the timing constraint is not met, to measure how "
                            "fast the design closes against a tight --clock-mhz (the summary "
                            "says FAILED; do not run the bitstream at that clock)")
    build.add_argument("--synth-opts", default=None, metavar="OPTS",
                       help="options for Yosys's synth_<family> (default: -nowidelut on ECP5)")
    build.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                       help="more options for nextpnr, e.g. '--router router2' (default: "
                            "none; the seed and the report are always set)")
    build.set_defaults(func=_cmd_build)

    sim = commands.add_parser(
        "sim", help="run one cocotb testbench",
        description="Build the testbench's design (cached by content under build/sim), run its "
                    "cocotb tests and print a summary with the seed. A failing run is repeated "
                    "with the same seed and waves on, and prints the command that reproduces it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              chipknit sim --list
              chipknit sim credit_loopback --simulator verilator --waves
              chipknit sim credit_loopback --param depth=8 --param latency=3 --seed 42
              gtkwave <the .gtkw file the summary names>"""))
    sim.add_argument("test", nargs="?", help="testbench name (see --list)")
    sim.add_argument("--list", action="store_true", help="list the testbenches and exit")
    sim.add_argument("--simulator", choices=SIMULATORS, default=None,
                     help="Icarus starts fast; Verilator runs long tests fast (default: the "
                          "testbench's, shown by --list)")
    sim.add_argument("--waves", action="store_true",
                     help="dump FST waves and write a GTKWave save file grouped by interface")
    sim.add_argument("--seed", type=int, default=None,
                     help="COCOTB_RANDOM_SEED (default: a random one, printed)")
    sim.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE",
                     help="override a design parameter (repeatable)")
    sim.add_argument("--testcase", default=None, metavar="REGEX",
                     help="run only the cocotb tests whose names match")
    sim.set_defaults(func=_cmd_sim)

    lint = commands.add_parser(
        "lint", help="Verilator lint (-Wall) of the RTL tops",
        description="Convert each RTL top to SystemVerilog and run `verilator --lint-only -Wall` "
                    "with the rule waivers of chipknit/tb/waivers.vlt.")
    lint.add_argument("top", nargs="*", help="tops to lint (default: all)")
    lint.set_defaults(func=_cmd_lint)

    bench = commands.add_parser(
        "bench", help="measure a block and print its figures as JSON",
        description="Run a benchmark: simulations and builds that measure speed and size, "
                    "printed as JSON (and written to --json), with an optional plot.")
    bench.add_argument("target", choices=sorted(BENCHMARKS),
                       help="; ".join(f"{name}: {b.description}"
                                      for name, b in sorted(BENCHMARKS.items())))
    bench.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    bench.add_argument("--plot", metavar="FILE", help="write a plot (PNG) to FILE")
    bench.add_argument("--quick", action="store_true",
                       help="fewer points and shorter runs, for a smoke test")
    bench.add_argument("--full", action="store_true",
                       help="add the long points (bigger meshes, arrays and GEMMs; minutes to "
                            "hours)")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
