"""Place one component on its own, to measure its size and speed.

A router or an array has far more ports than a board has pins, and a design whose outputs
go nowhere is removed by synthesis. :class:`IsolatedComponent` wraps any
``wiring.Component`` so that neither happens and timing is measured register to register:

- every input port is driven by a register, loaded from a pseudo-random shift chain, so the
  inputs are live and unknown to synthesis;
- every output port is captured in a register and all of them are folded into one bit by
  an XOR tree, registered, on the ``ok`` LED.

The wrapper adds one register per input and output bit and the XOR tree; its paths are
short (the tree is pipelined per 64 bits), so the Fmax nextpnr reports is the component's.
Subtract nothing from the LUT count: the report's ``luts`` include the wrapper's XOR tree
(about one LUT4 per four output bits) and it is stated as such wherever quoted.

Use with the build flow::

    build("ulx3s", top=IsolatedComponent(Router(params)), name="router")
"""

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow

__all__ = ["IsolatedComponent"]

_XOR_CHUNK = 64


class IsolatedComponent(Elaboratable):
    """``component`` with registered, pseudo-random inputs and XOR-folded outputs.

    Attributes
    ----------
    ok : Signal(1)
        The registered XOR of every output bit (goes to an LED).
    heartbeat : Signal(1)
        The top bit of the input chain (goes to an LED).
    """

    def __init__(self, component: wiring.Component):
        if not isinstance(component, wiring.Component):
            raise TypeError(f"Expected a wiring.Component, not {component!r}")
        self.component = component
        self.ok = Signal()
        self.heartbeat = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.component
        inputs, outputs = [], []
        for _path, member, value in dut.signature.flatten(dut):
            (inputs if member.flow == Flow.In else outputs).append(Value.cast(value))
        in_width = sum(len(v) for v in inputs)
        out_width = sum(len(v) for v in outputs)

        # A 31-bit LFSR shifts into the input chain one bit per cycle.
        lfsr = Signal(31, init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[30] ^ lfsr[27], lfsr[:-1]))
        chain = Signal(max(in_width, 1))
        m.d.sync += chain.eq(Cat(lfsr[0], chain[:-1]))
        offset = 0
        for value in inputs:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)

        captured = Signal(max(out_width, 1))
        m.d.sync += captured.eq(Cat(*outputs))
        partials = []
        for start in range(0, out_width, _XOR_CHUNK):
            partial = Signal(name=f"xor_{start // _XOR_CHUNK}")
            m.d.sync += partial.eq(captured[start:start + _XOR_CHUNK].xor())
            partials.append(partial)
        m.d.sync += self.ok.eq(Cat(*partials).xor() if partials else 0)
        m.d.comb += self.heartbeat.eq(chain[-1])
        return m
