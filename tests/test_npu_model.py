"""The NPU's NumPy reference model against hand-checked cases and an independent oracle."""

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from chipknit.tb.models.npu import (
    INT32_MAX,
    INT32_MIN,
    gemm_int32,
    multiply_by_quantized_multiplier,
    qgemm,
    quantize_multiplier,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    wrap_int32,
)

HALF = 1 << 30  # 0.5 as a Q31 multiplier


@pytest.mark.parametrize("a,b,expected", [
    (HALF, 1, 1),                        # +0.5 rounds up
    (-HALF, 1, 0),                       # -0.5 rounds toward +inf: 0
    (-3 << 29, 2, -1),                   # -1.5 -> -1 (toward +inf, not away from zero)
    (5, HALF, 3),                        # 2.5 -> 3
    (-5, HALF, -2),                      # -2.5 -> -2
    (HALF + 1, 1, 1),                    # just above a half
    (-HALF - 1, 1, -1),                  # just below minus a half
    (INT32_MIN, INT32_MIN, INT32_MAX),   # the one overflow: saturates
    (INT32_MIN, INT32_MAX, INT32_MIN + 1),
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),
    (INT32_MAX, INT32_MIN, INT32_MIN + 1),
    (0, INT32_MIN, 0),
])
def test_srdhm_hand_checked(a, b, expected):
    assert saturating_rounding_doubling_high_mul(a, b) == expected


@pytest.mark.parametrize("x,exponent,expected", [
    (5, 1, 3), (-5, 1, -3),              # 2.5 / -2.5: ties away from zero
    (6, 2, 2), (-6, 2, -2),              # 1.5 / -1.5
    (5, 2, 1), (-5, 2, -1),              # 1.25 / -1.25
    (7, 2, 2), (-7, 2, -2),              # 1.75 / -1.75
    (4, 1, 2), (-4, 1, -2), (123, 0, 123), (-123, 0, -123),
    (INT32_MIN, 31, -1), (INT32_MAX, 31, 1), (HALF, 31, 1), (-HALF, 31, -1),
    (HALF - 1, 31, 0), (-HALF + 1, 31, 0),
])
def test_rounding_divide_by_pot_hand_checked(x, exponent, expected):
    assert rounding_divide_by_pot(x, exponent) == expected


@pytest.mark.parametrize("x,multiplier,shift,expected", [
    (3, HALF, 1, 3),          # 3 * 0.5 * 2
    (3, HALF, -1, 1),         # 0.75: 2 after the high mul, then 1
    (5, HALF, -1, 2),         # 1.25 rounds twice (3, then 1.5 -> 2): TFLite's double rounding
    (-5, HALF, -1, -1),       # -1.25: -2 after the high mul, then -1
    (HALF, HALF, 2, 0),       # 2**30 << 2 wraps to 0 before the multiply
    (1, INT32_MAX, 31, INT32_MIN + 1),  # 1 << 31 wraps to INT32_MIN
    (100, INT32_MAX, 0, 100),
    (-100, INT32_MAX, -2, -25),
])
def test_multiply_by_quantized_multiplier_hand_checked(x, multiplier, shift, expected):
    assert multiply_by_quantized_multiplier(x, multiplier, shift) == expected


def _oracle(x, multiplier, shift):
    """The same rules from exact rationals, written independently of the model."""
    x = ((x << max(shift, 0)) + (1 << 31)) % (1 << 32) - (1 << 31)
    if x == multiplier == INT32_MIN:
        high = INT32_MAX
    else:
        high = math.floor(Fraction(x * multiplier, 1 << 31) + Fraction(1, 2))
    exponent = max(-shift, 0)
    magnitude = math.floor(Fraction(abs(high), 1 << exponent) + Fraction(1, 2))
    return magnitude if high >= 0 else -magnitude


