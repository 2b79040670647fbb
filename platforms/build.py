"""Build a bitstream and a machine-readable report.

:func:`build` elaborates a design on a board (:mod:`chipknit.platforms.boards`), has Amaranth
write its build plan (RTLIL, Yosys script, constraints, the tool command lines), runs the
tools one by one in the build folder, and writes ``report.json``: resources and Fmax from
nextpnr's JSON report, the seed, tool versions and wall times. Comparable run to run: the
same design, board and seed give the same figures, and paths in the report are relative to
the build folder.

The tools run from the build folder with relative paths, because the YoWASP (WebAssembly)
builds see only their working directory. We run the commands Amaranth lists in
``build_<name>.json`` ourselves instead of its shell script, to time each step, keep each
step's full output as a log and show progress; the commands are the same.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import __version__ as amaranth_version
from amaranth._toolchain import tool_env_var
from amaranth.hdl import Elaboratable

from .boards import DEFAULT_BOARD, Board, get_board
from .toolchain import package_versions, tool_version, toolchain_env
from .top import BoardTop, TopFactory, make_design

__all__ = ["BuildResult", "BuildError", "build", "format_summary", "read_nextpnr_report",
           "prepare_plan", "SYNTH_OPTS", "SCRIPT_AFTER_READ", "FAMILY_CELLS",
           "package_blocks", "keep_blocks_script", "wants_kept_blocks", "keep_blocks_in_plan"]

#: Default ``synth_<family>`` options. ECP5: Yosys 0.70's ``synth_ecp5`` maps with abc9 to
#: wide LUTs (LUT5-7 built from PFUMX/L6MUX21), which costs far more LUT4 slots on datapaths
#: than it saves in levels (measured here: a 16x16 MAC array 14 k LUT4 with ``-nowidelut``
#: against 24 k without, and the self-test smaller too; see docs/build.md).
#: iCE40: ``-dsp`` lets ``synth_ice40`` map multipliers to SB_MAC16 (without it every ``a*b``
#: becomes logic: a 2x2 NPU array took 1220 LCs at 35 MHz, with it 351 LCs + 4 DSPs at 75 MHz).
SYNTH_OPTS = {
    "ecp5": "-nowidelut",
    "ice40": "-dsp",
}

#: Yosys commands run on every netlist right after it is read, before ``synth_<family>``.
#: Amaranth names a wire after each element of an array view (``rd__data[0]`` beside
#: ``rd__data``). Yosys 0.69/0.70's ``abc9`` reintegration rebuilds multi-bit ports from
#: names of the form ``name[index]``, so when ABC's inputs or outputs include both such a
#: wire and bit 0 of its namesake it fails an assertion (``GetSize(conn.first) ==
#: GetSize(conn.second)`` in 0.70, ``count_id(wire->name) == 0`` in 0.69) or, once here,
#: wrote a netlist with a flip-flop output driven twice, which nextpnr refused. Whether it
#: happens depends on where ABC cuts the netlist, so an unrelated change could trigger it.
#: Giving those wires private names removes the clash; no logic changes (docs/build.md).
SCRIPT_AFTER_READ = "rename -hide w:*]"

#: How nextpnr's utilisation report names the resources we count, per family.
#: ``luts``: ECP5 TRELLIS_COMB slots (a LUT4, or half a CCU2C carry, or distributed-RAM
#: logic), iCE40 ICESTORM_LC logic cells (LUT4 + carry + DFF; the datasheet's "LUTs").
#: ``ffs``: ECP5 TRELLIS_FF; iCE40 packs flip-flops into logic cells, so its count is taken
#: from Yosys's cell statistics (every SB_DFF* cell), which packing does not change.
FAMILY_CELLS = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "dsps": "MULT18X18D",
             "brams": "DP16KD"},
    "ice40": {"luts": "ICESTORM_LC", "ffs": None, "dsps": "ICESTORM_DSP",
              "brams": "ICESTORM_RAM"},
}

_STEP_NAMES = {"yosys": "synth", "nextpnr-ecp5": "pnr", "nextpnr-ice40": "pnr",
               "ecppack": "pack", "icepack": "pack"}

# Lines worth showing as they come; everything else goes to the step's log only.
_MILESTONES = {
    "synth": re.compile(r"^\d+\. Executing |^ERROR|^Warning: .*(latch|loop)"),
    "pnr": re.compile(
        r"^Info: (Packing IOs|Running main analytical placer|Running simulated annealing"
        r"|Routing\.\.|Routing complete|Max frequency for clock|Program finished)"
        r"|^ERROR"),
    "pack": re.compile(r"^ERROR"),
}
# Lines kept as "where it is now", shown when a step has been quiet for a while.
_STATUS = {
    "synth": re.compile(r"^\d+\.\d+\. Executing "),
    "pnr": re.compile(r"^Info: +(at |\d+ \|)"),
    "pack": re.compile(r"."),
}
_QUIET_S = 15.0


class BuildError(RuntimeError):
    """A tool failed; the message names the step and its log."""


@dataclass
class BuildResult:
    """What :func:`build` made.

    Attributes
    ----------
    board : Board
    build_dir : Path
        Absolute path of the build folder.
    bitstream : Path
        ``top.bit`` (ECP5) or ``top.bin`` (iCE40).
    report_path : Path
        ``report.json``.
    report : dict
        Its contents.
    logs : dict of str -> Path
        Full output of each step (``synth``, ``pnr``, ``pack``) plus Yosys's and nextpnr's
        own log files (``yosys``, ``nextpnr``).
    """
    board: Board
    build_dir: Path
    bitstream: Path
    report_path: Path
    report: dict
    logs: dict = field(default_factory=dict)


def _clock_name(net: str) -> str:
    """nextpnr's clock net -> Amaranth domain (``$glbnet$cd_sync.clk`` -> ``sync``, for the
    platform's own domain)."""
    net = net.removeprefix("$glbnet$")
    match = re.fullmatch(r"cd_(.+)\.clk", net)
    if match:
        return match.group(1)
    # A domain the design makes itself (a PLL's) is named after a module using it, whose
    # clock input Amaranth names ``clk`` for ``sync`` and ``<domain>_clk`` for the others
    # (``$glbnet$design.clk`` -> ``sync``).
    match = re.fullmatch(r"(?:[\w$]+\.)+(?:(\w+)_)?clk", net)
    if match:
        return match.group(1) or "sync"
    return net


