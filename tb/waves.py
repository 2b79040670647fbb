"""GTKWave save files that group a design's top-level signals by interface.

A component's signature says which ports belong together (``i__valid``, ``i__ready`` and
``i__payload`` are the stream ``i``); the save file opens with one group per interface,
then the clock, reset and the loose status ports.
"""

from pathlib import Path

__all__ = ["SCOPES", "write_gtkw"]

# Where each simulator puts the top module in the FST hierarchy.
SCOPES = {"icarus": "{top}", "verilator": "{top}"}

# GTKWave trace flags: 1-bit signals as binary, vectors as hex, group open/close markers.
_BINARY, _HEX, _GROUP_OPEN, _GROUP_CLOSE = "@28", "@22", "@800200", "@1000200"


def _trace(scope: str, name: str, width: int) -> list[str]:
    if width == 1:
        return [_BINARY, f"{scope}.{name}"]
    return [_HEX, f"{scope}.{name}[{width - 1}:0]"]


def write_gtkw(path: Path, fst: Path, top: str, simulator: str,
               ports: list[tuple[tuple[str, ...], str, int]]) -> Path:
    """Write a ``.gtkw`` for ``fst`` showing ``ports`` (see :func:`~chipknit.tb.hdl.port_names`).

    Ports whose path has more than one part are grouped under their first part.
    """
    scope = SCOPES[simulator].format(top=top)
    lines = [
        f'[dumpfile] "{fst.resolve()}"',
        f'[savefile] "{path.resolve()}"',
        "[timestart] 0",
        "[size] 1600 900",
        "[sst_width] 240",
        "[signals_width] 300",
        "[sst_expanded] 1",
    ]
    lines += _trace(scope, "clk", 1) + _trace(scope, "rst", 1)

    groups: dict[str, list[tuple[str, int]]] = {}
    loose: list[tuple[str, int]] = []
    for port_path, name, width in ports:
        if len(port_path) > 1:
            groups.setdefault(port_path[0], []).append((name, width))
        else:
            loose.append((name, width))
    for group, members in groups.items():
        lines += [_GROUP_OPEN, f"-{group}"]
        for name, width in members:
            lines += _trace(scope, name, width)
        lines += [_GROUP_CLOSE, f"-{group}"]
    if loose:
        lines += [_GROUP_OPEN, "-status"]
        for name, width in loose:
            lines += _trace(scope, name, width)
        lines += [_GROUP_CLOSE, "-status"]
    path.write_text("\n".join(lines) + "\n")
    return path
