"""The host compiler (``chipknit.npu``): programs run on the tile model, bit-exact against the
numerics' golden model, for random shapes, extremes, zero points, clamps, convolutions."""

import numpy as np
import pytest

from chipknit.npu import isa
from chipknit.npu.compiler import (
    ModelBackend,
    NpuError,
    Quantisation,
    compile_conv2d,
    compile_gemm,
    run,
)
from chipknit.npu.machine import RemoteMemory, TileModel, hazards, transfer_chunks
from chipknit.npu.model import gemm_int32, qconv2d, qgemm, quantize_multiplier

# Small tiles, so tiling, K chunks, M tiles and double buffering are all exercised.
TILES = {
    "4x4": isa.Limits(rows=4, cols=4, lanes=2, a_depth=64, w_depth=32, acc_depth=16,
                      qp_depth=8),
    "3x5": isa.Limits(rows=3, cols=5, lanes=1, a_depth=16, w_depth=8, acc_depth=8,
                      qp_depth=16, beat_bytes=8, max_beats=4),
    "2x2-tiny": isa.Limits(rows=2, cols=2, lanes=2, a_depth=4, w_depth=4, acc_depth=2,
                           qp_depth=2, max_beats=2),
}


def random_quant(gen, n, *, a_zp=None, extreme=False):
    pairs = [quantize_multiplier(float(s)) for s in np.exp(gen.uniform(-11, 1.4, n))]
    multiplier = np.array([p[0] for p in pairs])
    shift = np.array([p[1] for p in pairs])
    wild = gen.random(n) < 0.2
    multiplier[wild] = gen.integers(-(1 << 31), 1 << 31, wild.sum())
    shift[wild] = gen.integers(-31, 8, wild.sum())
    out_zp = int(gen.integers(-128, 128))
    kind = int(gen.integers(3))
    act_min, act_max = ((-128, 127), (out_zp, 127),
                        (out_zp, int(min(127, out_zp + gen.integers(1, 100)))))[kind]
    bias = gen.integers(-(1 << 31), 1 << 31, n) if extreme else \
        gen.integers(-(1 << 14), 1 << 14, n)
    return Quantisation(bias=bias, multiplier=multiplier, shift=shift,
                        a_zero_point=int(gen.integers(-128, 128)) if a_zp is None else a_zp,
                        w_zero_point=int(gen.integers(-128, 128)), out_zero_point=out_zp,
                        act_min=act_min, act_max=act_max)


def expected(a, w, q, bypass=False):
    if bypass:
        return gemm_int32(a, w, q.a_zero_point, q.w_zero_point)
    return qgemm(a, w, q.bias, q.multiplier, q.shift, a_zero_point=q.a_zero_point,
                 w_zero_point=q.w_zero_point, out_zero_point=q.out_zero_point,
                 act_min=q.act_min, act_max=q.act_max)


@pytest.mark.parametrize("tile", TILES)
def test_random_gemms_bit_exact_through_dma(tile):
    lim = TILES[tile]
    gen = np.random.default_rng(sum(map(ord, tile)))
    shapes = [(1, 1, 1), (1, 7, 1), (5, 1, 3), (2, 3, 9)] + \
        [tuple(int(v) for v in gen.integers(1, 40, 3)) for _ in range(12)]
    for m, k, n in shapes:
        a = gen.integers(-128, 128, (m, k))
        w = gen.integers(-128, 128, (k, n))
        q = random_quant(gen, n)
        bypass = bool(gen.integers(2))
        got = run(compile_gemm(a, w, q, lim, bypass=bypass))
        np.testing.assert_array_equal(got, expected(a, w, q, bypass), f"{m}x{k}x{n}")


def test_extremes_accumulate_over_many_k_chunks():
    """All-extreme operands and zero points over K of 300 (many K chunks on a 4x4 tile with
    a 32-row weight scratchpad): -255·255·300 must not wrap, and int32 bias extremes."""
    lim = TILES["4x4"]
    gen = np.random.default_rng(5)
    for a_value, w_value, a_zp, w_zp in ((-128, -128, 127, 127), (127, -128, -128, 127)):
        a = np.full((9, 300), a_value)
        w = np.full((300, 6), w_value)
        q = random_quant(gen, 6, extreme=True)
        q = Quantisation(**{**q.__dict__, "a_zero_point": a_zp, "w_zero_point": w_zp})
        for bypass in (True, False):
            np.testing.assert_array_equal(run(compile_gemm(a, w, q, lim, bypass=bypass)),
                                          expected(a, w, q, bypass))


