"""Amaranth → Verilog for simulators and linters.

Amaranth's own Verilog backend emits ``always @*`` blocks that can hold X at time zero in
Icarus; we go through RTLIL and ask Yosys for SystemVerilog (``always_comb``) instead, with
the same passes Amaranth runs. The result is plain text: no file is edited afterwards.
"""

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.hdl import Value
from amaranth.lib import wiring

__all__ = ["to_rtlil", "rtlil_to_sv", "to_sv", "port_names"]


def to_rtlil(component: wiring.Component, name: str) -> str:
    """The component as RTLIL text, with ``name`` as the top module."""
    return rtlil.convert(component, name=name, emit_src=False)


def rtlil_to_sv(rtlil_text: str) -> str:
    """SystemVerilog from RTLIL, by the passes Amaranth's Verilog backend uses."""
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = "\n".join([
        f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil",
        "proc -nomux -norom",
        "memory_collect",
        "attrmap -remove generator -remove top -remove src -remove amaranth.hierarchy "
        "-remove amaranth.decoding",
        "write_verilog -norename -sv",
    ])
    # Yosys warns that not every process converts; Amaranth emits only ones that do.
    return yosys.run(["-q", "-"], script, ignore_warnings=True)


def to_sv(component: wiring.Component, name: str) -> str:
    """The component as SystemVerilog, with ``name`` as the top module."""
    return rtlil_to_sv(to_rtlil(component, name))


def port_names(component: wiring.Component) -> list[tuple[tuple[str, ...], str, int]]:
    """The top-level ports Amaranth emits: ``(path, verilog name, width)`` in signature order."""
    ports = []
    for path, _member, value in component.signature.flatten(component):
        width = len(Value.cast(value))
        ports.append((tuple(str(p) for p in path), "__".join(map(str, path)), width))
    return ports
