"""Latency against offered load on a mesh, BookSim style (for ``chipknit bench noc``).

Not a test module on its own: :func:`measure` runs as the ``measure_load`` test of
``noc_mesh`` (so it shares that testbench's build), only when ``CHIPKNIT_NOC_LOAD`` holds a
JSON configuration; the figures go as JSON to the file named by ``CHIPKNIT_RESULT_FILE``.

Conventions (design.md §3): each node creates packets by a Bernoulli process at
``rate / packet_length`` packets per cycle into unbounded source queues (one per VC, the VC
drawn at random), so offered load is in flits/node/cycle; latency runs from creation to the
tail leaving the network, source queueing included; packets created during the
measurement window are measured, and injection goes on until they have all arrived. Every
ejection port is always ready. One coroutine drives the whole mesh each cycle, which is
what keeps a 4×4 mesh at thousands of cycles per second under Verilator.
"""

import json
import os
import random
import time
from collections import deque

from cocotb.triggers import RisingEdge

from chipknit.tb.dut import reset
from chipknit.tb.models.noc import (
    Dest,
    PacketScoreboard,
    hops,
    make_packet,
    traffic_destination,
)

LOAD_ENV = "CHIPKNIT_NOC_LOAD"
RESULT_ENV = "CHIPKNIT_RESULT_FILE"


class _Mesh:
    def __init__(self, dut, geometry, vcs):
        self.dut, self.geometry, self.vcs = dut, geometry, vcs
        ids = [(node, vc) for node in range(geometry.nodes) for vc in range(vcs)]
        self.ids = ids

        def get(name):
            return dut._id(name, extended=False)

        self.in_valid = {k: get(f"inject__{k[0]}__0__{k[1]}__valid") for k in ids}
        self.in_ready = {k: get(f"inject__{k[0]}__0__{k[1]}__ready") for k in ids}
        self.in_payload = {k: get(f"inject__{k[0]}__0__{k[1]}__payload") for k in ids}
        self.out_valid = {k: get(f"eject__{k[0]}__0__{k[1]}__valid") for k in ids}
        self.out_payload = {k: get(f"eject__{k[0]}__0__{k[1]}__payload") for k in ids}
        for k in ids:
            self.in_valid[k].value = 0
            get(f"eject__{k[0]}__0__{k[1]}__ready").value = 1


async def _run_point(mesh, fmt, rng, *, pattern, rate, length, warmup, window, drain,
                     probe=None):
    """One offered load; returns its figures. ``probe``: a list of (src, dst) packets sent
    one at a time instead of random traffic (zero-load latency per path)."""
    dut, geometry, vcs = mesh.dut, mesh.geometry, mesh.vcs
    await reset(dut)
    scoreboard = PacketScoreboard(fmt, "load")
    queues = {k: deque() for k in mesh.ids}   # flits waiting, per (node, VC)
    offering = set()   # (node, VC) presenting a flit the mesh has not taken yet
    shown = set()      # (node, VC) whose valid is high
    latencies, ejected_in_window = [], 0
    measured_left = 0
    seq = 0
    probing = probe is not None
    probe = deque(probe or [])
    cycle = 0
    end_create = warmup + window
    limit = end_create + drain
    p_packet = rate / length
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        for k in list(offering):
            if int(mesh.in_ready[k].value):
                queues[k].popleft()
                offering.discard(k)
        for k in mesh.ids:
            if int(mesh.out_valid[k].value):
                if warmup <= cycle < end_create:
                    ejected_in_window += 1
                packet = scoreboard.observe(k[0], int(mesh.out_payload[k].value))
                if packet is not None and packet.measured:
                    latencies.append((cycle - packet.created, packet))
                    measured_left -= 1
        idle = not any(queues.values()) and scoreboard.outstanding() == 0
        new = []
        if probing:
            if idle and probe:
                new.append(probe.popleft())
        elif cycle < limit:
            for node in range(geometry.nodes):
                if rng.random() < p_packet:
                    new.append((node, traffic_destination(pattern, geometry, node, rng)))
        for src, dst in new:
            x, y = geometry.position(dst)
            packet = make_packet(fmt, src=src, seq=seq, dest=Dest(x=x, y=y),
                                 vc=rng.randrange(vcs), length=length, rng=rng, created=cycle)
            packet.measured = probing or warmup <= cycle < end_create
            measured_left += packet.measured
            seq += 1
            scoreboard.expect(packet)
            queues[src, packet.vc].extend(packet.flits)
        for k in mesh.ids:
            if k in offering:
                continue
            if queues[k]:
                mesh.in_payload[k].value = queues[k][0]
                mesh.in_valid[k].value = 1
                offering.add(k)
                shown.add(k)
            elif k in shown:
                mesh.in_valid[k].value = 0
                shown.discard(k)
        if probing and idle and not probe and not new:
            break
        if not probing and cycle >= end_create and measured_left == 0:
            break
        if cycle >= limit:
            break
    for k in mesh.ids:
        mesh.in_valid[k].value = 0
    done = measured_left == 0
    values = [latency for latency, _ in latencies]
    return {
        "pattern": pattern, "offered": rate, "packet_length": length,
        "accepted": round(ejected_in_window / (geometry.nodes * window), 4) if window else None,
        "latency": round(sum(values) / len(values), 3) if values else None,
        "packets": len(values), "complete": done, "cycles": cycle,
        "paths": [(p.src, geometry.node(p.dest.x, p.dest.y), latency)
                  for latency, p in latencies] if probing else None,
    }


async def measure(dut, fmt, geometry, vcs):
    config = json.loads(os.environ[LOAD_ENV])
    rng = random.Random(random.getrandbits(32))
    mesh = _Mesh(dut, geometry, vcs)
    started = time.monotonic()
    total_cycles = 0
    # Zero-load latency per path: one 1-flit packet at a time from every node to every node.
    pairs = [(s, d) for s in range(geometry.nodes) for d in range(geometry.nodes)]
    probe = await _run_point(mesh, fmt, rng, pattern="probe", rate=0, length=1, warmup=0,
                             window=0, drain=50 * len(pairs), probe=pairs)
    total_cycles += probe["cycles"]
    by_hops = {}
    for src, dst, latency in probe["paths"]:
        by_hops.setdefault(hops(geometry.position(src), geometry.position(dst)), []).append(
            latency)
    points = []
    for sweep in config["sweeps"]:
        zero = None
        above = 0
        for rate in sweep["rates"]:
            point = await _run_point(mesh, fmt, rng, pattern=sweep["pattern"], rate=rate,
                                     length=sweep["packet_length"], warmup=config["warmup"],
                                     window=config["window"], drain=config["drain"])
            total_cycles += point["cycles"]
            point.pop("paths")
            points.append(point)
            if zero is None:
                zero = point["latency"]
            saturated = not point["complete"] or point["latency"] > 3 * zero
            above = above + 1 if saturated else 0
            if above >= config.get("stop_after", 2):
                break
    figures = {
        "latency_by_hops": {str(h): sum(v) / len(v) for h, v in sorted(by_hops.items())},
        "points": points,
        "simulated_cycles": total_cycles,
        "cycles_per_second": round(total_cycles / (time.monotonic() - started)),
    }
    with open(os.environ[RESULT_ENV], "w") as file:
        json.dump(figures, file)
