"""``chipknit bench credit``: the credit channel's rate against depth and wire latency.

Each point builds the channel with that depth and latency, runs it saturated and with a
randomly stalling consumer (cocotb, Icarus), and sets the measured rate beside the credit
loop model's ``min(1, depth / round trip)``. The plot shows both. Size and speed come from
placing the board self-test (the channel plus PRBS generator, checker and counters) on the
ECP5 and iCE40 boards.
"""

import json
import tempfile
from pathlib import Path

from chipknit.platforms.build import build
from chipknit.platforms.top import selftest_top
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.models.credit import CreditChannelModel, full_rate_depth
from chipknit.tb.tests.credit_rate import RESULT_ENV

DEPTHS = (1, 2, 4, 6, 8, 12)
LATENCIES = (0, 1, 3)
QUICK_DEPTHS, QUICK_LATENCIES = (1, 4), (1,)


def run(*, quick=False, plot=None, progress=print, seed=1) -> dict:
    bench = get_testbench("credit_rate")
    depths, latencies = (QUICK_DEPTHS, QUICK_LATENCIES) if quick else (DEPTHS, LATENCIES)
    points = []
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        for latency in latencies:
            for depth in depths:
                out = Path(tmp) / f"d{depth}-l{latency}.json"
                result = run_bench(bench, simulator="icarus", seed=seed,
                                   params={"depth": depth, "latency": latency},
                                   env={RESULT_ENV: str(out)})
                result.check()
                measured = json.loads(out.read_text())
                model = CreditChannelModel(depth=depth, latency=latency)
                points.append({
                    "depth": depth, "latency": latency,
                    "round_trip_cycles": model.round_trip,
                    "model_rate": round(model.throughput, 4),
                    "saturated_rate": measured["saturated"],
                    "backpressured_rate": measured["backpressured"],
                })
                progress(f"depth {depth:2} latency {latency}: saturated "
                         f"{measured['saturated']:.3f} (model {model.throughput:.3f}), "
                         f"50 % stalls {measured['backpressured']:.3f}")
    figures = {
        "benchmark": "credit",
        "simulator": "icarus",
        "seed": seed,
        "points": points,
        "max_model_error": max(abs(p["saturated_rate"] - p["model_rate"]) for p in points),
        "full_rate_depth": {str(latency): full_rate_depth(latency) for latency in latencies},
    }
    figures["fpga"] = {}
    for board in ("ulx3s", "icebreaker"):
        progress(f"placing the credit self-test on {board}")
        report = build(board, top=selftest_top, progress=None,
                       build_dir=Path("build", "bench", f"credit-{board}")).report
        figures["fpga"][board] = {
            "design": "credit self-test (channel + PRBS generator/checker + counters)",
            "device": report["device"], "luts": report["luts"], "ffs": report["ffs"],
            "fmax_mhz": report["fmax_mhz"]["sync"], "seed": report["seed"]}
    if plot:
        _plot(points, latencies, plot)
        figures["plot"] = str(plot)
    return figures


def _plot(points, latencies, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for latency in latencies:
        rows = [p for p in points if p["latency"] == latency]
        depths = [p["depth"] for p in rows]
        line, = axes.plot(depths, [p["saturated_rate"] for p in rows], "o-",
                          label=f"latency {latency}: measured")
        axes.plot(depths, [p["model_rate"] for p in rows], "--", color=line.get_color(),
                  label=f"latency {latency}: model")
        axes.plot(depths, [p["backpressured_rate"] for p in rows], "x:",
                  color=line.get_color(), label=f"latency {latency}: 50 % sink stalls")
    axes.set_xlabel("receiver buffer depth (credits)")
    axes.set_ylabel("flits / cycle")
    axes.set_title("credit channel rate")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
