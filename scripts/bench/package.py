"""``chipknit bench package``: one GEMM end to end on the default package, in simulation.

The host (``AsyncHost`` on the host bridge's byte streams, as on a board) writes the
operands into the memory tile on die 0, issues the compiled commands to the NPU tile
``npu0`` on die 1 and reads the result back; the NPU's DMA crosses the die link both ways.
At each bit error rate (on every lane of the link, both ways) it reports, from the counters
banks read over the fabric:

- ``end_to_end_cycles``: operands written, commands issued, statuses collected, result
  read (the host's bytes included, one byte per cycle each way);
- ``npu_phase_cycles``: first command written to last status read;
- ``mac_utilisation``: M·K·N / (rows·cols · ``npu_phase_cycles``);
- ``link_utilisation``: flits the link adapters sent (both ends) over the frame's flit
  bound (``frame_flits / frame_beats`` per cycle each way) during the NPU phase;
- ``crc_errors``, ``replayed_frames``, ``bit_errors``; ``bit_exact`` against the golden model.

The testbench is ``package_e2e`` (4×4 NPUs) and its ``measure`` test (Verilator).

:func:`ice40_fit` places a package on the iCEBreaker however far it is from fitting (the
board build refuses iCE40 boards until one fits) and reports the logic cells it needs::

    python -c "from chipknit.bench import package; print(package.ice40_fit())"
"""

import json
import re
import tempfile
from pathlib import Path

from chipknit.rtl.package.top import die_link_params
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.tests.package_common import e2e_package
from chipknit.tb.tests.package_e2e import BENCH_ENV

BERS = (0.0, 1e-5)
SHAPE = (32, 32, 32)
QUICK_SHAPE = (8, 12, 8)


def run(*, quick=False, plot=None, progress=print, seed=1, full=False) -> dict:
    """The end-to-end figures; with ``full`` also the default package's place and route
    on the ULX3S at a 100 MHz constraint (``luts``, ``ffs``, ``fmax_mhz``: the
    ``package_fmax`` run, ~25 min) and the ``icebreaker`` package's fit on the UP5K
    (:func:`ice40_fit`)."""
    bench = get_testbench("package_e2e")
    shape = QUICK_SHAPE if quick else SHAPE
    link = die_link_params(e2e_package(**bench.params), 0)
    request = {"shape": shape, "bers": list(BERS), "seed": seed,
               "flits_per_cycle": link.frame_flits / link.frame_beats}
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        path = Path(tmp) / "package.json"
        path.write_text(json.dumps(request))
        progress(f"package: {shape[0]}x{shape[1]}x{shape[2]} GEMM on npu0 at BER "
                 f"{', '.join(map(str, BERS))} (Verilator; the first build is long)")
        result = run_bench(bench, simulator="verilator", seed=seed, testcase="measure",
                           env={BENCH_ENV: str(path)}, progress=progress)
        result.check()
        points = json.loads(path.read_text())["points"]
    for point in points:
        progress(f"BER {point['ber']:g}: {point['end_to_end_cycles']} cycles end to end, "
                 f"NPU phase {point['npu_phase_cycles']} (MAC utilisation "
                 f"{point['mac_utilisation']:.1%}, link {point['link_utilisation']:.1%}), "
                 f"{point['crc_errors']} CRC errors, {point['replayed_frames']} replays")
    figures = {
        "benchmark": "package",
        "package": bench.params["package"],
        "npu": bench.params["npu"],
        "shape": shape,
        "link": {"beat_width": link.beat_width, "flit_width": link.flit_width,
                 "frame_beats": link.frame_beats, "frame_flits": link.frame_flits},
        "simulator": "verilator",
        "seed": seed,
        "points": points,
    }
    if full:
        from chipknit.bench.package_fmax import measure
        progress("package: the default package on the ULX3S at a 100 MHz constraint "
                 "(package_fmax, seed 1)")
        build = measure(Path("build", "bench", "package-fmax"), seed=1)
        figures.update(luts=build["luts"], ffs=build["ffs"], fmax_mhz=build["fmax_mhz"],
                       build=build, ice40_fit=ice40_fit(progress=progress))
    if plot:
        progress("package: no plot (two points); the JSON has the figures")
    return figures


def ice40_fit(package: str = "icebreaker", *, seed: int = 1, progress=print,
              build_dir: str | Path | None = None) -> dict:
    """Build ``package`` for the iCEBreaker (``PackageBoard`` with ``fit_check=False``,
    flat synthesis) and report nextpnr's logic cells (``ICESTORM_LC``) against the UP5K's,
    its block RAMs, and whether it placed and routed; when it does not fit, nextpnr stops
    at packing and the figures come from its log."""
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.build import BuildError, build
    from chipknit.platforms.package_board import PackageBoard
    from chipknit.rtl.package.config import Package

    board = get_board("icebreaker")
    top = PackageBoard(board, Package.load(package), fit_check=False)
    folder = Path(build_dir or Path("build", "bench", f"ice40-fit-{top.package.name}"))
    progress(f"placing package {top.package.name!r} on {board.name} ({board.device}), "
             f"seed {seed}")
    try:
        report = build(board, top=top, seed=seed, build_dir=folder, progress=None,
                       timing_allow_fail=True).report
        routed, fmax = True, report["fmax_mhz"]["sync"]
    except BuildError:
        routed, fmax = False, None
    log = (folder / "pnr.log").read_text()
    used = {kind: tuple(map(int, found)) for kind, *found in re.findall(
        r"(ICESTORM_LC|ICESTORM_RAM):\s+(\d+)/\s*(\d+)", log)}
    if "ICESTORM_LC" not in used:
        raise RuntimeError(f"no utilisation in {folder / 'pnr.log'}")
    (lcs, available), (rams, ram_available) = used["ICESTORM_LC"], used["ICESTORM_RAM"]
    figures = {"benchmark": "package_ice40_fit", "package": top.package.name,
               "device": board.device, "lcs": lcs, "lcs_available": available,
               "utilisation": round(lcs / available, 3), "brams": rams,
               "brams_available": ram_available, "routed": routed, "fmax_mhz": fmax,
               "seed": seed}
    progress(f"{top.package.name}: {lcs} of {available} LCs ({lcs / available:.0%}), "
             f"{rams} of {ram_available} BRAMs, {'routed' if routed else 'does not fit'}")
    return figures
