"""cocotb test of a package NoC whose die links are the real link layer
(:class:`~chipknit.rtl.noc.cross_link.BridgedDieLink`: bridges, link adapters, lanes).

Reuses :class:`~chipknit.tb.tests.noc_package.PackageBench` (scoreboard against the
package model): the same cross-die traffic as ``noc_package.cross_die_random``, here over
CRC-checked, credit-controlled link frames instead of the stand-in register pipes.
"""

import cocotb

from chipknit.rtl.noc.cross_link import bridged_die_link
from chipknit.rtl.noc.package_network import PackageNetwork
from chipknit.rtl.package.config import Package
from chipknit.tb.dut import reset
from chipknit.tb.tests.noc_package import PACKETS, TIMEOUT_US, PackageBench

__all__ = ["package_bridged_top"]


def package_bridged_top(package="default", latency=2, frame_flits=4, rx_credits=8,
                        replay_timeout=128):
    """A shipped package's network, each die link a :class:`BridgedDieLink`."""
    return PackageNetwork(Package.named(package), die_link=bridged_die_link(
        latency=latency, frame_flits=frame_flits, rx_credits=rx_credits,
        replay_timeout=replay_timeout))


@cocotb.test(timeout_time=TIMEOUT_US, timeout_unit="us")
async def cross_die_random_over_the_link_layer(dut):
    """Random destinations, 70 % on another die, 1-4 flit packets, both VCs, random
    injection pauses and ejection backpressure: every packet once, intact, in order."""
    bench = PackageBench(dut)
    await reset(dut)
    bench.traffic(PACKETS, 4)
    total = bench.scoreboard.outstanding()
    await bench.drain()
    assert bench.scoreboard.matched == total
    crossed = sum(packet.dest.die != bench.endpoints[packet.src][0]
                  for packet, _ in bench.scoreboard.delivered)
    assert crossed > total // 2, f"only {crossed} of {total} packets crossed a die link"
    for die, node, _ in bench.endpoints:
        for name in ("unroutable", "malformed"):
            assert bench.counter(name, die, node) == 0, f"die {die} node {node} counted {name}"