def read_nextpnr_report(report: dict, family: str, yosys_cells: dict | None = None) -> dict:
    """Resource and timing figures from nextpnr's ``--report`` JSON.

    Returns ``luts``, ``ffs``, ``dsps``, ``brams`` (used) and ``capacity`` (available), the
    raw ``utilization``, ``fmax_mhz`` and ``fmax_constraint_mhz`` per clock (named by
    Amaranth domain where nextpnr's net name shows it), ``clock_nets`` and
    ``critical_paths`` (one per clock: endpoints, delay, logic levels).
    """
    cells = FAMILY_CELLS[family]
    utilization = {name: {"used": int(v["used"]), "available": int(v["available"])}
                   for name, v in sorted(report.get("utilization", {}).items())}
    figures = {}
    capacity = {}
    for key, cell in cells.items():
        if cell is None:
            continue
        entry = utilization.get(cell, {"used": 0, "available": 0})
        figures[key] = entry["used"]
        capacity[key] = entry["available"]
    if cells["ffs"] is None:
        # iCE40: flip-flops live inside logic cells; count them before packing.
        yosys_cells = yosys_cells or {}
        figures["ffs"] = sum(n for cell, n in yosys_cells.items() if cell.startswith("SB_DFF"))
        capacity["ffs"] = capacity["luts"]

    fmax, constraint, nets = {}, {}, {}
    for net, timing in sorted(report.get("fmax", {}).items()):
        name = _clock_name(net)
        nets[name] = net
        fmax[name] = round(float(timing["achieved"]), 2)
        constraint[name] = round(float(timing["constraint"]), 3)

    paths = {}
    for path in report.get("critical_paths", []):
        start, end = path.get("from", ""), path.get("to", "")
        if not (start.startswith("posedge ") and end == start):
            continue  # cross-domain and I/O paths: kept in nextpnr's report
        segments = path.get("path", [])
        paths[_clock_name(start.removeprefix("posedge "))] = {
            "delay_ns": round(sum(float(s.get("delay", 0)) for s in segments), 3),
            "logic_levels": sum(1 for s in segments if s.get("type") == "logic"),
            "from": segments[0]["from"]["cell"] if segments else None,
            "to": segments[-1]["to"]["cell"] if segments else None,
        }

    return {
        **{key: figures[key] for key in ("luts", "ffs", "dsps", "brams")},
        "capacity": {key: capacity[key] for key in ("luts", "ffs", "dsps", "brams")},
        "fmax_mhz": fmax,
        "fmax_constraint_mhz": constraint,
        "clock_nets": nets,
        "critical_paths": paths,
        "utilization": utilization,
    }


