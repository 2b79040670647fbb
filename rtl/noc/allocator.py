"""Round-robin arbiters and switch allocators.

:class:`PreselectAllocator` is the router's: each input offers one VC, chosen a cycle ahead
(a register), so the allocation cycle holds only the output arbiters.
:class:`SeparableAllocator` (input-first, both stages round-robin) is the one it replaced,
kept for comparison. Both are combinational apart from their priority state; the router
registers their grants (the switch traverses in the next cycle). An arbiter's priority moves
past the requester it granted only when that grant is *used*, so every requester that keeps
asking is served within ``count`` uses (tests/test_noc.py checks this bound exhaustively on
small arbiters). :class:`RoundRobin` reads its priority from a precedence matrix kept beside
the one-hot last grant, so its grant is an AND of two-input terms.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RoundRobin", "SeparableAllocator", "PreselectAllocator"]


class RoundRobin(wiring.Component):
    """A round-robin arbiter over ``count`` requesters.

    The priority is kept as a precedence matrix (``before``: one register per pair of
    requesters) as well as the one-hot last requester served: a requester is granted when
    no requester that precedes it asks, an AND of 2-input terms, which maps to two LUT
    levels for up to five requesters with no priority decode in the grant's path.

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
        #: One-hot: who was served last (the formal properties read it). Reset: the last
        #: requester, so requester 0 goes first.
        self.last = Signal(count, init=1 << (count - 1), name="last")
        #: ``before[(j, k)]`` for ``j < k``: requester ``j`` comes before ``k`` in the cyclic
        #: order that starts after ``last`` (so it is a function of ``last``, kept in
        #: registers of its own; the formal properties assert that it matches).
        self.before = {(j, k): Signal(init=1, name=f"before_{j}_{k}")
                       for j in range(count) for k in range(j + 1, count)}
        #: Bit ``k``: a requester that comes before ``k`` asks (``k`` cannot be granted).
        self.blocked = Signal(count, name="blocked")

    def precedes(self, j: int, k: int):
        """Requester ``j`` comes before requester ``k`` (``j != k``) in the current order."""
        return self.before[j, k] if j < k else ~self.before[k, j]

    @staticmethod
    def order_after(last: int, j: int, k: int, count: int) -> bool:
        """Whether ``j`` comes before ``k`` in the cyclic order that starts after ``last``."""
        return (j - last - 1) % count < (k - last - 1) % count

    def elaborate(self, platform):
        m = Module()
        count = self.count
        if count == 1:
            m.d.comb += [self.grant.eq(self.requests), self.blocked.eq(0)]
            return m
        last = self.last
        requests = self.requests
        # ``blocked[k]`` is an OR of pairs of requesters, each pair a wire of its own
        # (``keep``): synthesis then maps the arbiter as one LUT level per pair and the
        # grant's users (the router's credit, ownership and pop registers) right after it,
        # instead of folding the pairs into the requests and the users' own levels (one
        # level less in the router's allocation cycle, docs/noc.md *Issue 8*).
        blocked = []
        for k in range(count):
            others = [j for j in range(count) if j != k]
            groups = []
            for g in range(0, len(others), 2):
                part = Signal(name=f"blocked{k}_{g // 2}", attrs={"keep": 1})
                m.d.comb += part.eq(Cat(requests[j] & self.precedes(j, k)
                                        for j in others[g:g + 2]).any())
                groups.append(part)
            blocked.append(Cat(*groups).any())
        m.d.comb += [self.blocked.eq(Cat(blocked)), self.grant.eq(requests & ~self.blocked)]
        with m.If(self.advance & requests.any()):
            m.d.sync += last.eq(self.grant)
            # Requester g served: the order now starts after g, so j < k keeps j first
            # unless j <= g < k.
            for (j, k), bit in self.before.items():
                m.d.sync += bit.eq(~self.grant[j:k].any())
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
        won = _output_stage(m, wants, self.select, inputs, outputs)
        for i in range(inputs):
            m.d.comb += [
                self.grant[i].eq(chosen[i].grant & Cat(won[i]).replicate(vcs)),
                chosen[i].advance.eq(won[i]),
            ]
        return m


