"""Fmax of the default package against a tight clock constraint, on the board's netlist.

``chipknit build`` places the default package at its 90 MHz PLL clock, and nextpnr stops
working for speed once that is met. This synthesises the same board top at the board's
25 MHz oscillator (no PLL: the netlist every figure of this bench since the thirteenth
session was measured on) with the same ``synth_ecp5`` options (``SYNTH_OPTS``, unless
``--synth-opts``), rewrites the LPF's clock constraint to ``--mhz`` (default
100, the target of design §3) and runs nextpnr with its default placer and router and
``--timing-allow-fail``, then prints the Fmax after placement and after routing, LUTs and
FFs, the seconds each tool took and the critical path (ends, delay, logic levels), as
JSON::

    python -m chipknit.bench.package_fmax build/pkg-fmax --seed 1

The critical path's full report is in ``pnr.log`` in the folder.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["constrain", "measure"]

_FREQUENCY = re.compile(r"^(FREQUENCY PORT \S+) [0-9.]+ HZ;$", re.MULTILINE)
_FMAX = re.compile(r"Max frequency for clock '\$glbnet\$cd_sync\.clk': ([0-9.]+) MHz")


def constrain(lpf: str, mhz: float) -> str:
    """``lpf`` with its (single) clock port constraint set to ``mhz``."""
    text, count = _FREQUENCY.subn(rf"\1 {mhz * 1e6:.1f} HZ;", lpf)
    if count != 1:
        raise ValueError(f"Expected one FREQUENCY PORT constraint in the LPF, found {count}")
    return text


def measure(build_dir, *, seed: int = 1, mhz: float = 100.0, package: str = "default",
            synth_opts: str | None = None, keep_blocks: bool | None = None,
            abc_delay_ps: int | None = None) -> dict:
    """Synthesise ``package``'s ULX3S board top into ``build_dir`` (``synth_ecp5``
    ``synth_opts``, default ``SYNTH_OPTS["ecp5"]`` as every build), place and route it at
    ``mhz`` and return the figures (see the module documentation)."""
    from amaranth._toolchain import tool_env_var

    from chipknit.bench.logic_depth import synthesise
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.build import (
        SYNTH_OPTS,
        _yosys_cells,
        read_nextpnr_report,
        wants_kept_blocks,
    )
    from chipknit.platforms.package_board import package_top
    from chipknit.platforms.toolchain import toolchain_env

    out = Path(build_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = get_board("ulx3s")
    design = package_top(package, clock_mhz=board.clock_mhz, ber=0.0, die=None)(board)
    synth_opts = SYNTH_OPTS["ecp5"] if synth_opts is None else synth_opts
    keep_blocks = wants_kept_blocks(design, keep_blocks)
    figures = {"package": package, "seed": seed, "constraint_mhz": mhz,
               "synth_opts": synth_opts, "keep_blocks": keep_blocks,
               "abc_delay_ps": abc_delay_ps,
               "synth_seconds": synthesise(design, out, board=board, synth_opts=synth_opts,
                                           keep_blocks=keep_blocks,
                                           abc_delay_ps=abc_delay_ps)}
    env = toolchain_env()
    (out / "top.lpf").write_text(constrain((out / "top.lpf").read_text(), mhz))
    nextpnr = env.get(tool_env_var("nextpnr-ecp5")) or "nextpnr-ecp5"
    start = time.monotonic()
    with open(out / "pnr.log", "w") as log:
        subprocess.run([nextpnr, "--seed", str(seed), "--timing-allow-fail", "--85k",
                        "--package", "CABGA381", "--speed", "6", "--json", "top.json",
                        "--lpf", "top.lpf", "--report", "report.json"], cwd=out, env=env,
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    figures["pnr_seconds"] = round(time.monotonic() - start, 1)
    # Only the log has the estimate after placement; the routed figures are the report's,
    # read as every build reads them.
    placed = _FMAX.search((out / "pnr.log").read_text())
    figures["fmax_placed_mhz"] = float(placed.group(1)) if placed else None
    report = read_nextpnr_report(json.loads((out / "report.json").read_text()), "ecp5",
                                 _yosys_cells(out / "top.stat.json"))
    if "sync" not in report["fmax_mhz"]:
        raise RuntimeError(f"nextpnr reported no Fmax for the sync clock: see {out / 'pnr.log'}")
    figures.update(luts=report["luts"], ffs=report["ffs"], fmax_mhz=report["fmax_mhz"]["sync"],
                   critical_path=report["critical_paths"].get("sync"))
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mhz", type=float, default=100.0)
    parser.add_argument("--package", default="default")
    parser.add_argument("--synth-opts", default=None,
                        help="options for synth_ecp5 (default: those of every build)")
    flow = parser.add_mutually_exclusive_group()
    flow.add_argument("--keep-blocks", dest="keep_blocks", action="store_const", const=True,
                      help="keep every tile, interface, router and link end a module of its "
                           "own in synthesis (the default, as chipknit build does)")
    flow.add_argument("--flatten", dest="keep_blocks", action="store_const", const=False,
                      help="synthesise the package flat (the build before the fourteenth "
                           "session)")
    parser.add_argument("--abc-delay", type=int, metavar="PS",
                        help="give ABC this delay target in synthesis (docs/build.md: "
                             "2000 did not beat the build's own synthesis)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.build_dir, seed=args.seed, mhz=args.mhz,
                             package=args.package, synth_opts=args.synth_opts,
                             keep_blocks=args.keep_blocks, abc_delay_ps=args.abc_delay),
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
