"""Reference model of the NPU's numerics (pure NumPy; imports no RTL).

:mod:`chipknit.tb.models.npu` re-exports it for the testbenches.

The rules are TFLite's integer kernels (the reference Conv2D / FullyConnected int8 kernels,
TFLite Micro and CMSIS-NN compute the same), written out so that every rounding is named:

1. **GEMM with zero points.** ``acc[m, n] = sum_k (a[m, k] - a_zp) * (w[k, n] - w_zp)``,
   int8 operands, int32 accumulation. TFLite keeps ``w_zp = 0`` for int8 weights; the model
   takes any value in [-128, 127].
2. **Bias.** ``x = acc + bias[n]`` (int32).
3. **Left shift.** ``shift[n] > 0`` multiplies by ``2**shift`` first (a multiplier >= 1 is a
   Q31 multiplier with a positive shift).
4. **SaturatingRoundingDoublingHighMul(x, multiplier[n])**: the high 32 bits of ``2*x*M``,
   rounded to nearest with ties toward +inf; ``INT32_MIN * INT32_MIN`` saturates to
   ``INT32_MAX`` (the only case that overflows).
5. **RoundingDivideByPOT(y, -shift[n])** for ``shift[n] < 0``: arithmetic right shift,
   rounded to nearest with ties away from zero.
6. **Output zero point and clamp**: ``clamp(z + out_zp, act_min, act_max)``; ReLU is
   ``act_min = out_zp``, ReLU6 also sets ``act_max`` to the quantised 6.0.

Every int32 step wraps on overflow (two's complement), which is what TFLite's C++ computes
on the targets it runs on where the C standard leaves signed overflow undefined: the
accumulation, ``acc + bias``, ``x << shift`` and ``z + out_zp``. In-range layers never
overflow; the wrap only fixes what out-of-range inputs give, so hardware and model agree.
"""

import numpy as np

__all__ = [
    "INT32_MIN", "INT32_MAX", "SHIFT_MIN", "SHIFT_MAX",
    "wrap_int32", "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "quantize_multiplier", "gemm_int32", "requantize",
    "qgemm", "conv2d_int32", "qconv2d",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
SHIFT_MIN, SHIFT_MAX = -31, 31


def _int64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """``x`` (any integer array) reduced to int32 two's complement, as int64."""
    x = _int64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _check_int32(name, x):
    x = _int64(x)
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise ValueError(f"{name} must be int32, got values in [{x.min()}, {x.max()}]")
    return x


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int32 arrays (result int64).

    As TFLite writes it: ``ab = a * b`` in 64 bits, ``nudge = 2**30`` if ``ab >= 0`` else
    ``1 - 2**30``, then ``(ab + nudge) / 2**31`` with C's division (truncating toward zero),
    and ``INT32_MIN * INT32_MIN`` gives ``INT32_MAX``. Rounds to nearest, ties toward +inf.
    """
    a = _check_int32("a", a)
    b = _check_int32("b", b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C division truncates toward zero; NumPy's // floors.
    high = np.where(total >= 0, total // (1 << 31), -((-total) // (1 << 31)))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent``, ties away from zero.

    ``mask = 2**exponent - 1``, ``remainder = x & mask``,
    ``threshold = (mask >> 1) + (x < 0)``, result ``(x >> exponent) + (remainder > threshold)``.
    """
    x = _check_int32("x", x)
    exponent = _int64(exponent)
    if exponent.size and (exponent.min() < 0 or exponent.max() > 31):
        raise ValueError("Exponent must be in [0, 31]")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier(x, multiplier, shift)`` (double rounding).

    ``shift > 0`` shifts ``x`` left first (wrapping to int32), ``shift < 0`` divides the
    high product by ``2**-shift`` rounding ties away from zero.
    """
    x = _check_int32("x", x)
    multiplier = _check_int32("multiplier", multiplier)
    shift = _int64(shift)
    if shift.size and (shift.min() < SHIFT_MIN or shift.max() > SHIFT_MAX):
        raise ValueError(f"Shift must be in [{SHIFT_MIN}, {SHIFT_MAX}], "
                         f"got values in [{shift.min()}, {shift.max()}]")
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= multiplier * 2**(shift - 31)``.

    Returns a Q31 ``multiplier`` in [2**30, 2**31) (or 0) and a ``shift``; used by tests to
    build realistic per-channel scales.
    """
    if real == 0:
        return 0, 0
    mantissa, exponent = np.frexp(real)
    q = int(round(mantissa * (1 << 31)))
    if q == 1 << 31:
        q //= 2
        exponent += 1
    if exponent < SHIFT_MIN:
        return 0, 0
    return q, int(exponent)


def gemm_int32(a, w, a_zero_point=0, w_zero_point=0) -> np.ndarray:
    """``(a - a_zp) @ (w - w_zp)`` for int8 ``a`` (M×K) and ``w`` (K×N), wrapped to int32."""
    a = _int64(a)
    w = _int64(w)
    for name, value in (("a", a), ("w", w)):
        if value.size and (value.min() < -128 or value.max() > 127):
            raise ValueError(f"{name} must be int8")
    for name, value in (("a_zero_point", a_zero_point), ("w_zero_point", w_zero_point)):
        if not -128 <= int(value) <= 127:
            raise ValueError(f"{name} must be in [-128, 127], not {value}")
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"Shapes do not multiply: a {a.shape}, w {w.shape}")
    return wrap_int32((a - a_zero_point) @ (w - w_zero_point))


