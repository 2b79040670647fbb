"""Logic depth of a synthesised ECP5 netlist: how many LUT levels feed each flip-flop.

nextpnr reports one critical path per clock, so in a large design each fix only shows the
next path. This reads the netlist Yosys wrote for nextpnr (``top.json`` of a build or of
``package_fmax``) and counts, for every register input, the LUTs on its longest path from a
register, block RAM, multiplier or pin. It prints a histogram of the endpoints by depth and
the deepest ones grouped by the block they are in, with the register each starts from::

    python -m chipknit.bench.logic_depth build/pkg-fmax/top.json --min-levels 7
    python -m chipknit.bench.logic_depth --package default build/depth-pkg
    python -m chipknit.bench.logic_depth --block host build/depth-host

With ``--package`` or ``--block`` (a block of ``chipknit bench tiles``) it first synthesises
the design into the folder as ``package_fmax`` and ``bench tiles`` do (the build's
``synth_ecp5`` options), without placing it: a minute for a block, a few for the package.

Counting: a ``LUT4`` is one level, a ``PFUMX``/``L6MUX21`` (wide LUTs) half a level, a
``CCU2C`` one level from its LUT inputs and none along the carry (a chain is fast), a
``TRELLIS_DPR16X4``'s read one level (an asynchronous LUT RAM read), a multiplier without
registers three. Routing is not counted: in the default package each level costs about
1.1 ns with its routing (docs/package.md), so at 100 MHz about 7 levels fit.
"""

import argparse
import json
import sys
from collections import Counter, defaultdict

from chipknit.platforms.build import package_blocks

__all__ = ["depths", "synthesise", "summary", "main", "package_blocks"]

# (cell type) -> (input ports through which depth propagates, levels added, output ports).
_COMBINATIONAL = {
    "LUT4": (("A", "B", "C", "D"), 1.0, ("Z",)),
    "PFUMX": (("ALUT", "BLUT", "C0"), 0.5, ("Z",)),
    "L6MUX21": (("D0", "D1", "SD"), 0.5, ("Z",)),
    "TRELLIS_DPR16X4": (("RAD",), 1.0, ("DO",)),
    "CCU2C": (("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"), 1.0, ("S0", "S1", "COUT")),
}
_CARRY_IN = {"CCU2C": "CIN"}
#: Register inputs: the endpoints.
_ENDPOINT_PORTS = {"TRELLIS_FF": ("DI", "CE", "LSR", "M"), "DP16KD": None,
                   "TRELLIS_DPR16X4": ("DI", "WAD", "WRE"), "MULT18X18D": None,
                   "ALU54B": None}
_MULTIPLIER_LEVELS = 3.0


def _block(name: str) -> str:
    """The hierarchy a cell's name says it is in (``a.b.c_TRELLIS_FF_Q_3`` -> ``a.b``)."""
    return name.rsplit(".", 1)[0] if "." in name else "(top)"


def depths(netlist: dict, trace: str | None = None):
    """(endpoint cell, port, depth, start cell) for every register input of the top module;
    prints the longest path into each endpoint whose name contains ``trace``."""
    (module,) = [m for m in netlist["modules"].values()
                 if m.get("attributes", {}).get("top")] or list(netlist["modules"].values())[:1]
    cells = module["cells"]
    driver = {}
    for name, cell in cells.items():
        for port, direction in cell.get("port_directions", {}).items():
            if direction == "output":
                for bit in cell["connections"][port]:
                    if isinstance(bit, int):
                        driver[bit] = (name, port)

    memo = {}
    through = {}      # bit -> the input bit its longest path comes through

    def multiplier_is_combinational(cell):
        params = cell.get("parameters", {})
        return all(str(params.get(p, "NONE")).strip('"') in ("NONE", "")
                   for p in ("REG_OUTPUT_CLK", "REG_INPUTA_CLK", "REG_PIPELINE_CLK"))

    def bit_depth(bit):
        """(depth, start cell) of the longest path to ``bit``."""
        if not isinstance(bit, int) or bit not in driver:
            return 0.0, None
        if bit in memo:
            return memo[bit]
        memo[bit] = (0.0, None)   # a combinational loop (none expected) ends here
        name, port = driver[bit]
        cell = cells[name]
        kind = cell["type"]
        result = (0.0, name)
        if kind in _COMBINATIONAL and not (kind == "TRELLIS_DPR16X4" and port != "DO"):
            inputs, levels, _ = _COMBINATIONAL[kind]
            best = (levels, name)
            for p in inputs:
                for b in cell["connections"].get(p, ()):
                    d, start = bit_depth(b)
                    if d + levels > best[0] or (start and best[1] == name):
                        best = (d + levels, start or name)
                        through[bit] = b
            if kind in _CARRY_IN and port in ("S0", "S1", "COUT"):
                for b in cell["connections"].get(_CARRY_IN[kind], ()):
                    d, start = bit_depth(b)
                    if d > best[0]:
                        best = (d, start or name)
                        through[bit] = b
            result = best
        elif kind == "MULT18X18D" and multiplier_is_combinational(cell):
            best = (0.0, name)
            for p, bits in cell["connections"].items():
                if cell["port_directions"].get(p) == "input" and p[0] in "AB":
                    for b in bits:
                        d, start = bit_depth(b)
                        if d + _MULTIPLIER_LEVELS > best[0]:
                            best = (d + _MULTIPLIER_LEVELS, start or name)
                            through[bit] = b
            result = best
        memo[bit] = result
        return result

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 100_000))
    found = []
    for name, cell in cells.items():
        kind = cell["type"]
        if kind not in _ENDPOINT_PORTS:
            continue
        ports = _ENDPOINT_PORTS[kind]
        if ports is None:
            ports = [p for p, d in cell.get("port_directions", {}).items() if d == "input"
                     and "CLK" not in p and "CE" != p[:2]]
        worst = (0.0, None, None, None)
        for port in ports:
            for bit in cell["connections"].get(port, ()):
                d, start = bit_depth(bit)
                if d > worst[0]:
                    worst = (d, port, start, bit)
        if worst[1] is not None:
            found.append((name, worst[1], worst[0], worst[2]))
            if trace is not None and trace in name:
                path, bit = [], worst[3]
                while bit is not None:
                    cell_name, port = driver.get(bit, ("?", "?"))
                    kind = cells.get(cell_name, {}).get("type", "?")
                    level = memo.get(bit, (0,))[0]
                    path.append(f"{level:4g}  {kind:16s} {cell_name}.{port}")
                    bit = through.get(bit)
                print(f"{name}.{worst[1]}:", *reversed(path), sep="\n  ")
    return found


