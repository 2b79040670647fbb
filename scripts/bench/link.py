"""``chipknit bench link``: efficiency, latency and goodput under bit errors of the link.

- Efficiency and goodput: :class:`~chipknit.rtl.link.soak.LinkSoak` (hardware generators
  and checkers, saturating load on every VC of both directions) on Verilator, one run per BER,
  with at least 1e5 flits per point unless ``quick``.
- Latency: single flits on an idle :class:`~chipknit.rtl.link.pair.LinkPair`, from the first
  edge the flit is offered on ``i`` to the edge it leaves ``o`` (a wire counts 0), lane flight
  excluded, the frame's serialisation included; split into the wait for a frame to start, the
  frame's beats and the receiver's check.
- Frame size trade-off: the same latency run and a saturated run (payload efficiency
  measured on the lanes) on a ``LinkPair`` for each ``frame_flits`` in the sweep.
- Size and speed: one :class:`~chipknit.rtl.link.adapter.LinkAdapter` placed alone on the
  ECP5-85F, with the default parameters and with the default package's (17 one-bit lanes:
  17-bit beats, 34-bit link flits), at nextpnr seeds 1 and 2 (and a small one on the
  iCE40UP5K).

The goodput bound is go-back-N's ``(1 - p) / (1 + (W - 1) p)`` with ``p`` the frame error
rate at that BER and ``W`` the frames resent per replay, measured.
"""

import json
import tempfile
from pathlib import Path

from chipknit.platforms.build import build
from chipknit.platforms.isolate import IsolatedComponent
from chipknit.rtl.link.adapter import LinkAdapter
from chipknit.rtl.link.frame import LinkParams
from chipknit.rtl.package.config import Package
from chipknit.rtl.package.top import die_link_params
from chipknit.tb.benches import LINK_PAIR_PARAMS, get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.models.link import frame_error_rate, go_back_n_goodput
from chipknit.tb.tests.link_soak import BERS_ENV, CYCLES_ENV, RESULT_ENV

BERS = (0, 1e-6, 1e-5, 1e-4, 1e-3)
# At least 1e5 flits per point: both directions together deliver ~0.48 flits/cycle
# error-free, ~0.31 at 1e-4 and ~0.031 at 1e-3 (measured with independent bit errors).
CYCLES = (220_000, 220_000, 230_000, 360_000, 3_600_000)
QUICK_BERS, QUICK_CYCLES = (0, 1e-4), (20_000, 20_000)
FRAME_FLITS = (1, 2, 4, 8, 15)
QUICK_FRAME_FLITS = (4, 15)


def _pair_figures(testcase, seed, params=None):
    """Run one ``link_pair`` testcase on Verilator and return the JSON it wrote."""
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        out = Path(tmp) / "result.json"
        result = run_bench(get_testbench("link_pair"), simulator="verilator", seed=seed,
                           params=params or {}, testcase=testcase, env={RESULT_ENV: str(out)})
        result.check()
        return json.loads(out.read_text())


def frame_size_tradeoff(frame_flits=FRAME_FLITS, *, seed=1, progress=print) -> list[dict]:
    """Zero-load latency and saturated payload efficiency for each frame size (simulated)."""
    rows = []
    for flits in frame_flits:
        progress(f"frame_flits={flits}: zero-load latency and saturated efficiency")
        latency = _pair_figures("zero_load_latency", seed, {"frame_flits": flits})
        saturated = _pair_figures("saturated_efficiency", seed, {"frame_flits": flits})
        rows.append({"frame_flits": flits, "frame_beats": latency["frame_beats"],
                     "payload_efficiency": saturated["payload_efficiency"],
                     "payload_efficiency_format": saturated["format_efficiency"],
                     "latency_cycles": latency["latency"],
                     "adapter_pipeline_cycles": latency["adapter_pipeline"]})
    return rows


