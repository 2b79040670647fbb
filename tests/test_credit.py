# amaranth: UnusedElaboratable=no
"""The credit channel: cocotb scoreboard tests on both simulators, and unit checks."""

import pytest

from chipknit.rtl.credit import CreditParams
from chipknit.rtl.credit_loopback import CreditLoopback
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models.credit import CreditChannelModel, InOrderScoreboard, full_rate_depth

BENCH = get_testbench("credit_loopback")


@pytest.mark.parametrize("simulator,params", [
    ("icarus", {"payload_width": 32, "depth": 4, "latency": 1}),
    ("verilator", {"payload_width": 32, "depth": 4, "latency": 1}),
    # Deep enough for full rate: depth = round trip.
    ("verilator", {"payload_width": 16, "depth": 10, "latency": 3}),
    # Depth 2 once lost flits (SyncFIFOBuffered's inner FIFO); keep it covered.
    ("icarus", {"payload_width": 16, "depth": 2, "latency": 1}),
    # Smallest: one credit, no wire stages.
    ("icarus", {"payload_width": 8, "depth": 1, "latency": 0}),
    ("icarus", {"payload_width": 64, "depth": 6, "latency": 2}),
], ids=lambda value: value if isinstance(value, str) else
    "w{payload_width}-d{depth}-l{latency}".format(**value))
def test_credit_loopback(simulator, params, seed):
    result = run(BENCH, simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == 7


def test_model_round_trip():
    model = CreditChannelModel(depth=4, latency=1)
    assert model.round_trip == 6
    assert model.throughput == pytest.approx(4 / 6)
    assert CreditChannelModel(depth=10, latency=3).throughput == 1.0
    assert full_rate_depth(3) == 10


def test_scoreboard_catches_reorder_duplicate_and_loss():
    board = InOrderScoreboard()
    for payload in (1, 2, 3):
        board.expect(payload)
    with pytest.raises(AssertionError, match="expected 0x1"):
        board.observe(2)
    board = InOrderScoreboard()
    board.expect(1)
    board.observe(1)
    with pytest.raises(AssertionError, match="nothing was pending"):
        board.observe(1)
    board = InOrderScoreboard()
    board.expect(1)
    board.expect(2)
    board.observe(1)
    with pytest.raises(AssertionError, match="never came out"):
        board.drain_check()


def test_scoreboard_allows_only_reported_drops():
    board = InOrderScoreboard()
    for payload in (1, 2, 3, 4):
        board.expect(payload)
    board.allow_drops(1)
    board.observe(2)
    assert board.dropped == 1
    with pytest.raises(AssertionError):
        board.observe(4)


@pytest.mark.parametrize("kwargs,message", [
    ({"depth": 0}, "Depth must be a positive integer, not 0"),
    ({"payload_width": -1}, "Payload width must be a positive integer, not -1"),
    ({"counter_width": 0}, "Counter width must be a positive integer, not 0"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CreditParams(**kwargs)


def test_latency_is_validated():
    with pytest.raises(ValueError, match="Latency must be a non-negative integer, not -2"):
        CreditLoopback(latency=-2)
