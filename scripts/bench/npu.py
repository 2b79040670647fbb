"""``chipknit bench npu``: the NPU engine's MAC utilisation, exactness, size and speed.

- **Utilisation** (cocotb, Icarus): S×S×S quantised GEMMs from local scratchpads on the
  GEMM engine (4×4 array), cycles from the first compute command to the last accumulator
  written against the ideal ``S³ / (R·C)``; also to the last requantised result out. Every
  result is checked against the NumPy model (``bit_exact``).
- **Size and speed** (Yosys + nextpnr, :class:`~chipknit.platforms.isolate.IsolatedComponent`
  with registered random inputs and XOR-folded outputs): the systolic array and the
  requantiser alone on the ULX3S (ECP5-85F) and the iCEBreaker (iCE40UP5K).

- **Utilisation over the fabric** (cocotb, Verilator, :func:`utilisation_over_fabric`): an
  S×S×S GEMM compiled by :mod:`chipknit.npu` into a LOAD/COMPUTE/STORE program, operands and
  results through the DMA from a memory model delivering B bytes/cycle with a fixed latency,
  against the roofline ``min(R·C, B · MACs / bytes)`` MACs per cycle (bytes: A, W, the
  channel parameters and the int8 results, each moved once).

- **The package's NPU tile** (:func:`tile_figures`): the default package's 8×8
  :class:`~chipknit.rtl.tiles.npu.NpuTile`, its GEMM engine and its DMA, each isolated on
  the ULX3S (LUT4, FFs, DSPs, BRAMs, Fmax).

``quick`` (the smoke test): one small GEMM, a 4×4 array on ECP5 and a 2×2 on iCE40.
Default: S in 32, 64, 128; an 8×8 array with MULT18X18D cells on ECP5; 4×4 on iCE40; the
package's tile, engine and DMA.
``full=True`` (``chipknit bench npu --full``) adds S = 256, a 16×16 ECP5 array and the
package's tile with a 16×16 array (:func:`tile16_figure`), which take 30–60 minutes or more
to place and route on a loaded machine (design.md §5).
"""

import json
import math
import tempfile
from pathlib import Path

from chipknit.platforms.build import build
from chipknit.platforms.isolate import IsolatedComponent
from chipknit.rtl.npu.array import ArrayParams, SystolicArray
from chipknit.rtl.npu.requant import Requantiser, RequantParams
from chipknit.tb.benches import NPU_ENGINE_PARAMS, get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.tests.npu_dma import BENCH_ENV
from chipknit.tb.tests.npu_rate import RESULT_ENV, SIZES_ENV

ARRAY = (4, 4)


def _engine_params(size, rows, cols):
    """Scratchpads big enough for one size³ GEMM (powers of two)."""
    k_blocks, n_blocks = math.ceil(size / rows), math.ceil(size / cols)

    def pow2(n):
        return 1 << max(n - 1, 1).bit_length()

    return {**NPU_ENGINE_PARAMS, "rows": rows, "cols": cols, "lanes": 1,
            "a_depth": pow2(size * k_blocks), "w_depth": pow2(n_blocks * k_blocks * rows),
            "acc_depth": pow2(2 * size), "qp_depth": pow2(n_blocks * cols)}


def _fpga(board, name, component, progress, seed=1):
    progress(f"placing {name} on {board} (seed {seed})")
    suffix = "" if seed == 1 else f"-seed{seed}"
    report = build(board, top=IsolatedComponent(component), progress=None, seed=seed,
                   build_dir=Path("build", "bench", f"npu-{name}-{board}{suffix}")).report
    return {"design": name, "device": report["device"], "luts": report["luts"],
            "ffs": report["ffs"], "dsps": report["dsps"], "brams": report["brams"],
            "fmax_mhz": report["fmax_mhz"]["sync"], "seed": report["seed"],
            "pnr_s": report["time_s"]["pnr"],
            "note": "isolated: luts include the wrapper's XOR tree (~1 LUT4 per 4 output bits)"}


#: MULT18X18D on the LFE5U-85F: an ``ecp5_mixed`` array gives this many cells a DSP.
ECP5_85F_DSPS = 156


