"""``chipknit bench noc``: NoC latency against offered load, and one router's size and speed.

Latency curves: the ``measure_load`` test of the ``noc_mesh`` testbench (cocotb on
Verilator), BookSim conventions (design.md §3): Bernoulli packet creation into unbounded
source queues, offered load in flits/node/cycle, latency from creation to the tail leaving
the network (source queueing included), zero-load latency at offered load 0.01, saturation
= the highest offered load whose latency stays under 3× that pattern's zero-load latency.
Cycles per hop: the slope of zero-load latency against XY hop count over every
source/destination pair, one packet at a time; a hop is one router plus its link.

Size and speed: one 5-port router (32-bit flits, 2 VCs × 4 entries, at (1, 1) of a 4×4
mesh) placed alone (:class:`~chipknit.platforms.isolate.IsolatedComponent`: registered
inputs, XOR-folded outputs, the wrapper's XOR tree included in the LUTs).

``--quick`` runs a 2×2 mesh at two loads and skips the FPGA builds (a smoke test);
:func:`router_fpga` runs the router builds alone, at several seeds if asked.
"""

import json
import tempfile
from pathlib import Path

from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.tests.noc_load import LOAD_ENV, RESULT_ENV

# BookSim2 figures of design.md §3 (4×4 mesh, 2 VCs × 4 flits, 1-flit packets).
ANCHORS = {
    "booksim_zero_load_latency": {"input_queued": 19.45, "speculative": 12.47},
    "booksim_cycles_per_hop": {"input_queued": 5, "speculative": 3},
    "booksim_saturation": {"uniform": {"input_queued": 0.525, "speculative": 0.647},
                           "transpose": {"input_queued": 0.225, "speculative": 0.335}},
    "target": {"cycles_per_hop": 2, "zero_load_latency": 10, "uniform": 0.75,
               "transpose": 0.32, "luts_per_port": 300, "fmax_mhz": 125},
}
PATTERNS = ("uniform", "transpose", "hotspot")
RATES = (0.01,) + tuple(round(0.05 * k, 2) for k in range(1, 21))


def _load_sweep(mesh, config, seed, progress):
    bench = get_testbench("noc_mesh")
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-noc-") as tmp:
        out = Path(tmp) / "load.json"
        progress(f"simulating a {mesh['columns']}x{mesh['rows']} mesh on Verilator "
                 f"({len(config['sweeps'])} sweeps; the first build takes minutes)")
        result = run_bench(bench, simulator="verilator", seed=seed, params=mesh,
                           testcase="measure_load", progress=progress,
                           env={LOAD_ENV: json.dumps(config), RESULT_ENV: str(out)})
        result.check()
        return json.loads(out.read_text())


def _slope(latency_by_hops):
    xs = [int(h) for h in latency_by_hops]
    ys = list(latency_by_hops.values())
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / \
        sum((x - mean_x) ** 2 for x in xs)


def _saturation(points):
    zero = points[0]["latency"]
    best = None
    for point in points:
        if not point["complete"] or point["latency"] > 3 * zero:
            break
        best = point["offered"]
    return best


def router_fpga(progress=print, boards=("ulx3s", "icebreaker"), seeds=(1,), *,
                wire_requests=True):
    """The router part of the bench alone: one 5-port router placed on each board, once per
    nextpnr seed (build folders ``build/bench/noc-router-<board>[-s<seed>]``, ``-registered``
    without ``wire_requests``: 3 cycles per hop, as in the package). Returns
    ``{board: figures}`` for one seed, ``{board: [figures per seed]}`` for several; a board
    the router does not fit gets ``{"fits": False, "error": ...}``. Without the latency
    sweep: ``python -c "from chipknit.bench.noc import router_fpga;
    print(router_fpga(boards=['ulx3s'], seeds=[1, 2, 3]))"``."""
    from chipknit.platforms.build import BuildError, build
    from chipknit.platforms.isolate import IsolatedComponent
    from chipknit.tb.tests.noc_common import router_top

    figures = {}
    for board in boards:
        runs = []
        for seed in seeds:
            kind = "" if wire_requests else " without wire requests"
            progress(f"placing one 5-port router{kind} on {board} (seed {seed})")
            router = router_top(columns=4, rows=4, x=1, y=1, wire_requests=wire_requests)
            folder = (f"noc-router-{board}" + ("" if wire_requests else "-registered")
                      + ("" if seed == 1 else f"-s{seed}"))
            try:
                report = build(board, top=IsolatedComponent(router), progress=None, seed=seed,
                               build_dir=Path("build", "bench", folder)).report
            except BuildError as error:
                runs.append({"fits": False, "error": str(error).splitlines()[0]})
                break
            ports = router.params.ports
            runs.append({
                "design": "router, 5 ports, 32-bit flits, 2 VCs x 4 entries, isolated"
                          + ("" if wire_requests else ", no wire requests (3 cycles/hop)"),
                "device": report["device"], "fits": True, "luts": report["luts"],
                "luts_per_port": round(report["luts"] / ports, 1), "ffs": report["ffs"],
                "fmax_mhz": report["fmax_mhz"]["sync"], "seed": report["seed"],
                "logic_levels": report["critical_paths"]["sync"]["logic_levels"],
            })
        figures[board] = runs[0] if len(seeds) == 1 or not runs[0]["fits"] else runs
    return figures


