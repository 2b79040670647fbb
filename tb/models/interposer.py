"""Reference model of the interposer (imports no RTL).

It predicts, cycle by cycle, what the ``Interposer`` (``rtl/link/interposer.py``) puts on
its ``rx`` lanes from what arrives on ``tx`` and the control inputs, including the exact
bit-error pattern, which comes from the same seeded LFSR definition as the hardware. This
file *is* that definition (``docs/link-lanes.md`` states it in words):

- Lane ``l`` of ``tx`` is the physical wire ``l``. Every control (``delay``, stuck-at, the
  error LFSR) is indexed by wire; with ``reverse`` set, wire ``l`` lands on ``rx`` lane
  ``lanes - 1 - l`` (the bits inside a lane keep their order).
- A wire's data bits and its ``valid`` bit pass through a shift register; ``rx`` is
  registered, so what ``tx`` carries at cycle ``n`` reaches ``rx`` after the rising edge at
  the end of cycle ``n + delay`` (``latency = 1 + delay`` cycles), ``delay`` being the wire's
  control value sampled at that last edge, clamped to ``max_delay``. Changing a delay at run
  time therefore repeats or skips samples, as a real change of flight time would.
- Bit errors: every data bit ``j`` of wire ``l`` has its own LFSR, a Fibonacci LFSR over
  GF(2) with the primitive trinomial ``x^65 + x^33 + 1`` (:data:`ERROR_LFSR`: new bit =
  state bit 64 XOR state bit 32, shifted in at bit 0), seeded by :func:`lane_seed`. Each
  cycle the ``k = error_bits`` low state bits are that bit's error value, and the bit is
  inverted when the value is below ``error_threshold`` as it was one cycle earlier (the
  hardware registers the decision; after reset it is 0); then the LFSR steps ``k`` times, so
  every cycle's value is ``k`` fresh bits of the sequence. The bit error rate is
  ``error_threshold / 2**k``. Any two cycles' values on one bit (their top 24 bits, up to
  3000 cycles apart) are linearly independent, so error decisions are pairwise independent;
  the trinomial does make three errors in three consecutive cycles more likely than
  independence would (about ``p**2`` per cycle instead of ``p**3``). Errors touch data bits
  only, never ``valid``.
- Stuck-at: a wire in ``stuck_mask`` carries ``stuck_value``'s bit for that wire on every
  data bit, errors or not; ``valid`` is untouched.
- ``errors`` counts bits inverted on wires that are not stuck (saturating); it lags ``rx``
  by :data:`COUNTER_LAG` cycles.
- Reset: shift registers, ``rx`` and the counter clear; every LFSR reloads its seed
  (:func:`lane_seed`).
"""

from collections import deque
from dataclasses import dataclass

__all__ = ["ERROR_LFSR", "MAX_ERROR_BITS", "COUNTER_LAG", "lane_seed", "splitmix64",
           "ErrorLfsr", "InterposerModel", "LaneWord", "threshold_for_ber", "ber_of"]

#: The error LFSR's primitive trinomial ``x^n + x^t + 1`` as ``(n, t)`` (primitivity is
#: checked by ``tests/test_interposer.py``). With ``t >= k`` it steps ``k`` times per cycle
#: with every new bit the XOR of two present state bits: one LUT level.
ERROR_LFSR = (65, 33)

#: Largest ``error_bits``: the LFSR steps at most ``t`` times per cycle.
MAX_ERROR_BITS = 32

#: Cycles from a bit error on ``rx`` to its count in ``errors``.
COUNTER_LAG = 2