def array_figure(board, rows, cols, mac, *, dsp_cells=None, progress=print) -> dict:
    """Size and Fmax of one isolated :class:`SystolicArray`, with GOPS at Fmax. An
    ``ecp5_mixed`` array gets ``dsp_cells`` DSP cells (default all the 85F has)."""
    if mac == "ecp5_mixed" and dsp_cells is None:
        dsp_cells = min(ECP5_85F_DSPS, rows * cols)
    params = ArrayParams(rows=rows, cols=cols, mac=mac, dsp_cells=dsp_cells or 0)
    name = f"array{rows}x{cols}-{mac}" + (f"{dsp_cells}" if mac == "ecp5_mixed" else "")
    entry = _fpga(board, name, SystolicArray(params), progress)
    entry["gops_at_fmax"] = round(2 * rows * cols * entry["fmax_mhz"] / 1000, 2)
    return entry


def dma_figures(*, progress=print) -> list[dict]:
    """Size and Fmax of the DMA alone and of the command queue with its DMA (small tile:
    2×2 array, 64-row scratchpads, one requantiser lane, 32-bit beats, bursts of up to 16
    beats, 4 requests in flight), isolated: the DMA on the iCE40 UP5K and the ECP5-85F, the
    queue on the ECP5-85F."""
    from chipknit.rtl.noc.flit import FlitFormat
    from chipknit.rtl.noc.transaction import TransactionParams
    from chipknit.rtl.npu.commands import CommandQueue, QueueParams
    from chipknit.rtl.npu.dma import Dma
    from chipknit.rtl.npu.engine import EngineParams
    engine = EngineParams(array=ArrayParams(rows=2, cols=2), a_depth=64, w_depth=64,
                          acc_depth=64, qp_depth=64, requant_lanes=1)
    transaction = TransactionParams(flit=FlitFormat(data_width=32), length_bits=4)
    params = QueueParams(engine, depth=4, in_flight=8, transaction=transaction,
                         outstanding=4)
    # The whole queue (engine, requantiser) does not fit the UP5K: 5541 of 5280 LCs and
    # more than its 8 SB_MAC16 (measured); on iCE40 only the DMA is placed.
    figures = [_fpga("icebreaker", "dma-small", Dma(params.dma), progress)]
    figures.append(_fpga("ulx3s", "dma-small", Dma(params.dma), progress))
    figures.append(_fpga("ulx3s", "queue-with-dma-small", CommandQueue(params), progress))
    return figures


def package_tile_params():
    """The parameters of the default package's first NPU tile, exactly as
    :class:`~chipknit.rtl.package.top.PackageTop` builds it."""
    from chipknit.rtl.package.config import Package
    from chipknit.rtl.package.top import PackageTop
    package = Package.named("default")
    top = PackageTop(package)
    name = next(tile.name for tile in package.tiles if tile.kind == "npu")
    return top.tile_params[name]


def tile_figures(*, seeds=(1,), parts=("tile", "engine", "dma"), array=(8, 8),
                 progress=print) -> list[dict]:
    """Size and Fmax on the ULX3S (ECP5-85F) of the NPU tile as in the default package
    (:func:`package_tile_params`: its scratchpads, queue and DMA, with an ``array`` of
    rows × cols ``infer`` MACs, 8×8 by default; the package itself now ships 4×4),
    isolated, and of its GEMM engine (array, scratchpads, requantiser) and its DMA alone;
    one build per part and nextpnr seed."""
    from dataclasses import replace

    from chipknit.rtl.npu.dma import Dma
    from chipknit.rtl.npu.engine import GemmEngine
    from chipknit.rtl.tiles.npu import NpuTile
    params = package_tile_params()
    if array is not None:
        engine = params.queue.engine
        engine = replace(engine, array=replace(engine.array, rows=array[0], cols=array[1]))
        params = replace(params, queue=replace(params.queue, engine=engine))
    rows, cols = params.queue.engine.array.rows, params.queue.engine.array.cols
    factories = {"tile": lambda: NpuTile(params),
                 "engine": lambda: GemmEngine(params.queue.engine),
                 "dma": lambda: Dma(params.queue.dma)}
    figures = []
    for part in parts:
        for seed in seeds:
            entry = _fpga("ulx3s", f"{part}-{rows}x{cols}-package", factories[part](),
                          progress, seed=seed)
            progress(f"{entry['design']} seed {seed}: {entry['luts']} LUT4, {entry['ffs']} FF, "
                     f"{entry['dsps']} DSP, {entry['brams']} BRAM, {entry['fmax_mhz']} MHz")
            figures.append(entry)
    return figures