def test_relu6_and_zero_points():
    lim = TILES["4x4"]
    gen = np.random.default_rng(6)
    a = gen.integers(-128, 128, (13, 21))
    w = gen.integers(-128, 128, (21, 10))
    scale = [quantize_multiplier(0.002)] * 10
    q = Quantisation(bias=gen.integers(-5000, 5000, 10), multiplier=np.array([s[0] for s in scale]),
                     shift=np.array([s[1] for s in scale]), a_zero_point=-9, w_zero_point=3,
                     out_zero_point=-20, act_min=-20, act_max=40)
    got = run(compile_gemm(a, w, q, lim))
    np.testing.assert_array_equal(got, expected(a, w, q))
    assert got.min() == -20 and got.max() == 40, "the clamp was not exercised"


@pytest.mark.parametrize("tile", ["4x4", "3x5"])
def test_preload_programs_match_dma_programs(tile):
    lim = TILES[tile]
    gen = np.random.default_rng(7)
    for m, k, n in ((1, 1, 1), (6, 3, 4), (3, 2, 5)):
        a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
        q = random_quant(gen, n)
        program = compile_gemm(a, w, q, lim, dma=False)
        assert program.output == "stream" and not program.memory
        assert not any(word & 15 in (isa.Opcode.LOAD, isa.Opcode.STORE)
                       for word in program.commands)
        np.testing.assert_array_equal(run(program), expected(a, w, q))
        np.testing.assert_array_equal(run(compile_gemm(a, w, q, lim)), expected(a, w, q))
    with pytest.raises(ValueError, match="without the DMA"):
        compile_gemm(np.zeros((40, 40)), np.zeros((40, 40)), random_quant(gen, 40), lim,
                     dma=False)


def test_real_conv_layer_3x3_8_to_16_channels():
    """A 3×3 convolution, 8 → 16 channels, on a 10×10 input, padding 1 with the input
    zero point, per-channel scales, ReLU: bit-exact against a direct convolution."""
    lim = TILES["4x4"]
    gen = np.random.default_rng(8)
    x = gen.integers(-128, 128, (10, 10, 8))
    weights = gen.integers(-127, 128, (3, 3, 8, 16))
    q = random_quant(gen, 16, a_zp=-5)
    q = Quantisation(**{**q.__dict__, "w_zero_point": 0, "act_min": q.out_zero_point,
                        "act_max": 127})
    reference = qconv2d(x, weights, q.bias, q.multiplier, q.shift, stride=1, padding=1,
                        x_zero_point=-5, out_zero_point=q.out_zero_point,
                        act_min=q.act_min, act_max=q.act_max)
    program = compile_conv2d(x, weights, q, lim, padding=1)
    got = run(program)
    assert got.shape == (10, 10, 16)
    np.testing.assert_array_equal(got, reference)
    # Strided, unpadded, on another tile shape.
    got = run(compile_conv2d(x, weights, q, TILES["3x5"], stride=2))
    np.testing.assert_array_equal(got, qconv2d(x, weights, q.bias, q.multiplier, q.shift,
                                               stride=2, x_zero_point=-5,
                                               out_zero_point=q.out_zero_point,
                                               act_min=q.act_min, act_max=q.act_max))


@pytest.mark.parametrize("tile", TILES)
def test_programs_have_no_hazards_and_every_fence_is_needed(tile):
    """No two commands that may run at the same time touch the same scratchpad rows
    (:func:`hazards`, the queue's concurrency as documented); dropping any one partial FENCE
    the compiler put in makes a hazard, and so does dropping all of them."""
    lim = TILES[tile]
    gen = np.random.default_rng(9)
    for m, k, n in ((20, 40, 12), (1, 1, 1), (2 * lim.acc_depth + 1, 3 * lim.rows + 1,
                                              3 * lim.cols + 1))[:2 if tile == "2x2-tiny" else 3]:
        a, w = gen.integers(-128, 128, (m, k)), gen.integers(-128, 128, (k, n))
        program = compile_gemm(a, w, random_quant(gen, n), lim)
        words = program.commands
        assert hazards(words, lim) == [], f"{m}x{k}x{n}: {hazards(words, lim)[:3]}"
        partial = [i for i, word in enumerate(words)
                   if word & 15 == isa.Opcode.FENCE and (word >> 4) & 1]
        for index in sorted(gen.choice(partial, min(len(partial), 12), replace=False)):
            assert hazards(words[:index] + words[index + 1:], lim), \
                f"{m}x{k}x{n}: FENCE {index} is not needed"
        if partial:
            assert hazards([x for i, x in enumerate(words) if i not in partial], lim)


