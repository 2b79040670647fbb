"""Plot link training from a real FST dump: states, lane maps and per-lane valid over time.

Usage (from a ``link_training`` run with ``--waves``)::

    python -m chipknit.training_waves RUN/link_training.fst docs/figures/link-training.png \
        [--start NS] [--end NS]

Reads the dump through ``fst2vcd`` (GTKWave's converter), keeping only the signals it plots.
"""

import argparse
import subprocess
from pathlib import Path

__all__ = ["read_signals", "plot_training"]

STATE_NAMES = ["RESET", "DETECT", "TEST", "CONFIG", "ACTIVE", "DRAIN", "ERROR"]

#: What to plot: (label, suffix of the hierarchical name in the dump).
SIGNALS = {
    "a_state": "a_training__state",
    "b_state": "b_training__state",
    "b_lane_map": "b_training__lane_map",
    "a_tx_lane_map": "a_training__tx_lane_map",
    "b_retrains": "b_training__retrains",
    "b_rx_valid": "b.lanes_rx__valid",
    "b_rx_data": "b.lanes_rx__data",
    "stuck": "ab_stuck_mask",
}


def read_signals(fst: Path, suffixes: dict[str, str], start: int = 0, end: int | None = None
                 ) -> dict[str, list[tuple[int, int]]]:
    """``{label: [(time, value), ...]}`` for the first variable whose dotted name ends with
    each suffix (top-level ports have no scope prefix, so a bare name matches too)."""
    proc = subprocess.Popen(["fst2vcd", "-f", str(fst)], stdout=subprocess.PIPE, text=True,
                            bufsize=1 << 20)
    scopes, wanted, changes = [], {}, {label: [] for label in suffixes}
    time, per_ns, in_timescale = 0, 1.0, False
    units = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}
    assert proc.stdout is not None
    for line in proc.stdout:
        if in_timescale or line.startswith("$timescale"):
            words = line.replace("$timescale", "").replace("$end", "").split()
            if words:
                text = "".join(words)
                number = "".join(ch for ch in text if ch.isdigit()) or "1"
                per_ns = int(number) * units[text[len(number):]]
            in_timescale = "$end" not in line
        elif line.startswith("$scope"):
            scopes.append(line.split()[2])
        elif line.startswith("$upscope"):
            scopes.pop()
        elif line.startswith("$var"):
            parts = line.split()
            ident, name = parts[3], parts[4]
            full = ".".join(scopes[1:] + [name])
            for label, suffix in suffixes.items():
                if label not in wanted.values() and (full == suffix
                                                     or full.endswith("." + suffix)):
                    wanted[ident] = label
        elif line.startswith("#"):
            time = round(int(line[1:]) * per_ns)
            if end is not None and time > end:
                break
        elif wanted and line[0] in "01xzb":
            if line[0] == "b":
                value, ident = line[1:].split()
            else:
                value, ident = line[0], line[1:].strip()
            label = wanted.get(ident)
            if label is not None:
                number = int(value.replace("x", "0").replace("z", "0"), 2)
                series = changes[label]
                if time < start:
                    series[:] = [(start, number)]
                else:
                    series.append((time, number))
    proc.kill()
    proc.wait()
    return changes


def _steps(series, end):
    xs, ys = [], []
    for (t, v), nxt in zip(series, series[1:] + [(end, None)], strict=True):
        xs += [t, nxt[0]]
        ys += [v, v]
    return xs, ys


def plot_training(changes, out: Path, lanes: int, start: int, end: int, title: str = ""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    us = 1e-3  # ns → µs
    fig, axes = plt.subplots(4, 1, figsize=(11, 8), sharex=True,
                             gridspec_kw={"height_ratios": [2, 2, 2.5, 1]})
    ax = axes[0]
    for label, color in (("a_state", "tab:blue"), ("b_state", "tab:orange")):
        xs, ys = _steps(changes[label], end)
        ax.plot(np.array(xs) * us, ys, color=color, label=label.replace("_", " "))
    ax.set_yticks(range(len(STATE_NAMES)), STATE_NAMES)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "link training")

    def raster(ax, label, name):
        series = changes[label]
        times = np.linspace(start, end, 1200)
        index = np.searchsorted([t for t, _ in series], times, side="right") - 1
        values = np.array([series[max(i, 0)][1] for i in index])
        image = np.array([(values >> lane) & 1 for lane in range(lanes)])
        ax.imshow(image, aspect="auto", interpolation="nearest", origin="lower",
                  extent=(start * us, end * us, -0.5, lanes - 0.5), cmap="Greens", vmin=0,
                  vmax=1.4)
        ax.set_ylabel(name, fontsize=8)

    raster(axes[1], "b_lane_map", "b usable lanes\n(lane map, by wire)")
    # Per-lane valid and data toggling at b's receiver, sampled: dark = lane busy.
    series_v, series_d = changes["b_rx_valid"], changes["b_rx_data"]
    times = np.linspace(start, end, 1200)
    tv = [t for t, _ in series_v]
    td = [t for t, _ in series_d]
    iv = np.searchsorted(tv, times, side="right") - 1
    idd = np.searchsorted(td, times, side="right") - 1
    v = np.array([series_v[max(i, 0)][1] for i in iv])
    d = np.array([series_d[max(i, 0)][1] for i in idd])
    image = np.array([((v >> lane) & 1) * 1.0 + ((d >> lane) & 1) * 0.5
                      for lane in range(lanes)])
    axes[2].imshow(image, aspect="auto", interpolation="nearest", origin="lower",
                   extent=(start * us, end * us, -0.5, lanes - 0.5), cmap="Blues", vmin=0,
                   vmax=1.6)
    axes[2].set_ylabel("b rx lanes\nvalid (dark), data", fontsize=8)
    stuck = changes["stuck"]
    for t, value in stuck:
        if value:
            for lane in range(lanes):
                if value >> lane & 1:
                    axes[2].plot([t * us], [lane], "r<", markersize=6)
                    axes[1].plot([t * us], [lane], "r<", markersize=6)
    xs, ys = _steps(changes["b_retrains"], end)
    axes[3].plot(np.array(xs) * us, ys, color="tab:red")
    axes[3].set_ylabel("b retrains", fontsize=8)
    axes[3].set_xlabel("time (µs, 10 ns cycle)")
    axes[3].set_xlim(start * us, end * us)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fst", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--start", type=int, default=0, help="ns")
    parser.add_argument("--end", type=int, default=None, help="ns")
    parser.add_argument("--lanes", type=int, default=18)
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    changes = read_signals(args.fst, SIGNALS, args.start, args.end)
    missing = [label for label, series in changes.items() if not series]
    if missing:
        raise SystemExit(f"not in the dump: {', '.join(SIGNALS[m] for m in missing)}")
    end = args.end or max(series[-1][0] for series in changes.values())
    plot_training(changes, args.png, args.lanes, args.start, end, args.title)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