def tile16_params(dsp_cells=None):
    """:func:`package_tile_params` with a 16×16 ``ecp5_mixed`` array: as many cells get a
    MULT18X18D as the 85F has left after the tile's other DSPs (the requantiser's four per
    lane; the queue's range check uses none since it lost its multiplier)."""
    from dataclasses import replace
    params = package_tile_params()
    engine = params.queue.engine
    if dsp_cells is None:
        dsp_cells = ECP5_85F_DSPS - 4 * engine.requant_lanes
    array = ArrayParams(rows=16, cols=16, mac="ecp5_mixed", dsp_cells=dsp_cells)
    return replace(params, queue=replace(params.queue, engine=replace(engine, array=array)))


def tile16_figure(*, part="tile", seed=1, router="router2", allow_fail=False,
                  progress=print) -> dict:
    """Size and Fmax of the package's NPU tile (``part="tile"``) or its GEMM engine
    (``"engine"``) with a 16×16 ``ecp5_mixed`` array (:func:`tile16_params`), isolated on
    the ULX3S, with GOPS at Fmax (2·256 operations per cycle). Slow: 30–60 min or more on a
    loaded 2-core machine (``chipknit bench npu --full``).

    ``router``: nextpnr's router (``router2`` routes this design; ``router1`` had 102 k of
    117 k arcs of the bare array still unrouted after 31 min). It goes to nextpnr through a
    wrapper set as ``NEXTPNR_ECP5``, so the report's ``options`` do not show it; the entry's
    ``nextpnr_extra`` does. ``allow_fail`` adds ``--timing-allow-fail``: only to learn the
    critical path of a design that misses the board's clock, never for a figure.
    """
    import os
    import stat

    from chipknit.platforms.toolchain import toolchain_env
    from chipknit.rtl.npu.engine import GemmEngine
    from chipknit.rtl.tiles.npu import NpuTile
    params = tile16_params()
    component = NpuTile(params) if part == "tile" else GemmEngine(params.queue.engine)
    extra = [f"--router {router}"] + (["--timing-allow-fail"] if allow_fail else [])
    nextpnr = toolchain_env()["NEXTPNR_ECP5"]
    saved = os.environ.get("NEXTPNR_ECP5")
    with tempfile.TemporaryDirectory(prefix="chipknit-nextpnr-") as tmp:
        wrapper = Path(tmp) / "nextpnr-ecp5"
        wrapper.write_text(f'#!/bin/sh\nexec "{nextpnr}" "$@" {" ".join(extra)}\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        os.environ["NEXTPNR_ECP5"] = str(wrapper)
        try:
            entry = _fpga("ulx3s", f"{part}16x16-ecp5_mixed{params.queue.engine.array.dsp_cells}",
                          component, progress, seed=seed)
        finally:
            if saved is None:
                del os.environ["NEXTPNR_ECP5"]
            else:
                os.environ["NEXTPNR_ECP5"] = saved
    entry["nextpnr_extra"] = " ".join(extra)
    entry["gops_at_fmax"] = round(2 * 256 * entry["fmax_mhz"] / 1000, 2)
    entry["lut_fraction"] = round(entry["luts"] / 83640, 4)
    return entry


def utilisation_over_fabric(*, size=64, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0), latency=20,
                            seed=1, progress=print) -> dict:
    """MAC utilisation of an S×S×S GEMM fed through the DMA, against its roofline."""
    bench = get_testbench("npu_fabric")
    rows, cols = bench.params["rows"], bench.params["cols"]
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        out = Path(tmp) / "fabric.json"
        result = run_bench(bench, simulator="verilator", seed=seed,
                           env={RESULT_ENV: str(out), BENCH_ENV: json.dumps(
                               {"size": size, "bandwidths": list(bandwidths),
                                "latency": latency})})
        result.check()
        measured = json.loads(out.read_text())
    macs = size ** 3
    # Each operand and result moved once: A, W (int8), 12 bytes of parameters per channel,
    # the int8 results.
    min_bytes = 2 * size * size + 12 * size + size * size
    peak = rows * cols
    points = []
    for point in measured["points"]:
        b = point["bytes_per_cycle"]
        roofline = min(peak, b * macs / min_bytes)          # MACs per cycle
        achieved = macs / point["cycles"]
        points.append({**point, "bytes_moved": point["beats"] * measured["beat_bytes"],
                       "min_bytes": min_bytes, "roofline_macs_per_cycle": round(roofline, 4),
                       "macs_per_cycle": round(achieved, 4),
                       "utilisation": round(achieved / peak, 4),
                       "of_roofline": round(achieved / roofline, 4),
                       "bound": "compute" if roofline == peak else "bandwidth"})
        progress(f"fabric {size}^3 at {b} B/cycle: {point['cycles']} cycles, "
                 f"{achieved:.2f} MACs/cycle, roofline {roofline:.2f} "
                 f"({achieved / roofline:.3f} of it)")
    return {"size": size, "array": {"rows": rows, "cols": cols}, "latency": latency,
            "peak_macs_per_cycle": peak, "arithmetic_intensity": round(macs / min_bytes, 3),
            "simulator": "verilator", "seed": seed, "points": points,
            "bit_exact": all(p["bit_exact"] for p in points)}


