"""Formal proofs (SymbiYosys, k-induction) of the small, sharp invariants, bounded checks where
induction does not close, and proof that the checks can fail: a broken block and a wrong
property each produce a counterexample."""

from dataclasses import replace

import pytest
from amaranth.hdl import Assert

from chipknit.rtl.credit import CreditParams, CreditSender
from chipknit.rtl.link import receiver, transmitter
from chipknit.tb.formal import FormalCheck, check
from chipknit.tb.properties import (
    CommitFifoProperties,
    CreditChannelProperties,
    LinkReceiverProperties,
)
from chipknit.tb.properties_link import (
    SMALL_LINK,
    ReceiverCreditProperties,
    TransmitterCreditProperties,
    TransmitterReplayProperties,
    mutant,
)

YICES = "smtbmc yices"   # far faster than z3 on the deeper bounded checks

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
    FormalCheck("link_transmitter_credits", TransmitterCreditProperties, depth=12,
                description="per-VC credits conserved against a peer that keeps the rule: "
                            "never above rx_credits, never below zero; window <= replay_frames"),
]

# Bounded from reset: induction does not close without restating the replay buffer's and the
# receive buffers' contents as invariants. The depths cover three 5-beat frames (replay) and
# six frames of arbitrary beats (receiver).
BOUNDED = [
    FormalCheck("link_transmitter_replay", TransmitterReplayProperties, mode="bmc", depth=16,
                engine=YICES, description="go-back-N: window, order, NAK rewind, exact replay"),
    FormalCheck("link_transmitter_replay_head_reads", lambda: TransmitterReplayProperties(
        replace(SMALL_LINK, replay_head_registers=False)), mode="bmc", depth=16, engine=YICES,
        description="the same with a replay's first beats read from the replay buffer"),
    FormalCheck("link_receiver_credits", ReceiverCreditProperties, mode="bmc", depth=30,
                engine=YICES, description="credit totals = flits delivered; buffer = committed "
                                          "- delivered, within depth"),
]


@pytest.mark.parametrize("formal", CHECKS, ids=lambda formal: formal.name)
def test_proof(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]
    assert "successful proof by k-induction" in result.log.read_text()


DEEP_REPLAY = FormalCheck("link_transmitter_replay_deep", TransmitterReplayProperties,
                          mode="bmc", depth=20, engine=YICES)


@pytest.mark.parametrize("formal", BOUNDED + [
    # Four frames reach the sequence-number wrap; depth 20 takes ~5 min.
    pytest.param(DEEP_REPLAY, marks=pytest.mark.slow, id=DEEP_REPLAY.name)],
    ids=lambda formal: formal.name)
def test_bounded(formal):
    result = check(formal)
    assert result.passed, result.summary() + "\n" + result.log.read_text()[-2000:]
    assert f"Checking assertions in step {formal.depth - 1}" in result.log.read_text()


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


# Realistic bugs in the real link code, one per property: each must give a counterexample.
LINK_MUTANTS = {
    # The window admits one frame too many: a new frame takes an unacknowledged frame's slot.
    "tx_window": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                  "window_open.eq(outstanding < R)", "window_open.eq(outstanding <= R)"),
    # An ACK releases one frame more than it acknowledges.
    "tx_early_release": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                         "new_base.eq(Mux(acked, self.peer_ack + 1, base))",
                         "new_base.eq(Mux(acked, self.peer_ack + 2, base))"),
    # A rewind skips the oldest unacknowledged frame.
    "tx_replay_skips": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                        "replay_seq_next.eq(Mux(rewind | replay_behind, new_base, replay_after))",
                        "replay_seq_next.eq(Mux(rewind | replay_behind, new_base + 1, "
                        "replay_after))"),
    # A replay reads the wrong replay-buffer slot.
    "tx_replay_wrong_slot": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                             "replay_read_addr.eq(Cat(read_slot_beat, read_seq[:slot_bits]))",
                             "replay_read_addr.eq(Cat(read_slot_beat, next_seq[:slot_bits]))"),
    # NAKs are ignored (only the timer replays).
    "tx_ignores_nak": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                       "nak_heard.eq(self.peer_header_valid & self.peer_nak)",
                       "nak_heard.eq(0 & self.peer_nak)"),
    # The stale-NAK hold-off never ends: a repeated NAK after a lost replay is ignored.
    "tx_holdoff_stuck": (TransmitterReplayProperties, transmitter, "LinkTransmitter",
                         "[holdoff.eq(holdoff - 1), holdoff_zero.eq(holdoff == 1)]",
                         "[holdoff.eq(holdoff), holdoff_zero.eq(holdoff == 0)]"),
    # A flit sent without spending its credit (overflow).
    "tx_credit_not_spent": (TransmitterCreditProperties, transmitter, "LinkTransmitter",
                            "credits[vc].eq(Mux(taken, returned - 1, returned))",
                            "credits[vc].eq(returned)"),
    # A flit sent with no credit left (underflow).
    "tx_no_credit_check": (TransmitterCreditProperties, transmitter, "LinkTransmitter",
                           "credit_vc.eq(has_credit)",
                           "credit_vc.eq(-1)"),
    # The receiver returns a credit whenever its consumer is ready, flit or not.
    "rx_credit_without_flit": (ReceiverCreditProperties, receiver, "LinkReceiver",
                               "with m.If(self.o[vc].valid & self.o[vc].ready):",
                               "with m.If(self.o[vc].ready):"),
}


@pytest.mark.parametrize("name", sorted(LINK_MUTANTS))
def test_link_properties_catch_bugs(name):
    wrapper, module, class_name, old, new = LINK_MUTANTS[name]
    broken = mutant(module, class_name, old, new)
    keyword = "receiver_class" if wrapper is ReceiverCreditProperties else "transmitter_class"
    result = check(FormalCheck(f"must_fail_{name}", lambda: wrapper(**{keyword: broken}),
                               mode="bmc", depth=16, engine=YICES))
    assert result.status == "FAIL", result.summary()
    assert result.traces, "a failed check must leave a counterexample trace"


def test_mutant_needs_its_target():
    with pytest.raises(ValueError, match="occurs 0 times"):
        mutant(transmitter, "LinkTransmitter", "no such code", "")