def _yosys_cells(stat_path: Path) -> dict:
    """Cell counts from ``stat -json`` (the whole design, after synthesis)."""
    try:
        stat = json.loads(stat_path.read_text())
    except (OSError, ValueError):
        return {}
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    return {cell: int(n) for cell, n in sorted(design.get("num_cells_by_type", {}).items())
            if not cell.startswith("$")}


def _short_yosys_version(text: str) -> str:
    """``Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)`` -> ``Yosys 0.70 (28ba3cb92)``."""
    match = re.match(r"(Yosys \S+)(?: \(git sha1 ([0-9a-f]+))?", text)
    if not match:
        return text
    return match.group(1) + (f" ({match.group(2)})" if match.group(2) else "")


def _yosys_version(stat_path: Path, log_path: Path) -> str | None:
    """Yosys's version as it wrote it into its own outputs (no extra tool run)."""
    try:
        creator = json.loads(stat_path.read_text()).get("creator")
        if creator:
            return _short_yosys_version(creator)
    except (OSError, ValueError):
        pass
    try:
        for line in log_path.read_text(errors="replace").splitlines()[:20]:
            if line.strip().startswith("Yosys "):
                return _short_yosys_version(line.strip())
    except OSError:
        pass
    return None


def _nextpnr_version(executable, env, cwd) -> str | None:
    text = tool_version(executable, "--version", env=env, cwd=cwd)
    if text is None:
        return None
    match = re.search(r"\(Version ([^)]+)\)", text)
    return match.group(1) if match else text


def _source_revision(design: Elaboratable) -> str | None:
    """``git describe --always --dirty`` of the tree the design's module comes from, or None
    (not a git checkout, or no git)."""
    module = sys.modules.get(type(design).__module__)
    folder = Path(getattr(module, "__file__", None) or ".").resolve().parent
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                                cwd=folder, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _design_name(design: Elaboratable) -> str:
    cls = type(design)
    return f"{cls.__module__}.{cls.__qualname__}"


def _run_step(argv, step, *, cwd, env, log_path, t_start, emit):
    """Run one tool with its output streamed into ``log_path``; returns seconds taken."""
    milestone = _MILESTONES.get(step, _MILESTONES["pack"])
    status = _STATUS.get(step, _STATUS["pack"])
    t0 = time.monotonic()
    last_emit, pending = t0, None
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        log.write("$ " + " ".join(argv) + "\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                text = line.rstrip()
                now = time.monotonic()
                if milestone.search(text):
                    emit(now - t_start, step, text)
                    last_emit, pending = now, None
                elif status.search(text):
                    pending = text
                if pending is not None and now - last_emit >= _QUIET_S:
                    emit(now - t_start, step, pending)
                    last_emit, pending = now, None
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if returncode != 0:
        lines = log_path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if line.startswith("ERROR")]
        detail = "\n".join(errors[:5] if errors else lines[-15:])
        raise BuildError(f"{step} ({Path(argv[0]).name}) failed with exit code {returncode}; "
                         f"full log: {log_path}\n{detail}")
    return time.monotonic() - t0