def run(*, quick=False, full=False, plot=None, progress=print, seed=1) -> dict:
    sizes = [16] if quick else [32, 64, 128] + ([256] if full else [])
    rows, cols = ARRAY
    bench = get_testbench("npu_rate")
    points = []
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        for size in sizes:
            out = Path(tmp) / f"s{size}.json"
            result = run_bench(bench, simulator="icarus", seed=seed,
                               params=_engine_params(size, rows, cols),
                               env={RESULT_ENV: str(out), SIZES_ENV: json.dumps([size])})
            result.check()
            point = json.loads(out.read_text())["points"][0]
            points.append(point)
            progress(f"{size}^3 on {rows}x{cols}: {point['compute_cycles']} cycles, ideal "
                     f"{point['ideal_cycles']:.0f}: MAC utilisation "
                     f"{point['mac_utilisation']:.4f} (end to end "
                     f"{point['end_to_end_utilisation']:.4f})")
    figures = {
        "benchmark": "npu",
        "array": {"rows": rows, "cols": cols},
        "simulator": "icarus",
        "seed": seed,
        "mac_utilisation": {str(p["m"]): p["mac_utilisation"] for p in points},
        "points": points,
        "bit_exact": all(p["bit_exact"] for p in points),
    }
    ecp5 = [(4, 4, "ecp5_dsp")] if quick else [(8, 8, "ecp5_dsp"), (8, 8, "lut")]
    if full:
        ecp5.append((16, 16, "ecp5_mixed"))
    # The UP5K has 8 SB_MAC16: a 2x4 array fills them (synth_ice40 -dsp maps `a*b`).
    ice40 = [(2, 2, "infer")] if quick else [(2, 4, "infer")]
    figures["fpga"] = []
    for board, configs in (("ulx3s", ecp5), ("icebreaker", ice40)):
        for r, c, mac in configs:
            figures["fpga"].append(array_figure(board, r, c, mac, progress=progress))
    if not quick:
        figures["fpga"].append(_fpga("ulx3s", "requantiser-1lane",
                                     Requantiser(RequantParams(lanes=1)), progress))
        figures["tile"] = tile_figures(progress=progress)
    if full:
        figures["tile16x16"] = tile16_figure(progress=progress)
    figures["utilisation_over_fabric"] = fabric = utilisation_over_fabric(
        size=16 if quick else 64, bandwidths=(1.0,) if quick else (0.25, 0.5, 1.0, 2.0, 4.0),
        seed=seed, progress=progress)
    if plot:
        _plot(points, (rows, cols), plot)
        figures["plot"] = str(plot)
        fabric_plot = Path(plot).with_name(Path(plot).stem + "-fabric" + Path(plot).suffix)
        _plot_fabric(fabric, fabric_plot)
        figures["fabric_plot"] = str(fabric_plot)
    return figures


def _plot_fabric(fabric, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    points = fabric["points"]
    b = [p["bytes_per_cycle"] for p in points]
    grid = [min(b) * 2 ** (i / 8) for i in range(int(8 * math.log2(max(b) / min(b))) + 1)]
    peak, intensity = fabric["peak_macs_per_cycle"], fabric["arithmetic_intensity"]
    axes.plot(grid, [min(peak, x * intensity) for x in grid], "-", color="grey",
              label="roofline")
    axes.plot(b, [p["macs_per_cycle"] for p in points], "o", label="measured")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log", base=2)
    axes.set_xlabel("memory bandwidth B (bytes/cycle)")
    axes.set_ylabel("MACs/cycle")
    axes.set_title(f"{fabric['size']}^3 GEMM over the DMA, "
                   f"{fabric['array']['rows']}x{fabric['array']['cols']} array")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def _plot(points, array, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    sizes = [p["m"] for p in points]
    axes.plot(sizes, [p["mac_utilisation"] for p in points], "o-", label="compute")
    axes.plot(sizes, [p["end_to_end_utilisation"] for p in points], "x--",
              label="to last requantised result")
    axes.axhline(0.95, color="grey", linestyle=":", label="target 95 %")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("M = N = K")
    axes.set_ylabel("MAC utilisation")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"GEMM engine, {array[0]}x{array[1]} array, local scratchpads")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