def _output_stage(m, wants, select, inputs, outputs, connections=None, arbiters=None):
    """Per output, a round-robin among the inputs that want it (only those of
    ``connections[o]``, all by default; ``arbiters[o]`` if given, else a new one); drives
    ``select`` and returns, per input, whether it won an output this cycle."""
    won = [0] * inputs
    for o in range(outputs):
        sources = connections[o] if connections is not None else range(inputs)
        if not sources:
            m.d.comb += select[o].eq(0)
            continue
        arbiter = arbiters[o] if arbiters is not None else RoundRobin(len(sources))
        m.submodules[f"output{o}"] = arbiter
        m.d.comb += [
            arbiter.requests.eq(Cat(wants[i][o] for i in sources)),
            arbiter.advance.eq(1),
            select[o].eq(Cat(arbiter.grant[sources.index(i)] if i in sources else Const(0)
                             for i in range(inputs))),
        ]
        for k, i in enumerate(sources):
            won[i] = won[i] | arbiter.grant[k]
    return won


def _first_after(bits, last, count):
    """One-hot: the first set bit of ``bits`` after the one-hot ``last`` in cyclic order
    (``last`` itself comes last); zero if ``bits`` or ``last`` is zero."""
    choices = 0
    for p in range(count):
        order = [(p + 1 + k) % count for k in range(count)]
        picked = [0] * count
        for position, k in enumerate(order):
            blocked = [bits[j] for j in order[:position]]
            picked[k] = bits[k] & (~Cat(*blocked).any() if blocked else 1)
        choices = choices | (Cat(*picked) & last[p].replicate(count))
    return choices


