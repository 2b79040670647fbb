"""What the NoC testbenches share: design factories, drivers for router links, helpers.

``router_top`` and ``mesh_top`` build the designs from flat, JSON-friendly parameters (what
``tb/benches.py`` registers and ``CHIPKNIT_PARAMS`` hands the tests). :class:`LinkSource`
and :class:`LinkSink` play a neighbouring router on a credit link: the source spends one
credit per flit and interleaves VCs flit by flit; the sink models the neighbour's input
buffers, checks the router never overfills them, and returns credits as it empties them at
a random pace.
"""

import random
from collections import deque

import cocotb
from cocotb.triggers import RisingEdge

from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.mesh import Mesh, MeshParams
from chipknit.rtl.noc.route import MeshGeometry
from chipknit.rtl.noc.router import Router, RouterParams
from chipknit.tb.models.noc import Geometry, NocFormat

__all__ = ["router_top", "mesh_top", "model_format", "model_geometry", "LinkSource",
           "LinkSink"]


def _format(data_width, vcs):
    return FlitFormat(data_width=data_width, vcs=vcs)


def router_top(columns=3, rows=3, x=1, y=1, depth=4, data_width=32, vcs=2, local_ports=1,
               wire_requests=True, injection_register=False, eject_depth=0):
    """One router; ``eject_depth`` 0 is its default (``depth``)."""
    geometry = MeshGeometry(columns=columns, rows=rows, local_ports=local_ports)
    return Router(RouterParams(flit=_format(data_width, vcs), geometry=geometry, x=x, y=y,
                               depth=depth, wire_requests=wire_requests,
                               injection_register=injection_register,
                               eject_depth=eject_depth or None))


def mesh_top(columns=3, rows=3, depth=4, data_width=32, vcs=2, local_ports=1,
             credit_registers=False, flit_registers=False, injection_registers=False,
             wire_requests=True):
    geometry = MeshGeometry(columns=columns, rows=rows, local_ports=local_ports)
    return Mesh(MeshParams(flit=_format(data_width, vcs), geometry=geometry, depth=depth),
                credit_registers=credit_registers, flit_registers=flit_registers,
                injection_registers=injection_registers, wire_requests=wire_requests)


def model_format(params) -> NocFormat:
    return NocFormat(data_width=params["data_width"], vcs=params["vcs"])


def model_geometry(params) -> Geometry:
    return Geometry(columns=params["columns"], rows=params["rows"],
                    local_ports=params["local_ports"])


class LinkSource:
    """Plays the upstream router on ``link_in[d]``: sends queued link payloads on credit."""

    def __init__(self, dut, prefix, clock, vcs, depth, pause=0.0, rng=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.credit = getattr(dut, f"{prefix}__credit")
        self.clock, self.vcs, self.depth, self.pause = clock, vcs, depth, pause
        self.rng = rng or random.Random(random.getrandbits(32))
        self.queues = [deque() for _ in range(vcs)]
        self.credits = [depth] * vcs
        self.sent = 0
        self.valid.value = 0
        self.payload.value = 0
        self._task = cocotb.start_soon(self._drive())

    def send(self, vc, payloads):
        self.queues[vc].extend(payloads)

    def idle(self):
        return not any(self.queues)

    def stop(self):
        self._task.cancel()
        self.valid.value = 0

    def reset(self):
        """Forget queued flits and credits (the network was reset)."""
        for queue in self.queues:
            queue.clear()
        self.credits = [self.depth] * self.vcs

    async def _drive(self):
        while True:
            await RisingEdge(self.clock)
            returned = int(self.credit.value)
            for vc in range(self.vcs):
                if returned >> vc & 1:
                    self.credits[vc] += 1
                    assert self.credits[vc] <= self.depth, (
                        f"{self.valid._name}: credit returned on VC {vc} while all "
                        f"{self.depth} were held")
            ready = [vc for vc in range(self.vcs) if self.queues[vc] and self.credits[vc]]
            if ready and self.rng.random() >= self.pause:
                vc = self.rng.choice(ready)
                self.credits[vc] -= 1
                self.payload.value = self.queues[vc].popleft()
                self.valid.value = 1
                self.sent += 1
            else:
                self.valid.value = 0


class LinkSink:
    """Plays the downstream router on ``link_out[d]``: buffers, checks, returns credits.

    ``callback(payload)`` sees each flit as it is taken out of the modelled buffer.
    """

    def __init__(self, dut, prefix, clock, vcs, depth, vc_of, drain=1.0, callback=None,
                 rng=None):
        self.valid = getattr(dut, f"{prefix}__valid")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.credit = getattr(dut, f"{prefix}__credit")
        self.clock, self.vcs, self.depth, self.drain = clock, vcs, depth, drain
        self.callback = callback
        self.rng = rng or random.Random(random.getrandbits(32))
        self.buffers = [deque() for _ in range(vcs)]
        self.vc_of = vc_of
        self.received = 0
        self.max_fill = 0
        self.credit.value = 0
        self._task = cocotb.start_soon(self._watch())

    def stop(self):
        self._task.cancel()
        self.credit.value = 0

    def reset(self):
        for buffer in self.buffers:
            buffer.clear()

    async def _watch(self):
        while True:
            await RisingEdge(self.clock)
            if int(self.valid.value):
                payload = int(self.payload.value)
                vc = self.vc_of(payload)
                self.buffers[vc].append(payload)
                self.received += 1
                self.max_fill = max(self.max_fill, len(self.buffers[vc]))
                assert len(self.buffers[vc]) <= self.depth, (
                    f"{self.valid._name}: VC {vc} buffer overfilled ({self.depth} entries): "
                    f"the router sent without a credit")
            credits = 0
            for vc in range(self.vcs):
                if self.buffers[vc] and self.rng.random() < self.drain:
                    payload = self.buffers[vc].popleft()
                    credits |= 1 << vc
                    if self.callback is not None:
                        self.callback(payload)
            self.credit.value = credits