_MASK64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """SplitMix64 (Steele, Lea, Flood 2014): one 64-bit output from a 64-bit input."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def lane_seed(seed: int, generator: int, order: int = ERROR_LFSR[0]) -> int:
    """Initial state of error LFSR number ``generator`` (``wire * bits_per_lane + bit``):
    ``order`` bits of SplitMix64 outputs of ``seed * 2**20 + generator * 2**4 + word``
    (words 0, 1, ... from the bottom up); 1 if that is zero."""
    state, word = 0, 0
    while word * 64 < order:
        state |= splitmix64((seed << 20) + (generator << 4) + word) << (64 * word)
        word += 1
    state &= (1 << order) - 1
    return state or 1


def threshold_for_ber(ber: float, error_bits: int = 32) -> int:
    """The ``error_threshold`` nearest to ``ber``."""
    if not 0 <= ber <= 1:
        raise ValueError(f"BER must be within 0..1, not {ber!r}")
    return min(round(ber * (1 << error_bits)), (1 << error_bits) - 1)


def ber_of(threshold: int, error_bits: int = 32) -> float:
    """The bit error rate ``error_threshold`` sets."""
    return threshold / (1 << error_bits)


class ErrorLfsr:
    """One data bit's error LFSR: :attr:`value` this cycle, then :meth:`step`."""

    def __init__(self, seed: int, generator: int, error_bits: int):
        self.error_bits = error_bits
        self.order, self.tap = ERROR_LFSR
        self.state = lane_seed(seed, generator, self.order)

    @property
    def value(self) -> int:
        return self.state & ((1 << self.error_bits) - 1)

    def step(self) -> None:
        # k <= t steps at once: the k new bits are state[n-k .. n-1] ^ state[t-k .. t-1],
        # the oldest (first-out) one ending up at bit k-1.
        n, t, k = self.order, self.tap, self.error_bits
        new = ((self.state >> (n - k)) ^ (self.state >> (t - k))) & ((1 << k) - 1)
        self.state = ((self.state << k) | new) & ((1 << n) - 1)


@dataclass(frozen=True)
class LaneWord:
    """What one side of the lanes carries in one cycle: packed ``data`` and ``valid``."""
    data: int = 0
    valid: int = 0


class InterposerModel:
    """Cycle model of the interposer.

    Call :meth:`step` once per rising clock edge with the inputs the DUT sees at that edge;
    it returns the ``rx`` the DUT shows after the edge. :attr:`errors` is the count the
    DUT's ``errors`` port shows :data:`COUNTER_LAG` cycles later.
    """

    def __init__(self, lanes: int = 16, bits_per_lane: int = 1, max_delay: int = 7,
                 error_bits: int = 32, seed: int = 1, counter_width: int = 32):
        self.lanes = lanes
        self.bits_per_lane = bits_per_lane
        self.max_delay = max_delay
        self.error_bits = error_bits
        self.seed = seed
        self.counter_max = (1 << counter_width) - 1
        self.reset()

    @property
    def delay_bits(self) -> int:
        return max(1, self.max_delay.bit_length())

    def reset(self) -> None:
        # history[l][d]: (bits, valid) wire l carried d cycles before the current one.
        self.history = [deque([(0, 0)] * (self.max_delay + 1), maxlen=self.max_delay + 1)
                        for _ in range(self.lanes)]
        self.lfsrs = [[ErrorLfsr(self.seed, lane * self.bits_per_lane + bit, self.error_bits)
                       for bit in range(self.bits_per_lane)] for lane in range(self.lanes)]
        self.errors = 0
        self.threshold = 0  # the threshold the hardware registered a cycle ago
        self.rx = LaneWord()

    def step(self, tx: LaneWord, *, delay: int | list[int] = 0, error_threshold: int = 0,
             stuck_mask: int = 0, stuck_value: int = 0, reverse: bool = False) -> LaneWord:
        """One rising edge. ``delay`` is the packed control word or a list per wire."""
        b = self.bits_per_lane
        lane_mask = (1 << b) - 1
        if isinstance(delay, int):
            delays = [(delay >> (lane * self.delay_bits)) & ((1 << self.delay_bits) - 1)
                      for lane in range(self.lanes)]
        else:
            delays = list(delay)
        data = valid = 0
        for lane in range(self.lanes):
            history = self.history[lane]
            history.appendleft(((tx.data >> (lane * b)) & lane_mask, (tx.valid >> lane) & 1))
            bits, lane_valid = history[min(delays[lane], self.max_delay)]
            flips = 0
            for bit, lfsr in enumerate(self.lfsrs[lane]):
                if lfsr.value < self.threshold:
                    flips |= 1 << bit
                lfsr.step()
            if (stuck_mask >> lane) & 1:
                bits = lane_mask if (stuck_value >> lane) & 1 else 0
            else:
                bits ^= flips
                self.errors = min(self.errors + bin(flips).count("1"), self.counter_max)
            target = self.lanes - 1 - lane if reverse else lane
            data |= bits << (target * b)
            valid |= lane_valid << target
        self.threshold = error_threshold
        self.rx = LaneWord(data, valid)
        return self.rx
