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
"""

import json
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


def run(*, quick=False, plot=None, progress=print, seed=1) -> dict:
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
    if plot:
        progress("package: no plot (two points); the JSON has the figures")
    return figures
