# amaranth: UnusedElaboratable=no
"""The NPU command queue: cocotb programs on Verilator, and the ISA's two sides agree."""

import pytest

from chipknit.rtl.npu.commands import (
    Opcode,
    QueueParams,
    StatusCode,
    command_layout,
    status_layout,
)
from chipknit.rtl.npu.engine import EngineParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models import npu_isa as isa


@pytest.mark.parametrize("simulator,params", [
    ("verilator", {}),
    # Not square, one requantiser lane, a shallow FIFO and few commands in flight. (Not
    # Icarus: Icarus 11 stays at time 0 on this design under cocotb, not yet understood.)
    ("verilator", {"rows": 3, "cols": 5, "lanes": 1, "depth": 2, "in_flight": 3}),
], ids=["4x4", "3x5-shallow"])
def test_npu_commands(simulator, params, seed):
    result = run(get_testbench("npu_commands"), simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == 4


def _fields(layout, base=0):
    """{path: (offset, width)} of every leaf of a layout."""
    out = {}
    for name, member in layout:
        shape = member.shape
        if hasattr(shape, "__iter__") and not isinstance(shape, type):
            out.update({f"{name}.{key}": (base + member.offset + offset, width)
                        for key, (offset, width) in _fields(shape).items()})
        else:
            width = shape.width if hasattr(shape, "width") else shape.as_shape().width
            out[name] = (base + member.offset, width)
    return out


def test_isa_encoder_matches_rtl_layout():
    """Every field the encoder writes lands where the RTL's layout reads it."""
    assert command_layout.size == isa.COMMAND_BITS
    assert status_layout.size == isa.STATUS_BITS
    assert {op.name: op.value for op in Opcode} == {op.name: op.value for op in isa.Opcode}
    assert {s.name: s.value for s in StatusCode} == {s.name: s.value for s in isa.Status}
    rtl = _fields(command_layout)
    assert rtl["opcode"] == (0, 4) and rtl["flags"] == (4, 4)
    for opcode, arguments in isa.ARGUMENTS.items():
        offset = 8
        for name, width, _ in arguments:
            assert rtl[f"args.{opcode.name.lower()}.{name}"] == (offset, width), name
            offset += width
    status = _fields(status_layout)
    assert status == {"code": (0, 4), "opcode": (4, 4), "seq": (8, 8)}


def test_isa_encoder_round_trips_and_rejects():
    word = isa.compute(m=5, k_blocks=3, a_base=7, w_base=12, acc_base=9, accumulate=True)
    assert isa.fields(word) == (isa.Opcode.COMPUTE, 1, {"m": 5, "k_blocks": 3, "a_base": 7,
                                                        "w_base": 12, "acc_base": 9})
    word = isa.configure(a_zero_point=-128, act_min=-3, act_max=100)
    assert isa.fields(word)[2]["a_zero_point"] == -128
    assert isa.fields(word)[2]["act_min"] == -3
    with pytest.raises(ValueError, match="does not fit"):
        isa.compute(m=4096, k_blocks=1)
    with pytest.raises(ValueError, match="no fields"):
        isa.encode(isa.Opcode.FENCE, m=1)


def test_queue_params_are_validated():
    with pytest.raises(ValueError, match="Depth must be a positive integer"):
        QueueParams(depth=0)
    with pytest.raises(ValueError, match="a_depth must be below 4096"):
        QueueParams(EngineParams(a_depth=4096))


@pytest.mark.parametrize("a_depth", [1, 64, 256, 4095])
def test_a_range_check_matches_the_rule(a_depth):
    """The queue's COMPUTE check ``a_base + k_blocks·m > a_depth`` (product halves made by
    shift-add as a command enters the FIFO, carry-save sum against the bound as it leaves)
    against the rule itself, in Amaranth simulation: random fields and fields at the
    boundary (one row under, at, and over the end)."""
    import random

    from amaranth.hdl import Module, Signal
    from amaranth.lib import data
    from amaranth.sim import Simulator

    from chipknit.rtl.npu.commands import _PARTIAL_BITS, _a_out_of_range, _times_nibble

    m = Module()
    k_blocks, rows, a_base, over = Signal(8), Signal(12), Signal(12), Signal()
    partial = Signal(data.StructLayout({"low": _PARTIAL_BITS, "high": _PARTIAL_BITS}))
    m.d.comb += [partial.low.eq(_times_nibble(k_blocks[:4], rows)),
                 partial.high.eq(_times_nibble(k_blocks[4:], rows)),
                 over.eq(_a_out_of_range(m, partial, a_base, a_depth))]
    checked = {False: 0, True: 0}

    async def bench(ctx):
        gen = random.Random(a_depth)
        for _ in range(3000):
            k, r, b = gen.randrange(256), gen.randrange(4096), gen.randrange(4096)
            if gen.random() < 0.5:
                k = gen.randrange(1, min(256, a_depth + 1))
                r = gen.randrange(1, a_depth // k + 1)
                b = max(0, min(4095, a_depth - k * r + gen.randrange(-1, 2)))
            ctx.set(k_blocks, k)
            ctx.set(rows, r)
            ctx.set(a_base, b)
            expected = b + k * r > a_depth
            assert ctx.get(over) == expected, (k, r, b)
            checked[expected] += 1

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert min(checked.values()) > 300, checked