def package_blocks(rtlil: str) -> list[str]:
    """A package board top's blocks, as Yosys module names: every tile, network interface
    and register bank (a module one level below ``package``, but the register slices
    between them), every router of a die's mesh and every die link's adapters and bridges
    (not the interposer wires)."""
    prefix = "top.design.package."
    blocks = []
    for module in re.findall(r"^module \\(\S+)$", rtlil, re.MULTILINE):
        if not module.startswith(prefix):
            continue
        path = module[len(prefix):].split(".")
        if len(path) == 1 and path[0] != "network" and not path[0].endswith("_slice"):
            blocks.append(module)
        elif len(path) == 3 and path[0] == "network" and (
                path[2].startswith("router_")
                or path[2].startswith(("adapter_", "bridge_")) and path[1].startswith("link")):
            blocks.append(module)
    return blocks


def keep_blocks_script(script: str, blocks: list[str]) -> str:
    """The build's Yosys script with ``blocks`` kept as modules of their own (Yosys
    ``keep_hierarchy``, set right after the netlist is read): ABC then maps each block for
    its own paths, and shares no logic across a block's edge (docs/package.md)."""
    if SCRIPT_AFTER_READ not in script:
        raise ValueError("keep_blocks_script: not a build script (no SCRIPT_AFTER_READ)")
    if not blocks:
        return script
    return script.replace(SCRIPT_AFTER_READ, SCRIPT_AFTER_READ
                          + "\nsetattr -mod -set keep_hierarchy 1 " + " ".join(blocks), 1)


def wants_kept_blocks(design, keep_blocks: bool | None = None) -> bool:
    """``keep_blocks`` if given, else what ``design`` asks for (its ``keep_blocks``
    attribute, which a package board top sets); flat by default."""
    if keep_blocks is None:
        return bool(getattr(design, "keep_blocks", False))
    return keep_blocks


def keep_blocks_in_plan(plan, name: str = "top") -> list[str]:
    """Keep the package blocks of ``plan``'s netlist as modules of their own in its Yosys
    script (:func:`keep_blocks_script`); the blocks kept (none: the script is unchanged)."""
    kept = package_blocks(plan.files[f"{name}.il"])
    plan.files[f"{name}.ys"] = keep_blocks_script(plan.files[f"{name}.ys"], kept)
    return kept


def prepare_plan(board: str | Board, design: Elaboratable, *, name: str = "top",
                 synth_opts: str | None = None, nextpnr_opts: str = ""):
    """Amaranth's build plan for ``design`` on ``board``, with the Yosys script every build
    runs: :data:`SCRIPT_AFTER_READ`, ``synth_<family> synth_opts`` (default
    :data:`SYNTH_OPTS`), and the cell statistics written to ``<name>.stat.json``."""
    board = get_board(board)
    synth_opts = SYNTH_OPTS[board.family] if synth_opts is None else synth_opts
    return board.make_platform().prepare(
        BoardTop(board, design), name,
        synth_opts=synth_opts,
        script_after_read=SCRIPT_AFTER_READ,
        nextpnr_opts=nextpnr_opts,
        # Machine-readable cell counts next to Yosys's log.
        script_after_synth=f"tee -q -o {name}.stat.json stat -json",
        # Tools print their full log to stdout, which we keep per step and filter for
        # progress; the Yosys and nextpnr log files are written either way.
        verbose=True,
    )


