# amaranth: UnusedElaboratable=no
"""The link interposer: cocotb scoreboard on both simulators, model and parameter checks."""

import pytest

from chipknit.rtl.link.interposer import (
    ERROR_LFSR,
    Interposer,
    InterposerParams,
    error_lfsr_seed,
)
from chipknit.rtl.link.lanes import LaneParams, LaneSignature
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models import interposer as model
from chipknit.tb.models.interposer import ErrorLfsr, InterposerModel, LaneWord
from chipknit.tb.tests.interposer import BERS_ENV, CYCLES_ENV

BENCH = get_testbench("interposer")
TESTS = 6




@pytest.mark.parametrize("simulator,params", [
    ("icarus", {}),
    ("verilator", {}),
    # DDR-shaped lanes, a delay range that is not a power of two (codes 6, 7 clamp), 16-bit
    # BER values and a counter narrow enough to saturate.
    ("icarus", {"lanes": 5, "bits_per_lane": 2, "max_delay": 5, "error_bits": 16,
                "seed": 99, "counter_width": 8}),
    # One wide lane (a gearbox), no delay line.
    ("verilator", {"lanes": 1, "bits_per_lane": 8, "max_delay": 0, "error_bits": 12,
                   "seed": 3, "counter_width": 10}),
], ids=lambda value: value if isinstance(value, str) else
    "-".join(f"{key}{value}" for key, value in value.items()) or "default")
def test_interposer(simulator, params, seed):
    result = run(BENCH, simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == TESTS


@pytest.mark.slow
def test_ber_sweep_1e7_to_1e3(seed):
    """Measured BER within 5 sigma of the setting from 1e-7 to 1e-3 (~400 errors a point,
    fewer at 1e-7 where the budget runs out: 5e6 cycles x 16 lanes = 8e7 bits)."""
    result = run(BENCH, simulator="verilator", seed=seed, testcase="ber_matches_setting",
                 env={BERS_ENV: "1e-3,1e-4,1e-5,1e-6,1e-7", CYCLES_ENV: "5000000"})
    result.check()


def test_error_lfsr_is_primitive():
    """x^65 + x^33 + 1 has order 2^65 - 1: the LFSR runs through every non-zero state."""
    n, t = ERROR_LFSR
    assert (n, t) == model.ERROR_LFSR
    # 2^65 - 1 = 31 * 8191 * 145295143558111, all prime.
    factors = [31, 8191, 145295143558111]
    assert factors[0] * factors[1] * factors[2] == (1 << n) - 1
    poly = (1 << n) | (1 << t) | 1

    def mulmod(a, b):
        r = 0
        while b:
            if b & 1:
                r ^= a
            b >>= 1
            a <<= 1
            if a >> n & 1:
                a ^= poly
        return r

    def x_power(e):
        result, base = 1, 2
        while e:
            if e & 1:
                result = mulmod(result, base)
            base = mulmod(base, base)
            e >>= 1
        return result

    for p in factors:
        assert all(p % d for d in range(2, min(p, 1 << 16))), f"{p} not prime"
    assert x_power((1 << n) - 1) == 1
    assert all(x_power(((1 << n) - 1) // p) != 1 for p in factors)


def test_model_and_rtl_seed_the_same():
    for seed, generator in [(1, 0), (1, 15), (12345, 3)]:
        assert model.lane_seed(seed, generator) == error_lfsr_seed(seed, generator)
    assert len({error_lfsr_seed(1, g) for g in range(64)}) == 64


def test_model_step_matches_bit_serial_lfsr():
    lfsr = ErrorLfsr(seed=5, generator=2, error_bits=20)
    n, t = ERROR_LFSR
    state = lfsr.state
    for _ in range(50):
        for _ in range(20):
            new = ((state >> (n - 1)) ^ (state >> (t - 1))) & 1
            state = ((state << 1) | new) & ((1 << n) - 1)
        lfsr.step()
        assert lfsr.state == state


def test_model_error_rate_is_the_setting():
    """2^20 values per setting: the rate is within 5 sigma of threshold / 2^k."""
    for ber in (1e-2, 1e-3):
        threshold = model.threshold_for_ber(ber)
        p = model.ber_of(threshold)
        hits, total = 0, 0
        for generator in range(4):
            lfsr = ErrorLfsr(seed=7, generator=generator, error_bits=32)
            for _ in range(1 << 18):
                hits += lfsr.value < threshold
                lfsr.step()
            total += 1 << 18
        mean = p * total
        assert abs(hits - mean) <= 5 * (mean * (1 - p)) ** 0.5, (ber, hits, mean)


def test_model_directed():
    m = InterposerModel(lanes=4, bits_per_lane=1, max_delay=3)
    delays = [0, 1, 2, 3]
    outs = [m.step(LaneWord(0xF if c == 0 else 0, 0xF if c == 0 else 0), delay=delays)
            for c in range(5)]
    assert [o.valid for o in outs] == [0b0001, 0b0010, 0b0100, 0b1000, 0]
    m.reset()
    out = m.step(LaneWord(0b0001, 0b0001), reverse=True, stuck_mask=0b0100,
                 stuck_value=0b0100)
    assert out == LaneWord(0b1010, 0b1000)


@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": 0}, "Lanes must be a positive integer, not 0"),
    ({"bits_per_lane": -1}, "Bits per lane must be a positive integer, not -1"),
])
def test_lane_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LaneParams(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"max_delay": -1}, "Maximum delay must be a non-negative integer, not -1"),
    ({"error_bits": 33}, "Error bits must be an integer from 1 to 32, not 33"),
    ({"error_bits": 0}, "Error bits must be an integer from 1 to 32, not 0"),
    ({"seed": -1}, "Seed must be an integer from 0 to 2\\*\\*40 - 1, not -1"),
    ({"counter_width": 0}, "Counter width must be a positive integer, not 0"),
])
def test_interposer_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InterposerParams(**kwargs)


def test_signature_shape():
    p = LaneParams(lanes=4, bits_per_lane=2)
    assert p.width == 8
    sig = LaneSignature(p)
    assert sig == LaneSignature(LaneParams(4, 2)) and sig != LaneSignature(LaneParams(8, 1))
    assert len(Interposer(InterposerParams(p)).rx.data) == 8
    with pytest.raises(TypeError, match="must be a LaneParams"):
        LaneSignature(4)
    dut = Interposer(InterposerParams(p, max_delay=5))
    assert dut.tx.signature == sig.flip() and dut.rx.signature == sig
    assert len(dut.delay) == 4 * 3
