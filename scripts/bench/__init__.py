"""Benchmarks: each measures speed and size and returns its figures as a dict (JSON).

A benchmark is run from ``chipknit bench NAME`` or from Python; nothing here is asserted by
the test suite beyond a quick smoke run, because figures come from runs, not from tests.
"""

from collections.abc import Callable
from dataclasses import dataclass

from . import credit, link, noc, npu, package, tiles

__all__ = ["Benchmark", "BENCHMARKS"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[..., dict]


BENCHMARKS = {b.name: b for b in [
    Benchmark("credit", "credit channel rate against buffer depth and wire latency", credit.run),
    Benchmark("link", "link efficiency, latency, goodput against BER; adapter size and speed",
              link.run),
    Benchmark("noc", "NoC latency against offered load; one router's size and speed", noc.run),
    Benchmark("npu", "NPU GEMM engine: MAC utilisation, bit-exactness, array size and Fmax",
              npu.run),
    Benchmark("package", "the default package end to end: GEMM cycles, link and NPU "
                         "utilisation, replays at BER 0 and 1e-5", package.run),
    Benchmark("tiles", "network interfaces, memory tile, counters bank and host bridge as in "
                       "the default package: LUTs and Fmax on ECP5 at two seeds", tiles.run),
]}
