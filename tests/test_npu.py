# amaranth: UnusedElaboratable=no
"""The NPU compute core: cocotb scoreboards on both simulators, unit checks, bench smoke."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from chipknit.rtl.npu.array import ArrayParams, SystolicArray
from chipknit.rtl.npu.engine import EngineParams
from chipknit.rtl.npu.mac import Multiplier
from chipknit.rtl.npu.requant import RequantParams
from chipknit.tb.benches import NPU_ENGINE_PARAMS, get_testbench
from chipknit.tb.harness import run


@pytest.mark.parametrize("simulator,params", [
    ("icarus", {"lanes": 2}),
    ("verilator", {"lanes": 1}),
], ids=lambda value: value if isinstance(value, str) else f"lanes{value['lanes']}")
def test_npu_requant(simulator, params, seed):
    result = run(get_testbench("npu_requant"), simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == 3


@pytest.mark.parametrize("simulator,params", [
    ("icarus", {}),
    # Not square, K and N tiles of odd sizes, one requantiser lane.
    ("verilator", {"rows": 3, "cols": 5, "lanes": 1}),
    # The LUT shift-add multipliers, three lanes (Verilator: this design hangs Icarus 11 at
    # time 0, not yet understood; the bare LUT array passes in Amaranth's simulator below).
    ("verilator", {"rows": 2, "cols": 3, "mac": "lut", "lanes": 3}),
], ids=lambda value: value if isinstance(value, str) else
    "{rows}x{cols}-{mac}-lanes{lanes}".format(**{**NPU_ENGINE_PARAMS, **value}))
def test_npu_engine(simulator, params, seed):
    result = run(get_testbench("npu_engine"), simulator=simulator, params=params, seed=seed)
    result.check()
    assert result.tests == 6


@pytest.mark.slow
@pytest.mark.parametrize("seed_offset", range(4))
def test_npu_engine_more_seeds(seed, seed_offset):
    params = {"rows": 4, "cols": 4, "lanes": 4}
    result = run(get_testbench("npu_engine"), simulator="verilator", params=params,
                 seed=seed + seed_offset)
    result.check()


@pytest.mark.parametrize("mac", ["infer", "lut", "ecp5_mixed"])
def test_array_streams_tiles_with_overlapped_weight_loads(mac):
    """Amaranth simulation: three tiles back to back, each tile's weights shifted in while
    the previous one computes (the earliest the protocol allows). ``ecp5_mixed`` without
    DSP cells is all LUT cells padded to the DSP's 3 cycles (a MULT18X18D does not
    simulate)."""
    params = ArrayParams(rows=3, cols=4, mac=mac)
    dut = SystolicArray(params)
    gen = np.random.default_rng(2)
    m = params.rows + params.swap_hold + 1
    tiles = [(gen.integers(-256, 256, (3, 4)), gen.integers(-256, 256, (m, 3)))
             for _ in range(3)]
    outs = []

    async def drive(ctx):
        def load(weights, r):
            for c in range(4):
                ctx.set(dut.w[c], int(weights[params.rows - 1 - r, c]))
        for r in range(params.rows):
            load(tiles[0][0], r)
            ctx.set(dut.w_load, 1)
            await ctx.tick()
        ctx.set(dut.w_load, 0)
        for index, (_, a) in enumerate(tiles):
            for i in range(m):
                for r in range(3):
                    ctx.set(dut.a[r], int(a[i, r]))
                ctx.set(dut.a_valid, 1)
                ctx.set(dut.swap, int(i == 0))
                load_step = i - params.swap_hold
                if index + 1 < len(tiles) and 0 <= load_step < params.rows:
                    load(tiles[index + 1][0], load_step)
                    ctx.set(dut.w_load, 1)
                else:
                    ctx.set(dut.w_load, 0)
                await ctx.tick()
        ctx.set(dut.a_valid, 0)
        await ctx.tick().repeat(params.latency + 2)

    async def monitor(ctx):
        while True:
            _, _, valid, value = await ctx.tick().sample(dut.o_valid, dut.o)
            if valid:
                outs.append([value[c] for c in range(4)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(monitor, background=True)
    sim.run()
    expected = np.concatenate([a @ w for w, a in tiles])
    assert np.array_equal(np.array(outs), expected)


@pytest.mark.parametrize("factory,message", [
    (lambda: ArrayParams(rows=0), "Rows must be a positive integer, not 0"),
    (lambda: ArrayParams(cols=-2), "Columns must be a positive integer, not -2"),
    (lambda: ArrayParams(mac="dsp"), "MAC kind must be one of infer, lut, ecp5_dsp"),
    (lambda: ArrayParams(mac="ecp5_mixed", dsp_cells=17),
     r"DSP cells must be an integer in \[0, 16\], not 17"),
    (lambda: ArrayParams(mac="lut", dsp_cells=2), "only apply to the ecp5_mixed mapping"),
    (lambda: Multiplier(9, "ecp5_dsp", latency=2), "must be an integer >= 3, not 2"),
    (lambda: RequantParams(lanes=0), "Lanes must be a positive integer, not 0"),
    (lambda: EngineParams(a_depth=100), "A depth must be a power of two, not 100"),
    (lambda: EngineParams(requant_lanes=3), "Requant lanes must be a positive divisor"),
    (lambda: EngineParams(array=ArrayParams(operand_width=8)), "operand width >= 9"),
    (lambda: EngineParams(w_depth=2), "W depth must hold one weight tile"),
    (lambda: Multiplier(20, "ecp5_dsp"), "at most 18-bit operands"),
])
def test_params_are_validated(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_array_latency_and_widths():
    params = ArrayParams(rows=16, cols=16)
    assert params.psum_width == 18 + 4
    assert params.latency == 16 + 16 + 3
    assert ArrayParams(rows=4, cols=4, mac="ecp5_dsp").latency == 11
    mixed = ArrayParams(rows=16, cols=16, mac="ecp5_mixed", dsp_cells=156)
    assert mixed.latency == 16 + 16 + 3
    kinds = [mixed.cell_mac(r, c) for r in range(16) for c in range(16)]
    assert kinds.count("ecp5_dsp") == 156 and kinds[:156] == ["ecp5_dsp"] * 156


@pytest.mark.heavy(35)
def test_bench_npu_quick(tmp_path):
    from chipknit.cli import main
    out = tmp_path / "npu.json"
    assert main(["bench", "npu", "--quick", "--json", str(out), "--plot",
                 str(tmp_path / "npu.png")]) == 0
    import json
    figures = json.loads(out.read_text())
    assert figures["bit_exact"] is True
    assert figures["array"] == {"rows": 4, "cols": 4}
    assert 0 < figures["points"][0]["mac_utilisation"] <= 1
    assert {entry["design"] for entry in figures["fpga"]} == {"array4x4-ecp5_dsp",
                                                             "array2x2-infer"}
    assert (tmp_path / "npu.png").exists()