def flatten_netlist(netlist) -> dict:
    """``netlist`` (a Yosys JSON file) as one module: a netlist synthesised with kept
    blocks is flattened by Yosys first (the hierarchy attribute cleared); a flat one is
    read as it is."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from amaranth._toolchain import tool_env_var

    from chipknit.platforms.toolchain import toolchain_env

    with open(netlist) as f:
        loaded = json.load(f)
    if not any("keep_hierarchy" in module.get("attributes", {})
               for module in loaded["modules"].values()):
        return loaded
    env = toolchain_env()
    # (YoWASP's Yosys sees its working folder only.)
    with tempfile.TemporaryDirectory(prefix="chipknit-flatten-") as tmp:
        shutil.copyfile(netlist, Path(tmp, "hier.json"))
        subprocess.run([env.get(tool_env_var("yosys")) or "yosys", "-q", "-p",
                        "read_json hier.json; setattr -mod -unset keep_hierarchy *; "
                        "hierarchy -top top; flatten; write_json flat.json"],
                       cwd=tmp, env=env, check=True)
        with open(Path(tmp, "flat.json")) as f:
            return json.load(f)


def with_abc_delay(script: str, delay_ps: int) -> str:
    """The build's Yosys script with ABC given a delay target: ``synth_ecp5`` split around
    its ``map_luts`` step, which runs ``abc9 -W 300`` with ``-D delay_ps`` added (Yosys's
    ``scratchpad -set abc9.D`` does not reach it). See docs/build.md."""
    lines = script.splitlines()
    index = next((k for k, line in enumerate(lines) if "synth_ecp5" in line), None)
    if index is None:
        raise ValueError("with_abc_delay: the script runs no synth_ecp5")
    synth = lines[index].strip()
    # As synth_ecp5 runs it: with -nowidelut, no LUT library entries of 4 inputs and more
    # (ABC would otherwise map to LUT5-7 made of PFUMX/L6MUX21).
    maxlut = " -maxlut 4" if "-nowidelut" in synth.split() else ""
    lines[index:index + 1] = [
        f"{synth} -run :map_luts",
        "check -latchonly -assert",
        "techmap -map +/lattice/latches_map.v",
        f"abc9{maxlut} -W 300 -D {int(delay_ps)}",
        "clean",
        f"{synth} -run map_cells:",
    ]
    return "\n".join(lines) + ("\n" if script.endswith("\n") else "")


def synthesise(design, build_dir, *, board="ulx3s", synth_opts=None, keep_blocks=None,
               abc_delay_ps=None):
    """Synthesise ``design`` (a board-level elaboratable, as for
    :func:`~chipknit.platforms.build.prepare_plan`) into ``build_dir`` with the build's
    Yosys script; returns the seconds it took. The netlist is ``top.json`` there.

    ``keep_blocks`` keeps a package's blocks (:func:`package_blocks`) as modules of their
    own (Yosys ``keep_hierarchy``), as ``chipknit build`` does for a package (default: what
    the design asks for, as there; ``False`` synthesises flat): ABC then maps each block for
    its own deepest path, not for the deepest in the package, and unused outputs of a block
    stay. The netlist is hierarchical; :func:`flatten_netlist` makes one module of it for
    :func:`depths`.
    ``abc_delay_ps`` gives ABC that delay target (:func:`with_abc_delay`, ECP5 only)."""
    import subprocess
    import time
    from pathlib import Path

    from amaranth._toolchain import tool_env_var

    from chipknit.platforms.build import keep_blocks_in_plan, prepare_plan, wants_kept_blocks
    from chipknit.platforms.toolchain import toolchain_env

    out = Path(build_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = prepare_plan(board, design, synth_opts=synth_opts)
    if wants_kept_blocks(design, keep_blocks) and not keep_blocks_in_plan(plan):
        raise ValueError("keep_blocks: no package blocks in this design")
    if abc_delay_ps is not None:
        plan.files["top.ys"] = with_abc_delay(plan.files["top.ys"], abc_delay_ps)
    plan.extract(out)
    env = toolchain_env()
    yosys = json.loads(plan.files[f"{plan.script}.json"])["commands"][0]
    start = time.monotonic()
    with open(out / "synth.log", "w") as log:
        subprocess.run([env.get(tool_env_var(yosys[0])) or yosys[0], *yosys[1:]], cwd=out,
                       env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    return round(time.monotonic() - start, 1)


def summary(found, deep_levels=8) -> dict:
    """The figures a bench reports: the histogram, the deepest, how many at
    ``deep_levels`` or more."""
    histogram = Counter(int(d) for _, _, d, _ in found)
    return {"levels_histogram": {str(k): v for k, v in sorted(histogram.items())},
            "max_levels": max(histogram, default=0),
            f"endpoints_at_{deep_levels}_levels_or_more":
                sum(v for k, v in histogram.items() if k >= deep_levels)}


def _design(args):
    if args.package:
        from chipknit.platforms.boards import get_board
        from chipknit.platforms.package_board import package_top
        board = get_board("ulx3s")
        return package_top(args.package, clock_mhz=board.clock_mhz, ber=0.0, die=None)(board)
    from chipknit.bench.tiles import BLOCKS, _package
    from chipknit.platforms.isolate import IsolatedComponent
    return IsolatedComponent(BLOCKS[args.block][1](_package()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("netlist", help="Yosys JSON netlist (top.json), or with --package or "
                                        "--block the folder to synthesise into")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--package", help="synthesise this package's ULX3S board top first")
    what.add_argument("--block", help="synthesise this block of `chipknit bench tiles` first")
    parser.add_argument("--min-levels", type=float, default=7,
                        help="list endpoints at least this deep (default 7)")
    parser.add_argument("--json", help="write the histogram and the blocks' counts here")
    parser.add_argument("--trace", help="print the longest path into each register whose "
                                        "name contains this")
    flow = parser.add_mutually_exclusive_group()
    flow.add_argument("--keep-blocks", dest="keep_blocks", action="store_const", const=True,
                      help="with --package: keep each block a module of its own in "
                           "synthesis (see synthesise; the build's default for a package)")
    flow.add_argument("--flatten", dest="keep_blocks", action="store_const", const=False,
                      help="with --package: synthesise the package flat")
    parser.add_argument("--abc-delay", type=int, metavar="PS",
                        help="with --package or --block: give ABC this delay target")
    args = parser.parse_args(argv)
    if args.keep_blocks is not None and not args.package:
        parser.error("--keep-blocks and --flatten need --package")
    if args.abc_delay is not None and not (args.package or args.block):
        parser.error("--abc-delay needs --package or --block")
    if args.package or args.block:
        from pathlib import Path
        seconds = synthesise(_design(args), args.netlist, keep_blocks=args.keep_blocks,
                             abc_delay_ps=args.abc_delay)
        print(f"synthesised in {seconds} s")
        args.netlist = str(Path(args.netlist, "top.json"))
    found = depths(flatten_netlist(args.netlist), args.trace)
    histogram = Counter(int(d) for _, _, d, _ in found)
    print(f"{len(found)} register inputs; levels: count")
    for level in sorted(histogram):
        print(f"  {level:3d}: {histogram[level]}")
    deep = [f for f in found if f[2] >= args.min_levels]
    by_block = defaultdict(list)
    for entry in deep:
        by_block[_block(entry[0])].append(entry)
    print(f"\n{len(deep)} endpoints at >= {args.min_levels:g} levels, by block:")
    for block, entries in sorted(by_block.items(), key=lambda kv: -max(e[2] for e in kv[1])):
        entries.sort(key=lambda e: -e[2])
        name, port, depth, start = entries[0]
        print(f"  {block}: {len(entries)}, deepest {depth:g}: {start} -> "
              f"{name.rsplit('.', 1)[-1]}.{port}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"histogram": {str(k): v for k, v in sorted(histogram.items())},
                       "deep_by_block": {b: len(e) for b, e in by_block.items()},
                       "min_levels": args.min_levels}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