def requantize(acc, bias, multiplier, shift, out_zero_point=0, act_min=-128, act_max=127
               ) -> np.ndarray:
    """TFLite's output stage on an int32 ``acc`` (…×N) with per-channel (N) parameters.

    Returns int64 values in ``[act_min, act_max]``.
    """
    if not -128 <= act_min <= act_max <= 127:
        raise ValueError(f"Need -128 <= act_min <= act_max <= 127, got {act_min}, {act_max}")
    if not -128 <= out_zero_point <= 127:
        raise ValueError(f"Output zero point must be in [-128, 127], not {out_zero_point}")
    x = wrap_int32(_check_int32("acc", acc) + _check_int32("bias", bias))
    z = multiply_by_quantized_multiplier(x, multiplier, shift)
    z = wrap_int32(z + out_zero_point)
    return np.clip(z, act_min, act_max)


def qgemm(a, w, bias, multiplier, shift, *, a_zero_point=0, w_zero_point=0,
          out_zero_point=0, act_min=-128, act_max=127) -> np.ndarray:
    """A quantised fully-connected layer: :func:`gemm_int32` then :func:`requantize`."""
    acc = gemm_int32(a, w, a_zero_point, w_zero_point)
    return requantize(acc, bias, multiplier, shift, out_zero_point, act_min, act_max)


def conv2d_int32(x, weights, *, stride=1, padding=0, x_zero_point=0, w_zero_point=0
                 ) -> np.ndarray:
    """Direct 2-D convolution (no im2col): ``x`` H×W×Cin int8, ``weights`` KH×KW×Cin×Cout
    int8; padding contributes ``x_zero_point`` (nothing, once the zero point is taken off).
    Returns OH×OW×Cout int32 accumulators."""
    x, weights = _int64(x), _int64(weights)
    kh, kw, cin, cout = weights.shape
    h, w = x.shape[:2]
    padded = np.full((h + 2 * padding, w + 2 * padding, cin), x_zero_point, dtype=np.int64)
    padded[padding:padding + h, padding:padding + w] = x
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    acc = np.zeros((oh, ow, cout), dtype=np.int64)
    for dy in range(kh):
        for dx in range(kw):
            window = padded[dy:dy + stride * (oh - 1) + 1:stride,
                            dx:dx + stride * (ow - 1) + 1:stride] - x_zero_point
            acc += np.einsum("yxc,cn->yxn", window, weights[dy, dx] - w_zero_point)
    return wrap_int32(acc)


def qconv2d(x, weights, bias, multiplier, shift, *, stride=1, padding=0, x_zero_point=0,
            w_zero_point=0, out_zero_point=0, act_min=-128, act_max=127) -> np.ndarray:
    """A quantised Conv2D layer (TFLite int8, per-output-channel scales)."""
    acc = conv2d_int32(x, weights, stride=stride, padding=padding,
                       x_zero_point=x_zero_point, w_zero_point=w_zero_point)
    return requantize(acc, bias, multiplier, shift, out_zero_point, act_min, act_max)