def test_hazard_checker_sees_what_fences_allow():
    lim = TILES["4x4"]
    compute = isa.compute(m=4, k_blocks=1, a_base=0, w_base=0, acc_base=0)
    load_a = isa.load(isa.Target.A, spad_base=2, rows=1, remote=0)
    store = isa.store(m=4, acc_base=0, remote=0)
    assert hazards([compute, load_a], lim)                       # WAR on A row 2
    assert not hazards([compute, isa.fence(), load_a], lim)
    assert not hazards([compute, isa.fence(computes=0), load_a], lim)
    assert hazards([compute, isa.fence(transfers=0), load_a], lim)
    assert hazards([compute, compute, isa.fence(computes=1), load_a], lim)
    assert not hazards([compute, isa.compute(m=4, k_blocks=1, a_base=8, acc_base=0,
                                             accumulate=True)], lim)
    assert hazards([compute, store], lim)                        # RAW on the accumulators
    load_qp = isa.load(isa.Target.QP, spad_base=0, rows=1, remote=0)
    assert hazards([load_qp, store], lim)                        # the STORE reads QP early
    assert not hazards([store, load_qp], lim)                    # the DMA orders these
    assert not hazards([load_qp, isa.fence(transfers=0), store], lim)


def test_dma_errors_and_status_checks():
    lim = TILES["4x4"]
    gen = np.random.default_rng(10)
    a, w = gen.integers(-128, 128, (6, 9)), gen.integers(-128, 128, (9, 5))
    program = compile_gemm(a, w, random_quant(gen, 5), lim)
    memory = RemoteMemory(lim.beat_bytes, faults=[(program.out_base, program.out_base + 1)])
    with pytest.raises(NpuError, match="DMA_ERROR"):
        run(program, ModelBackend(memory))
    # A failed LOAD leaves the rows of its failed request as they were.
    tile = TileModel(lim, RemoteMemory(lim.beat_bytes, faults=[(100, 101)]))
    tile.memory.write(96, bytes(range(1, 40)))
    tile.a[:] = 7
    tile.execute(isa.stride(line_rows=4, stride=4))      # two requests of four rows
    code, *_ = tile.execute(isa.load(isa.Target.A, spad_base=0, rows=8, remote=96))
    assert code == isa.Status.DMA_ERROR
    assert list(tile.a[0]) == [1, 2, 3, 4] and list(tile.a[4]) == [7] * 4


def test_transfer_chunks_split_lines_and_bursts():
    lim = TILES["3x5"]                       # W rows: 1 beat of 8 bytes; bursts of 4 beats
    chunks = transfer_chunks(lim, isa.Target.W, 11, 100, 5, 50)
    assert chunks == [(0, 4, 100), (4, 1, 104), (5, 4, 150), (9, 1, 154), (10, 1, 200)]
    assert transfer_chunks(lim, isa.Target.QP, 3, 0, 0, 0) == [(0, 2, 0), (2, 1, 4)]


def test_compiler_rejects_bad_layers():
    lim = TILES["4x4"]
    q = Quantisation(bias=np.zeros(2), multiplier=np.zeros(2), shift=np.zeros(2))
    with pytest.raises(ValueError, match="Shapes do not multiply"):
        compile_gemm(np.zeros((2, 3)), np.zeros((4, 2)), q, lim)
    with pytest.raises(ValueError, match="one value per output channel"):
        compile_gemm(np.zeros((2, 3)), np.zeros((3, 3)), q, lim)
    with pytest.raises(ValueError, match="a must be int8"):
        compile_gemm(np.full((2, 3), 200), np.zeros((3, 2)), q, lim)
