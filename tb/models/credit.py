"""Reference model of a credit channel (imports no RTL).

The channel delivers flits in order, each exactly once, unless a fault breaks the credit
rule; then each flit it drops is counted by the receiver's ``overruns``. Its timing follows
from the registers on the credit loop:

========================================  ======
sender output register                    1
wire, forward                             latency
receiver buffer write                     1
credit return register                    1
wire, back                                latency
sender credit counter                     1
========================================  ======

so a credit comes back ``2 * latency + 4`` cycles after the flit that used it was sent, and
the steady-state rate with ``depth`` credits is ``min(1, depth / round_trip)`` flits/cycle.
"""

from collections import deque
from dataclasses import dataclass

__all__ = ["CreditChannelModel", "InOrderScoreboard", "full_rate_depth"]


@dataclass(frozen=True)
class CreditChannelModel:
    depth: int
    latency: int

    @property
    def round_trip(self) -> int:
        """Cycles from sending a flit to sending with the credit it returns."""
        return 2 * self.latency + 4

    @property
    def throughput(self) -> float:
        """Flits per cycle with a consumer that never stalls."""
        return min(1.0, self.depth / self.round_trip)



def full_rate_depth(latency: int) -> int:
    """The smallest buffer that sustains one flit per cycle over a wire of ``latency``."""
    return CreditChannelModel(depth=1, latency=latency).round_trip


class InOrderScoreboard:
    """Checks that a stream comes out in the order it went in.

    ``expect()`` what goes in, ``observe()`` what comes out. Flits the DUT reports as
    dropped may be missing: ``observe()`` skips over at most ``allowed_drops`` of them in
    total, and :attr:`dropped` tells how many it skipped. Anything else — a flit out of
    order, one that was never sent, a duplicate — fails at once, in words.
    """

    def __init__(self, name: str = "stream"):
        self.name = name
        self.expected: deque[int] = deque()
        self.matched = 0
        self.dropped = 0
        self.allowed_drops = 0
        self.errors: list[str] = []

    def expect(self, payload: int) -> None:
        self.expected.append(payload)

    def allow_drops(self, count: int) -> None:
        self.allowed_drops += count

    def observe(self, payload: int) -> None:
        skipped = 0
        while self.expected and self.expected[0] != payload \
                and self.dropped + skipped < self.allowed_drops:
            self.expected.popleft()
            skipped += 1
        if not self.expected or self.expected[0] != payload:
            message = (f"{self.name}: flit {self.matched} out was {payload:#x}, expected "
                       f"{self.expected[0]:#x}" if self.expected else
                       f"{self.name}: flit {payload:#x} came out but nothing was pending")
            self.errors.append(message)
            raise AssertionError(message)
        self.expected.popleft()
        self.dropped += skipped
        self.matched += 1

    def drain_check(self) -> None:
        """At the end: everything sent came out, or was dropped and reported."""
        if self.expected:
            raise AssertionError(f"{self.name}: {len(self.expected)} flit(s) never came out, "
                                 f"first {self.expected[0]:#x}")