def test_multiply_by_quantized_multiplier_matches_rational_oracle():
    rng = random.Random(1)
    edge = [INT32_MIN, INT32_MIN + 1, -HALF, -1, 0, 1, HALF, INT32_MAX - 1, INT32_MAX]
    cases = []
    for _ in range(3000):
        x = rng.choice(edge) if rng.random() < 0.2 else rng.randint(INT32_MIN, INT32_MAX)
        m = rng.choice(edge) if rng.random() < 0.2 else rng.randint(INT32_MIN, INT32_MAX)
        if rng.random() < 0.3:  # make exact ties likely
            x = rng.randint(-1000, 1000) << rng.randint(0, 20)
            m = HALF >> rng.randint(0, 8)
        cases.append((x, m, rng.randint(-31, 31)))
    xs, ms, shifts = (np.array(column) for column in zip(*cases, strict=True))
    got = multiply_by_quantized_multiplier(xs, ms, shifts)
    for (x, m, shift), value in zip(cases, got, strict=True):
        assert value == _oracle(x, m, shift), (x, m, shift)


def test_requantize_clamps_relu_and_relu6():
    acc = np.array([[-1000, -10, 0, 10, 1000, 50]])
    bias = np.zeros(6, dtype=np.int64)
    multiplier = np.full(6, HALF)    # scale 0.5
    shift = np.zeros(6, dtype=np.int64)
    plain = requantize(acc, bias, multiplier, shift, out_zero_point=-5)
    assert plain.tolist() == [[-128, -10, -5, 0, 127, 20]]
    relu = requantize(acc, bias, multiplier, shift, out_zero_point=-5, act_min=-5)
    assert relu.tolist() == [[-5, -5, -5, 0, 127, 20]]
    # ReLU6 with an output scale of 6/24: quantised 6.0 is 24 + out_zp = 19.
    relu6 = requantize(acc, bias, multiplier, shift, out_zero_point=-5, act_min=-5,
                       act_max=19)
    assert relu6.tolist() == [[-5, -5, -5, 0, 19, 19]]


def test_requantize_per_channel_bias_and_wraps():
    acc = np.array([[INT32_MAX, INT32_MIN, 7]])
    bias = np.array([1, -1, 3])
    out = requantize(acc, bias, np.full(3, INT32_MAX), np.zeros(3, dtype=np.int64))
    # INT32_MAX + 1 wraps to INT32_MIN (clamps low); INT32_MIN - 1 wraps high.
    assert out.tolist() == [[-128, 127, 10]]


def test_gemm_zero_points_and_extremes():
    a = np.array([[-128, 127], [0, -1]])
    w = np.array([[127, -128], [-128, 127]])
    expected = (a - 3) @ (w + 2)
    assert (gemm_int32(a, w, 3, -2) == expected).all()
    assert gemm_int32(np.full((1, 4), -128), np.full((4, 1), -128)).item() == 4 * 16384


def test_qgemm_against_float_scale():
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (8, 16))
    w = rng.integers(-128, 128, (16, 4))
    scales = [0.003, 0.0007, 1.7, 0.05]
    pairs = [quantize_multiplier(s) for s in scales]
    multiplier = np.array([p[0] for p in pairs])
    shift = np.array([p[1] for p in pairs])
    assert shift[2] == 1  # a multiplier >= 1 becomes a positive shift
    out = qgemm(a, w, np.zeros(4, dtype=np.int64), multiplier, shift, a_zero_point=1)
    reference = np.clip(np.round(((a - 1) @ w) * np.array(scales)), -128, 127)
    assert np.abs(out - reference).max() <= 1


def test_validation_messages():
    with pytest.raises(ValueError, match="Shift must be in"):
        multiply_by_quantized_multiplier(1, 1, 32)
    with pytest.raises(ValueError, match="a must be int8"):
        gemm_int32(np.array([[200]]), np.array([[1]]))
    with pytest.raises(ValueError, match="Shapes do not multiply"):
        gemm_int32(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="act_min <= act_max"):
        requantize(np.zeros((1, 1)), [0], [1], [0], act_min=5, act_max=4)
    assert wrap_int32(1 << 31) == INT32_MIN
