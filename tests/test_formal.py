"""Formal proofs (SymbiYosys, k-induction) of the small, sharp invariants, and proof that the
checks can fail: a broken block and a wrong property each produce a counterexample."""

import pytest
from amaranth.hdl import Assert

from chipknit.rtl.credit import CreditParams, CreditSender
from chipknit.tb.formal import FormalCheck, check
from chipknit.tb.properties import (
    CommitFifoProperties,
    CreditChannelProperties,
    LinkReceiverProperties,
)

CHECKS = [
    FormalCheck("credit_channel", CreditChannelProperties, depth=12,
                description="credits conserved, never above depth, no overrun"),
    FormalCheck("credit_channel_deep", lambda: CreditChannelProperties(
        CreditParams(payload_width=2, depth=6), latency=2), depth=20,
        description="the same with 6 credits and 2 wire stages each way"),
    FormalCheck("commit_fifo", CommitFifoProperties, depth=12,
                description="tentative + committed within depth; only committed readable"),
    FormalCheck("link_receiver", LinkReceiverProperties, depth=4,
                description="flits are committed only from frames that passed their CRC"),
]


@pytest.mark.parametrize("formal", CHECKS, ids=lambda formal: formal.name)
def test_proof(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]
    assert "successful proof by k-induction" in result.log.read_text()


class GreedySender(CreditSender):
    """A broken sender that sends whenever it has a flit, credits or not."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


def broken_channel():
    return CreditChannelProperties(sender_class=GreedySender)


class WrongProperty(CreditChannelProperties):
    """The channel is fine; the extra property is false (at reset the sender holds all)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += Assert(m.submodules.sender.credits < self.params.depth)
        return m


@pytest.mark.parametrize("name,design", [("greedy_sender", broken_channel),
                                         ("wrong_property", WrongProperty)])
def test_checks_can_fail(name, design):
    result = check(FormalCheck(f"must_fail_{name}", design, mode="bmc", depth=12))
    assert result.status == "FAIL", result.summary()
    assert result.traces, "a failed check must leave a counterexample trace"
