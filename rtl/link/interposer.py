"""A model of the interposer wires between two dies, with faults you can set at run time.

In simulation and in single-FPGA emulation the two dies' lanes meet through an
:class:`Interposer` instead of pins. It is synthesisable, and every fault is an input, so a
testbench or an on-chip benchmark sweeps them without rebuilding:

- **delay and skew**: each wire delays its data and valid by ``delay`` cycles (0 to
  ``max_delay``), on top of one output register;
- **bit errors** at a bit error rate of ``error_threshold / 2**error_bits``, from one seeded
  LFSR per data bit;
- **stuck-at** lanes (a dead wire);
- **lane reversal**: wire ``i`` lands on receiver lane ``lanes - 1 - i``.

The behaviour is specified exactly, bit-error pattern included, by the reference model
``tb/models/interposer.py`` (and in words in ``docs/link-lanes.md``): wire ``i``
starts at ``tx`` lane ``i``, every control is indexed by wire, and

``rx lane (reverse ? N-1-i : i) at cycle c + 1 + delay[i]`` =
``stuck_mask[i] ? stuck_value[i] (all bits) : tx lane i at cycle c ^ error bits``,

with ``valid`` delayed and reversed the same way but never corrupted; the error bits of a
cycle are decided with the previous cycle's ``error_threshold``. ``delay`` is the
value at the moment the bit leaves (sampled at the output register), clamped to
``max_delay``; changing it at run time repeats or skips samples, as a change in flight time
would. A reset clears the wires and the counter and reloads every LFSR's seed.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lanes import LaneParams, LaneSignature

__all__ = ["InterposerParams", "Interposer", "ERROR_LFSR", "MAX_ERROR_BITS", "COUNTER_LAG",
           "error_lfsr_seed"]

#: The error LFSRs' primitive trinomial ``x^n + x^t + 1`` as ``(n, t)``: a Fibonacci LFSR
#: whose new bit is state bit ``n-1`` XOR state bit ``t-1``, shifted in at bit 0. Since
#: ``t >= error_bits`` it steps ``error_bits`` times per cycle with every new bit the XOR of
#: two present state bits.
ERROR_LFSR = (65, 33)

#: Largest ``error_bits``.
MAX_ERROR_BITS = 32

#: Cycles from a bit error appearing on ``rx`` to its count in ``errors``.
COUNTER_LAG = 2

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def error_lfsr_seed(seed: int, generator: int, order: int = ERROR_LFSR[0]) -> int:
    """Initial state of error LFSR ``generator`` (``wire * bits_per_lane + bit``): ``order``
    bits of SplitMix64 of ``seed * 2**20 + generator * 2**4 + word`` for words 0, 1, ...
    from the bottom up; 1 if that is zero."""
    state, word = 0, 0
    while word * 64 < order:
        state |= _splitmix64((seed << 20) + (generator << 4) + word) << (64 * word)
        word += 1
    state &= (1 << order) - 1
    return state or 1


@dataclass(frozen=True)
class InterposerParams:
    """Parameters of an :class:`Interposer`.

    Parameters
    ----------
    lane_params : LaneParams
        The lanes it carries.
    max_delay : int
        Largest per-wire delay, in cycles, on top of the output register.
    error_bits : int
        ``k``: width of ``error_threshold`` and of the random value each bit is compared
        with; the bit error rate is ``error_threshold / 2**k``. 32 resolves BERs from
        ``2.3e-10`` up (1e-7 to within 0.1 %); 16 is enough down to ~1e-4 and is cheaper.
    seed : int
        Seeds every error LFSR (:func:`error_lfsr_seed`): the error pattern is a function
        of the seed and the cycle count since reset.
    counter_width : int
        Width of the saturating ``errors`` counter.
    """
    lane_params: LaneParams = field(default_factory=LaneParams)
    max_delay: int = 7
    error_bits: int = 32
    seed: int = 1
    counter_width: int = 32

    def __post_init__(self):
        if not isinstance(self.lane_params, LaneParams):
            raise TypeError(f"Lane parameters must be a LaneParams, not {self.lane_params!r}")
        if not isinstance(self.max_delay, int) or self.max_delay < 0:
            raise ValueError(
                f"Maximum delay must be a non-negative integer, not {self.max_delay!r}")
        if not isinstance(self.error_bits, int) or not 1 <= self.error_bits <= MAX_ERROR_BITS:
            raise ValueError(f"Error bits must be an integer from 1 to {MAX_ERROR_BITS}, "
                             f"not {self.error_bits!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < (1 << 40):
            raise ValueError(f"Seed must be an integer from 0 to 2**40 - 1, not {self.seed!r}")
        if self.lane_params.width >= (1 << 16):
            raise ValueError(f"At most 65535 data bits, not {self.lane_params.width}")
        if not isinstance(self.counter_width, int) or self.counter_width < 1:
            raise ValueError(
                f"Counter width must be a positive integer, not {self.counter_width!r}")

    @property
    def delay_bits(self) -> int:
        """Bits per wire in the packed ``delay`` input."""
        return max(1, self.max_delay.bit_length())


class Interposer(wiring.Component):
    """The wires between two dies, with run-time settable delay, errors and faults.

    Members
    -------
    tx : In(LaneSignature(lane_params))
        From the transmitting die. Wire ``i`` starts at lane ``i``.
    rx : Out(LaneSignature(lane_params))
        To the receiving die; registered.
    delay : In(lanes * delay_bits)
        Wire ``i``'s delay in cycles at bits ``[i * delay_bits : (i + 1) * delay_bits]``;
        values above ``max_delay`` act as ``max_delay``. Latency is ``1 + delay``.
    error_threshold : In(error_bits)
        A data bit is inverted when its LFSR value is below this: BER =
        ``error_threshold / 2**error_bits``; 0 injects no errors. Takes effect one cycle
        later than the other controls (the decision is registered).
    stuck_mask : In(lanes)
        Wire ``i`` is stuck: its data bits all read ``stuck_value[i]``. ``valid`` is not
        affected.
    stuck_value : In(lanes)
        The level of each stuck wire.
    reverse : In(1)
        Wire ``i`` lands on ``rx`` lane ``lanes - 1 - i`` (bits within a lane keep their
        order).
    errors : Out(counter_width)
        Data bits inverted on wires that are not stuck, saturating; counts a bit
        ``COUNTER_LAG`` cycles after it appears on ``rx``.
    """

    def __init__(self, params: InterposerParams = InterposerParams()):
        if not isinstance(params, InterposerParams):
            raise TypeError(f"Interposer parameters must be an InterposerParams, "
                            f"not {params!r}")
        self.params = params
        lanes = params.lane_params
        super().__init__({
            "tx": In(LaneSignature(lanes)),
            "rx": Out(LaneSignature(lanes)),
            "delay": In(lanes.lanes * params.delay_bits),
            "error_threshold": In(params.error_bits),
            "stuck_mask": In(lanes.lanes),
            "stuck_value": In(lanes.lanes),
            "reverse": In(1),
            "errors": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        count, b = p.lane_params.lanes, p.lane_params.bits_per_lane
        k, (order, tap) = p.error_bits, ERROR_LFSR
        ones = (1 << b) - 1

        wire_data, wire_valid, wire_flips = [], [], []
        for lane in range(count):
            # Delay line: taps[d] is what the wire carried d cycles ago (data bits, valid).
            taps = [Cat(self.tx.data[lane * b:(lane + 1) * b], self.tx.valid[lane])]
            for d in range(1, p.max_delay + 1):
                stage = Signal(b + 1, name=f"wire{lane}_stage{d}")
                m.d.sync += stage.eq(taps[-1])
                taps.append(stage)
            picked = Signal(b + 1, name=f"wire{lane}_picked")
            with m.Switch(self.delay[lane * p.delay_bits:(lane + 1) * p.delay_bits]):
                for d in range(p.max_delay):
                    with m.Case(d):
                        m.d.comb += picked.eq(taps[d])
                with m.Default():
                    m.d.comb += picked.eq(taps[p.max_delay])

            # One error LFSR per data bit; its k low state bits are this cycle's value.
            flips = Signal(b, name=f"wire{lane}_flips")
            for bit in range(b):
                state = Signal(order, name=f"wire{lane}_lfsr{bit}",
                               init=error_lfsr_seed(p.seed, lane * b + bit, order))
                new = Cat(*(state[order - k + i] ^ state[tap - k + i] for i in range(k)))
                m.d.sync += state.eq(Cat(new, state[:order - k]))
                # Decided a cycle ahead (from the next state and this cycle's threshold),
                # so the compare's carry chain ends in a register, not in the data path.
                m.d.sync += flips[bit].eq(new < self.error_threshold)

            stuck = self.stuck_mask[lane]
            data = Signal(b, name=f"wire{lane}_data")
            m.d.comb += data.eq(Mux(stuck, Mux(self.stuck_value[lane], ones, 0),
                                    picked[:b] ^ flips))
            wire_data.append(data)
            wire_valid.append(picked[b])
            wire_flips.append(Mux(stuck, 0, flips))

        m.d.sync += [
            self.rx.data.eq(Mux(self.reverse, Cat(*reversed(wire_data)), Cat(*wire_data))),
            self.rx.valid.eq(Mux(self.reverse, Cat(*reversed(wire_valid)),
                                 Cat(*wire_valid))),
        ]

        # Error counter, pipelined: flips registered with rx, counted, then accumulated.
        width = p.lane_params.width
        flipped = Signal(width)
        flipped_count = Signal(range(width + 1))
        m.d.sync += [
            flipped.eq(Cat(*wire_flips)),
            flipped_count.eq(sum(flipped[i] for i in range(width))),
        ]
        limit = (1 << p.counter_width) - 1
        total = Signal(unsigned((limit + width).bit_length()))
        m.d.comb += total.eq(self.errors + flipped_count)
        m.d.sync += self.errors.eq(Mux(total > limit, limit, total))
        return m