def build(board: str | Board = DEFAULT_BOARD, *, seed: int = 1,
          build_dir: str | Path | None = None,
          top: Elaboratable | TopFactory | None = None,
          progress: Callable[[str], None] | None = print,
          synth_opts: str | None = None, name: str = "top",
          timing_allow_fail: bool = False, keep_blocks: bool | None = None,
          nextpnr_opts: str = "") -> BuildResult:
    """Synthesise, place and route ``top`` on ``board``; write the bitstream and
    ``report.json`` into ``build_dir`` (default ``build/<board>`` under the current folder).

    Parameters
    ----------
    board : str or Board
        A name from :data:`~chipknit.platforms.boards.BOARDS`.
    seed : int
        nextpnr's placement seed, recorded in the report.
    top : Elaboratable or callable(Board) -> Elaboratable, optional
        The design (see :mod:`chipknit.platforms.top`); default the self-test.
    progress : callable(str), optional
        Receives progress lines and the final summary; None for silence.
    synth_opts : str, optional
        Options for ``synth_<family>``; default :data:`SYNTH_OPTS` for the family.
    timing_allow_fail : bool
        Finish the build when the timing constraint is not met (nextpnr's
        ``--timing-allow-fail``): to learn how fast a design closes against a tight
        constraint. The report says the constraint failed; the bitstream is not to be used
        at that clock.
    nextpnr_opts : str
        More options for nextpnr (after the seed and the report), e.g. ``--router router2``
        or ``--placer sa``: to compare place and route flows. Recorded in the report.
    keep_blocks : bool, optional
        Synthesise a package's blocks (:func:`package_blocks`) as modules of their own.
        Default: what the design asks for (its ``keep_blocks`` attribute; a package board
        top does, docs/package.md), else flat. The report records how many were kept.

    Raises
    ------
    BuildError
        A tool failed (the message says which, with the end of its log).
    """
    t_start = time.monotonic()
    board = get_board(board)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Seed must be a non-negative integer, not {seed!r}")
    if not isinstance(nextpnr_opts, str):
        raise TypeError(f"Nextpnr options must be a string, not {nextpnr_opts!r}")
    build_path = Path("build", board.name) if build_dir is None else Path(build_dir)
    build_path = build_path.resolve()
    say = progress if progress is not None else (lambda text: None)

    def emit(elapsed, step, text):
        say(f"[{elapsed:7.1f} s] {step}: {text}")

    for var in ("nextpnr_opts", "script_after_read", "script_after_synth", "synth_opts",
                "verbose"):
        if f"AMARANTH_{var}" in os.environ:
            # Amaranth lets these override our options, which the report depends on.
            raise ValueError(f"AMARANTH_{var} is set in the environment; unset it, or use "
                             f"build()'s arguments (synth_opts=)")
    design = make_design(top, board)
    synth_opts = SYNTH_OPTS[board.family] if synth_opts is None else synth_opts
    extra_opts = nextpnr_opts.strip()
    nextpnr_opts = f"--seed {seed} --report report_nextpnr.json"
    if timing_allow_fail:
        nextpnr_opts += " --timing-allow-fail"
    if extra_opts:
        nextpnr_opts += f" {extra_opts}"
    emit(0.0, "elaborate", f"{_design_name(design)} for {board.name} ({board.device})")
    t0 = time.monotonic()
    plan = prepare_plan(board, design, name=name, synth_opts=synth_opts,
                        nextpnr_opts=nextpnr_opts)
    kept = keep_blocks_in_plan(plan, name) if wants_kept_blocks(design, keep_blocks) else []
    # Outputs of an earlier build must not pass for this one's.
    bitstream = build_path / (f"{name}.bit" if board.family == "ecp5" else f"{name}.bin")
    for stale in (bitstream, build_path / "report.json", build_path / "report_nextpnr.json",
                  build_path / f"{name}.stat.json"):
        stale.unlink(missing_ok=True)
    plan.extract(build_path)
    times = {"elaborate": round(time.monotonic() - t0, 2)}

    env = toolchain_env()
    commands = json.loads(plan.files[f"{plan.script}.json"])["commands"]
    tools = {}
    logs = {}
    for argv in commands:
        tool = argv[0]
        step = _STEP_NAMES.get(tool, tool)
        executable = env.get(tool_env_var(tool)) or tool
        tools[step] = executable
        log_path = build_path / f"{step}.log"
        logs[step] = log_path
        emit(time.monotonic() - t_start, step, f"starting {Path(executable).name}")
        seconds = _run_step([executable, *argv[1:]], step, cwd=build_path, env=env,
                            log_path=log_path, t_start=t_start, emit=emit)
        times[step] = round(seconds, 2)
        emit(time.monotonic() - t_start, step, f"done in {seconds:.1f} s")
    logs["yosys"] = build_path / f"{name}.rpt"
    logs["nextpnr"] = build_path / f"{name}.tim"

    if not bitstream.is_file():
        raise BuildError(f"The tools finished but left no bitstream at {bitstream}")
    nextpnr_report_path = build_path / "report_nextpnr.json"
    try:
        nextpnr_report = json.loads(nextpnr_report_path.read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"Cannot read nextpnr's report {nextpnr_report_path}: {exc}") from exc
    stat_path = build_path / f"{name}.stat.json"
    yosys_cells = _yosys_cells(stat_path)
    figures = read_nextpnr_report(nextpnr_report, board.family, yosys_cells)

    versions = {
        "amaranth": amaranth_version,
        "yosys": _yosys_version(stat_path, logs["yosys"]),
        "nextpnr": _nextpnr_version(tools.get("pnr"), env, build_path),
        "packages": package_versions(),
    }
    params = getattr(design, "params", None)
    times["total"] = round(time.monotonic() - t_start, 2)
    report = {
        "board": board.name,
        "family": board.family,
        "device": board.device,
        "package": board.package,
        "design": _design_name(design),
        "design_params": repr(params) if params is not None else None,
        "source": _source_revision(design),
        # The core clock the design runs at: its own (a PLL) or the board's.
        "clock_mhz": getattr(design, "clock_mhz", board.clock_mhz),
        "seed": seed,
        "luts": figures["luts"],
        "ffs": figures["ffs"],
        "dsps": figures["dsps"],
        "brams": figures["brams"],
        "capacity": figures["capacity"],
        "fmax_mhz": figures["fmax_mhz"],
        "fmax_constraint_mhz": figures["fmax_constraint_mhz"],
        "clock_nets": figures["clock_nets"],
        "critical_paths": figures["critical_paths"],
        "utilization": figures["utilization"],
        "yosys_cells": yosys_cells,
        "options": {"synth": synth_opts, "nextpnr": nextpnr_opts, "kept_blocks": len(kept)},
        "tools": versions,
        "time_s": times,
        "files": {
            "bitstream": bitstream.name,
            "nextpnr_report": nextpnr_report_path.name,
            **{f"log_{k}": v.name for k, v in logs.items()},
        },
    }
    report_path = build_path / "report.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    say(format_summary(report, build_dir=build_path))
    return BuildResult(board=board, build_dir=build_path, bitstream=bitstream,
                       report_path=report_path, report=report, logs=logs)


