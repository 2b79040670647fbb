"""Verilator lint of Amaranth components: ``verilator --lint-only -Wall`` with rule waivers.

The waivers live in ``waivers.vlt`` beside this file, each with the reason Amaranth's output
always triggers it. Anything else is a finding.
"""

import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amaranth.lib import wiring

from .hdl import to_sv
from .toolchain import require_simulator

__all__ = ["LintResult", "lint", "lint_sv", "WAIVERS"]

WAIVERS = resources.files(__package__) / "waivers.vlt"


@dataclass
class LintResult:
    name: str
    returncode: int
    messages: list[str]

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.messages

    def __str__(self):
        verdict = "clean" if self.clean else f"{len(self.messages)} finding(s)"
        return "\n".join([f"lint {self.name}: {verdict}", *self.messages])


def lint_sv(sv_text: str, top: str) -> LintResult:
    """Lint SystemVerilog text whose top module is ``top``."""
    verilator = require_simulator("verilator")
    with tempfile.TemporaryDirectory(prefix="chipknit-lint-") as tmp:
        source = Path(tmp) / f"{top}.sv"
        source.write_text(sv_text)
        with resources.as_file(WAIVERS) as waivers:
            completed = subprocess.run(
                [verilator, "--lint-only", "-Wall", "--top-module", top, str(waivers),
                 str(source)],
                capture_output=True, text=True, cwd=tmp)
    messages = [line for line in (completed.stdout + completed.stderr).splitlines()
                if line.startswith("%")]
    return LintResult(top, completed.returncode, messages)


def lint(component: wiring.Component, name: str) -> LintResult:
    """Convert ``component`` (top module ``name``) and lint it."""
    return lint_sv(to_sv(component, name), name)
