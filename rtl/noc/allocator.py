"""Round-robin arbiters and the router's separable (input-first) switch allocator.

The allocator is combinational; the router registers its grants (the switch traverses in the
next cycle), which is what keeps the allocation path short. Both stages are round-robin: an
arbiter's priority moves past the requester it granted only when that grant is *used*, so
every requester that keeps asking is served within ``count`` uses (tests/test_noc.py checks
this bound exhaustively on small arbiters).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RoundRobin", "SeparableAllocator"]


class RoundRobin(wiring.Component):
    """A round-robin arbiter over ``count`` requesters.

    Members
    -------
    requests : In(count)
        Bit ``k``: requester ``k`` asks this cycle.
    grant : Out(count)
        One-hot (or zero when nobody asks), combinational from ``requests``: the first
        requester after the last one served, in cyclic order.
    advance : In(1)
        The grant was used: the requester granted now becomes the last one served.
    """

    def __init__(self, count: int):
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"Count must be a positive integer, not {count!r}")
        self.count = count
        super().__init__({"requests": In(count), "grant": Out(count), "advance": In(1)})

    def elaborate(self, platform):
        m = Module()
        count = self.count
        if count == 1:
            m.d.comb += self.grant.eq(self.requests)
            return m
        # One-hot: who was served last. Reset: the last requester, so requester 0 goes first.
        last = Signal(count, init=1 << (count - 1))
        choices = []
        for p in range(count):
            order = [(p + 1 + k) % count for k in range(count)]
            bits = [0] * count
            for position, k in enumerate(order):
                blocked = [self.requests[j] for j in order[:position]]
                nobody_before = ~Cat(*blocked).any() if blocked else 1
                bits[k] = self.requests[k] & nobody_before
            choices.append(Cat(*bits) & last[p].replicate(count))
        grant = choices[0]
        for choice in choices[1:]:
            grant = grant | choice
        m.d.comb += self.grant.eq(grant)
        with m.If(self.advance & self.requests.any()):
            m.d.sync += last.eq(self.grant)
        return m


class SeparableAllocator(wiring.Component):
    """Input-first separable switch allocator.

    Each input picks one of its VCs (round-robin among those with a request), then each
    output picks one of the inputs whose picked VC asks for it (round-robin). An input grant
    is at most one VC; an output is granted to at most one input.

    Members
    -------
    requests : In(outputs).array(inputs, vcs)
        One-hot over outputs (or zero): the output VC ``v`` of input ``i`` asks for. The
        caller gates it with everything that makes the request eligible (a flit, a credit,
        a free output VC for a head flit).
    grant : Out(vcs).array(inputs)
        One-hot (or zero): the VC of input ``i`` that won.
    select : Out(inputs).array(outputs)
        One-hot (or zero): the input that won output ``o``.
    """

    def __init__(self, inputs: int, vcs: int, outputs: int):
        self.inputs, self.vcs, self.outputs = inputs, vcs, outputs
        super().__init__({
            "requests": In(outputs).array(inputs, vcs),
            "grant": Out(vcs).array(inputs),
            "select": Out(inputs).array(outputs),
        })

    def elaborate(self, platform):
        m = Module()
        inputs, vcs, outputs = self.inputs, self.vcs, self.outputs
        # Stage 1: per input, one VC.
        wants = []  # per input: the outputs its chosen VC asks for
        chosen = []
        for i in range(inputs):
            arbiter = m.submodules[f"input{i}"] = RoundRobin(vcs)
            m.d.comb += arbiter.requests.eq(Cat(self.requests[i][v].any() for v in range(vcs)))
            want = Signal(outputs, name=f"want{i}")
            acc = 0
            for v in range(vcs):
                acc = acc | (self.requests[i][v] & arbiter.grant[v].replicate(outputs))
            m.d.comb += want.eq(acc)
            wants.append(want)
            chosen.append(arbiter)
        # Stage 2: per output, one input.
        won = [0] * inputs
        for o in range(outputs):
            arbiter = m.submodules[f"output{o}"] = RoundRobin(inputs)
            m.d.comb += [
                arbiter.requests.eq(Cat(wants[i][o] for i in range(inputs))),
                arbiter.advance.eq(1),
                self.select[o].eq(arbiter.grant),
            ]
            for i in range(inputs):
                won[i] = won[i] | arbiter.grant[i]
        for i in range(inputs):
            m.d.comb += [
                self.grant[i].eq(chosen[i].grant & Cat(won[i]).replicate(vcs)),
                chosen[i].advance.eq(won[i]),
            ]
        return m