def format_summary(report: dict, build_dir: str | Path | None = None) -> str:
    """A one-screen summary of a build report."""
    def used(key):
        n, cap = report[key], report.get("capacity", {}).get(key)
        if cap:
            return f"{n} / {cap} ({100 * n / cap:.1f} %)"
        return str(n)

    lines = [
        f"chipknit build: {report['design']} on {report['board']} "
        f"({report['device']} {report.get('package', '')}), seed {report['seed']}",
        f"  source {report.get('source') or 'unknown'}",
        f"  params {report.get('design_params') or '-'}",
        f"  LUTs   {used('luts')}",
        f"  FFs    {used('ffs')}",
        f"  DSPs   {used('dsps')}",
        f"  BRAMs  {used('brams')}",
    ]
    for clock, mhz in report["fmax_mhz"].items():
        target = report["fmax_constraint_mhz"].get(clock)
        verdict = "" if target is None else (
            f" (constraint {target:.2f} MHz, {'met' if mhz >= target else 'FAILED'})")
        lines.append(f"  Fmax   {clock}: {mhz:.2f} MHz{verdict}")
        path = report.get("critical_paths", {}).get(clock)
        if path:
            lines.append(f"         critical path {path['delay_ns']:.2f} ns, "
                         f"{path['logic_levels']} logic levels")
    times = report["time_s"]
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in times.items() if k != "total")
    lines.append(f"  time   {times['total']:.1f} s ({steps})")
    tools = report["tools"]
    lines.append(f"  tools  amaranth {tools.get('amaranth')}, {tools.get('yosys') or 'Yosys ?'}, "
                 f"{tools.get('nextpnr') or 'nextpnr ?'}")
    where = Path(build_dir) if build_dir is not None else Path(".")
    lines.append(f"  output {where / report['files']['bitstream']}, "
                 f"{where / 'report.json'}")
    return "\n".join(lines)