class PreselectAllocator(wiring.Component):
    """Switch allocator whose input stage is chosen one cycle ahead.

    Each input offers one VC (``chosen``): the VC pre-selected in the previous cycle
    (a register) if it has a flit, else its first VC that has one (``present``, which
    needs no eligibility check, so a flit arriving on an idle input is offered at once).
    Each output then picks one of the inputs whose offered VC asks for it (round-robin).
    The pre-selection for the next cycle is the VC offered now if it lost and is still
    eligible, else the first VC with an eligible request after it (the offered one last):
    VCs with eligible requests take turns, a blocked VC cannot hold its input, and a VC
    that lost keeps asking, so its output's round-robin serves it. A VC that keeps asking
    for one output is granted within ``vcs`` x (inputs of that output) cycles
    (tests/test_formal_noc.py proves it; moving on from a VC that lost lets one that is
    offered every other cycle starve). The critical cycle holds only the output arbiters
    and what follows their grants; the input choice runs beside them.

    Members
    -------
    requests : In(outputs).array(inputs, vcs)
        One-hot over outputs (or zero): the output VC ``v`` of input ``i`` asks for,
        gated by everything that makes it eligible.
    present : In(vcs).array(inputs)
        Bit ``v``: VC ``v`` of input ``i`` has a flit this cycle, eligible or not. Any bit of
        ``requests[i][v]`` implies it.
    chosen : Out(vcs).array(inputs)
        One-hot (or zero): the VC input ``i`` offers this cycle.
    grant : Out(vcs).array(inputs)
        One-hot (or zero): the VC of input ``i`` that won (always its ``chosen`` one).
    select : Out(inputs).array(outputs)
        One-hot (or zero): the input that won output ``o``.

    Parameters
    ----------
    connections : sequence of sequences of int, optional
        Per output, the inputs that may ask for it (all by default). A router whose routing
        forbids some turns passes the allowed ones, which leaves smaller output arbiters;
        a request from another input is ignored (never granted).
    """

    def __init__(self, inputs: int, vcs: int, outputs: int, connections=None):
        self.inputs, self.vcs, self.outputs = inputs, vcs, outputs
        if connections is not None:
            connections = tuple(tuple(sorted(set(c))) for c in connections)
            if len(connections) != outputs or any(
                    not 0 <= i < inputs for c in connections for i in c):
                raise ValueError(f"Connections must list, for each of the {outputs} "
                                 f"outputs, inputs in 0..{inputs - 1}, not {connections!r}")
        self.connections = connections
        super().__init__({
            "requests": In(outputs).array(inputs, vcs),
            "present": In(vcs).array(inputs),
            "chosen": Out(vcs).array(inputs),
            "grant": Out(vcs).array(inputs),
            "select": Out(inputs).array(outputs),
        })
        # State, made here so that the formal properties can name it: per input, the
        # pre-selected VC (one-hot); per output, its arbiter (None: no input reaches it).
        # The pre-selection of a cycle depends on whether the input won in the cycle
        # before, so both candidates are registers (``pre_kept``: the input did not win,
        # ``pre_moved``: it won) and ``pre`` picks one with the registered win (``won``):
        # no register waits for the output arbiters' grants through the pre-selection.
        self.pre = [Signal(vcs, name=f"pre{i}") for i in range(inputs)]
        self.pre_kept = [Signal(vcs, init=1, name=f"pre_kept{i}") for i in range(inputs)]
        self.pre_moved = [Signal(vcs, init=1, name=f"pre_moved{i}") for i in range(inputs)]
        self.won = [Signal(name=f"won{i}") for i in range(inputs)]
        #: Per input, the VCs whose requests it offers this cycle (``chosen`` is this and
        #: ``present``). VC ``v`` of input ``i`` wins output ``o`` when ``requests[i][v]``
        #: asks for ``o``, ``offered[i][v]`` and ``o``'s arbiter has ``i`` not ``blocked``:
        #: the same as ``select[o][i] & chosen[i][v]``, which the router computes this way.
        self.offered = [Signal(vcs, name=f"offered{i}") for i in range(inputs)]
        self.arbiters = [RoundRobin(len(c)) if c else None
                         for c in (connections or [range(inputs)] * outputs)]

    def elaborate(self, platform):
        m = Module()
        inputs, vcs, outputs = self.inputs, self.vcs, self.outputs
        wants, eligibles = [], []
        for i in range(inputs):
            pre = self.pre[i]
            present = self.present[i]
            # The VC offered: the pre-selected one if it has a flit, else the first that has
            # one. ``offered`` is that rule without the flit itself; a request implies a
            # flit, so ``want`` gates the requests with it alone (fewer inputs than chosen).
            none_before = Cat(~present[:v].any() if v else Const(1) for v in range(vcs))
            offered = self.offered[i]
            m.d.comb += offered.eq(Mux((pre & present).any(), pre, none_before))
            chosen = self.chosen[i]
            m.d.comb += chosen.eq(present & offered)
            # A wire of its own (``keep``): the output arbiters start from a LUT output.
            want = Signal(outputs, name=f"want{i}", attrs={"keep": 1})
            acc = 0
            for v in range(vcs):
                acc = acc | (self.requests[i][v] & offered[v].replicate(outputs))
            m.d.comb += want.eq(acc)
            wants.append(want)
            eligibles.append(Cat(self.requests[i][v].any() for v in range(vcs)))
        won = _output_stage(m, wants, self.select, inputs, outputs, self.connections,
                            self.arbiters)
        for i in range(inputs):
            if vcs > 1:
                # An offered VC that lost but is still eligible is offered again (so its
                # request stays up and its output's round-robin serves it); otherwise the
                # next eligible VC after it. Both candidates are computed beside the output
                # arbiters and registered; next cycle's registered ``won`` picks one.
                eligible, chosen = eligibles[i], self.chosen[i]
                keep = Signal(name=f"keep{i}")
                rotate = Signal(vcs, name=f"rotate{i}")
                m.d.comb += [keep.eq((chosen & eligible).any()),
                             rotate.eq(_first_after(eligible, chosen, vcs))]
                kept, moved = self.pre_kept[i], self.pre_moved[i]
                m.d.comb += self.pre[i].eq(Mux(self.won[i], moved, kept))
                m.d.sync += self.won[i].eq(won[i])
                # Without an eligible request the input wins nothing and keeps ``pre``.
                with m.If(eligible.any()):
                    m.d.sync += [kept.eq(Mux(keep, chosen, rotate)), moved.eq(rotate)]
                with m.Else():
                    m.d.sync += [kept.eq(self.pre[i]), moved.eq(self.pre[i])]
            else:
                m.d.comb += self.pre[i].eq(1)
            m.d.comb += self.grant[i].eq(self.chosen[i] & Cat(won[i]).replicate(vcs))
        return m