def run(*, quick=False, plot=None, progress=print, seed=1) -> dict:
    if quick:
        mesh = {"columns": 2, "rows": 2}
        config = {"warmup": 100, "window": 300, "drain": 1000, "sweeps": [
            {"pattern": "uniform", "packet_length": 1, "rates": [0.01, 0.3]}]}
    else:
        mesh = {"columns": 4, "rows": 4}
        sweeps = [{"pattern": p, "packet_length": 1, "rates": list(RATES)} for p in PATTERNS]
        sweeps.append({"pattern": "uniform", "packet_length": 4, "rates": list(RATES)})
        config = {"warmup": 500, "window": 2000, "drain": 4000, "sweeps": sweeps}
    measured = _load_sweep(mesh, config, seed, progress)
    points = measured["points"]
    curves = {}
    for sweep in config["sweeps"]:
        name = f"{sweep['pattern']}-{sweep['packet_length']}flit"
        curves[name] = [p for p in points if p["pattern"] == sweep["pattern"]
                        and p["packet_length"] == sweep["packet_length"]]
    uniform = curves["uniform-1flit"]
    figures = {
        "benchmark": "noc",
        "simulator": "verilator",
        "seed": seed,
        "mesh": f"{mesh['columns']}x{mesh['rows']}",
        "router": "2 VCs (one per message class) x 4-entry buffers, 32-bit flits",
        "zero_load_latency_cycles": uniform[0]["latency"],
        "cycles_per_hop": round(_slope(measured["latency_by_hops"]), 3),
        "cycles_per_hop_counts_link": True,
        "latency_by_hops": measured["latency_by_hops"],
        "saturation_throughput": {name: _saturation(curve) for name, curve in curves.items()},
        "curves": curves,
        "simulated_cycles": measured["simulated_cycles"],
        "cycles_per_second": measured["cycles_per_second"],
        "anchors": ANCHORS,
    }
    for name, curve in curves.items():
        progress(f"{name}: zero-load {curve[0]['latency']} cycles, saturation "
                 f"{figures['saturation_throughput'][name]} flits/node/cycle")
    if not quick:
        figures["fpga"] = router_fpga(progress)
        # Without wire requests (3 cycles per hop): the router alone is faster, and the
        # package's routers are built so since the ninth session (docs/noc.md, Issue 7).
        figures["fpga_without_wire_requests"] = router_fpga(
            progress, boards=("ulx3s",), wire_requests=False)["ulx3s"]
    if plot:
        _plot(figures, plot)
        figures["plot"] = str(plot)
    return figures


def _plot(figures, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for name, curve in figures["curves"].items():
        rows = [p for p in curve if p["latency"] is not None]
        line, = axes.plot([p["offered"] for p in rows], [p["latency"] for p in rows], "o-",
                          markersize=3, label=f"{name} (sat. "
                          f"{figures['saturation_throughput'][name]})")
    booksim = figures["anchors"]["booksim_saturation"]
    for pattern, style in (("uniform", "--"), ("transpose", ":")):
        for kind, colour in (("input_queued", "grey"), ("speculative", "black")):
            axes.axvline(booksim[pattern][kind], color=colour, linestyle=style, linewidth=0.8,
                         label=f"BookSim2 {pattern} sat., {kind.replace('_', '-')}")
    zero = figures["anchors"]["booksim_zero_load_latency"]
    axes.axhline(zero["speculative"], color="black", linewidth=0.6, linestyle="-.",
                 label="BookSim2 4x4 uniform zero-load, speculative")
    axes.set_xlabel("offered load (flits/node/cycle)")
    axes.set_ylabel("average packet latency (cycles)")
    axes.set_ylim(0, max(60, 4 * figures["zero_load_latency_cycles"]))
    axes.set_xlim(0, 1.0)
    axes.set_title(f"NoC {figures['mesh']} mesh: latency vs offered load")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=6.5, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