def run(*, quick=False, plot=None, progress=print, seed=1) -> dict:
    params = LinkParams()
    bers, cycles = (QUICK_BERS, QUICK_CYCLES) if quick else (BERS, CYCLES)
    with tempfile.TemporaryDirectory(prefix="chipknit-bench-") as tmp:
        out = Path(tmp) / "soak.json"
        progress(f"link soak: BERs {bers}, cycles {cycles} (Verilator)")
        result = run_bench(get_testbench("link_soak"), simulator="verilator", seed=seed,
                           env={BERS_ENV: json.dumps(bers), CYCLES_ENV: json.dumps(cycles),
                                RESULT_ENV: str(out)})
        result.check()
        points = json.loads(out.read_text())
    progress("zero-load latency (LinkPair)")
    latency = _pair_figures("zero_load_latency", seed)
    tradeoff = frame_size_tradeoff(QUICK_FRAME_FLITS if quick else FRAME_FLITS, seed=seed,
                                   progress=progress)

    def rate(point):
        return sum(point["flits_per_cycle"].values())

    clean = rate(points[0])
    goodput, bound = {}, {}
    for point in points[1:]:
        ber = point["ber"]
        p = frame_error_rate(ber, params.frame_bits)
        rewinds = point["naks"] + point["timeouts"]
        window = point["replayed_frames"] / rewinds if rewinds else 1.0
        goodput[f"{ber:g}"] = round(rate(point) / clean, 4)
        bound[f"{ber:g}"] = {"frame_error_rate": round(p, 5), "frames_per_replay": round(window, 2),
                             "go_back_n_bound": round(go_back_n_goodput(p, window), 4)}
        progress(f"BER {ber:g}: goodput {goodput[f'{ber:g}']:.4f} of error-free "
                 f"(bound {bound[f'{ber:g}']['go_back_n_bound']:.4f}), "
                 f"{point['received']} flits, {point['crc_errors']} CRC errors")
    per_direction_bits = clean / 2 * params.flit_width
    figures = {
        "benchmark": "link",
        "params": {k: v for k, v in LINK_PAIR_PARAMS.items()},
        "frame_bits": params.frame_bits,
        "payload_efficiency": round(per_direction_bits / params.beat_width, 4),
        "payload_efficiency_format": round(params.payload_efficiency, 4),
        "latency_cycles": latency["latency"],
        "adapter_pipeline_cycles": latency["adapter_pipeline"],
        "latency_breakdown": {name: latency[name]
                              for name in ("wait", "serialisation", "rx_check")},
        "frame_beats": latency["frame_beats"],
        "latency_note": "zero load, one flit at a time, A to B: clock edges from the first "
                        "edge the flit is valid on i to the edge it leaves o (a wire counts 0), "
                        "minus the lane flight. Serialisation counted: the frame's beats, "
                        "first beat to CRC (frame_beats - 1 edges), because the receiver delivers "
                        "a frame's flits only after its CRC beat (store-and-forward per frame). "
                        "adapter_pipeline_cycles = latency - frame_beats: the wait for the "
                        "current frame to end (frames go back to back, idle = control frames; "
                        "the next frame is decided a cycle ahead) plus the receiver's check "
                        "and output register (2 cycles) minus 1. latency_breakdown: wait "
                        "(offer to the frame start that takes the flit), serialisation, "
                        "rx_check (CRC beat in to flit out).",
        "frame_size_tradeoff": tradeoff,
        "goodput": goodput,
        "goodput_bound": bound,
        "flits_per_point": {f"{p['ber']:g}": p["received"] for p in points},
        "lost": sum(p["lost"] for p in points),
        "duplicated": sum(p["duplicated"] for p in points),
        "corrupted": sum(p["corrupted"] for p in points),
        "crc_errors": sum(p["crc_errors"] for p in points),
        "replayed_frames": sum(p["replayed_frames"] for p in points),
        "points": points,
        "seed": seed,
    }
    figures["fpga"] = {}
    # The default adapter's receive buffers and replay buffer are read asynchronously and
    # become flip-flops on the iCE40, which then does not fit: place a small link there.
    small = LinkParams(flit_width=32, frame_flits=4, rx_credits=8, replay_frames=2)
    # The default package's die link: 17 one-bit lanes (what PackageDieLink builds).
    package = die_link_params(Package.load("default"), 0)
    targets = [("ulx3s", "ulx3s", params, 1), ("ulx3s_package", "ulx3s", package, 1)]
    if not quick:
        targets += [("ulx3s_seed2", "ulx3s", params, 2),
                    ("ulx3s_package_seed2", "ulx3s", package, 2),
                    ("icebreaker", "icebreaker", small, 1)]
    for key, board, link_params, seed in targets:
        progress(f"placing one LinkAdapter on {board} ({key}, seed {seed})")
        report = build(board, top=IsolatedComponent(LinkAdapter(link_params)), progress=None,
                       seed=seed, build_dir=Path("build", "bench", f"link-{key}")).report
        figures["fpga"][key] = {"device": report["device"], "luts": report["luts"],
                                "ffs": report["ffs"], "brams": report["brams"],
                                "fmax_mhz": report["fmax_mhz"]["sync"],
                                "seed": report["seed"], "link_params": repr(link_params),
                                "critical_path": report["critical_paths"].get("sync")}
    ecp5 = figures["fpga"]["ulx3s"]
    figures.update(luts=ecp5["luts"], ffs=ecp5["ffs"], fmax_mhz=ecp5["fmax_mhz"])
    if plot:
        _plot(goodput, bound, tradeoff, plot)
        figures["plot"] = str(plot)
    return figures


def _plot(goodput, bound, tradeoff, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    bers = [float(b) for b in goodput]
    figure, (axes, trade) = plt.subplots(1, 2, figsize=(11, 4))
    axes.plot(bers, list(goodput.values()), "o-", label="measured (LinkSoak, Verilator)")
    axes.plot(bers, [bound[b]["go_back_n_bound"] for b in goodput], "x--",
              label="go-back-N bound, measured W")
    axes.axhline(0.97, color="grey", linestyle=":", linewidth=0.8)
    axes.axhline(0.80, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("bit error rate")
    axes.set_ylabel("goodput / error-free")
    axes.set_ylim(0, 1.05)
    axes.set_title("link goodput under random bit errors")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    latency = [row["latency_cycles"]["mean"] for row in tradeoff]
    efficiency = [100 * row["payload_efficiency"] for row in tradeoff]
    trade.plot(latency, efficiency, "o-")
    for row, x, y in zip(tradeoff, latency, efficiency, strict=True):
        trade.annotate(f"{row['frame_flits']} flits/frame", (x, y), fontsize=7,
                       textcoords="offset points", xytext=(4, -10))
    trade.set_xlabel("zero-load latency, mean (cycles, serialisation included)")
    trade.set_ylabel("payload efficiency, saturated (%)")
    trade.set_title("frame size: efficiency against latency")
    trade.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
