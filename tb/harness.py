"""Run a cocotb testbench on an Amaranth component, under Icarus or Verilator.

Give :func:`run` a :class:`Testbench` (a component factory, its parameters and the cocotb
test module) and it:

1. elaborates the component and emits SystemVerilog from RTLIL (:mod:`chipknit.tb.hdl`);
2. builds it through ``cocotb_tools.runner`` into ``build/sim/<name>-<simulator>-<hash>``,
   the hash taken over the Verilog text, the simulator, the wave switch and the tool
   versions, so a rerun reuses the build and parallel pytest workers never share a half-built
   directory (a file lock guards each build);
3. runs the cocotb module with a seed (random unless given, always reported) and the
   design parameters in ``CHIPKNIT_PARAMS``, writing JUnit XML;
4. on request writes FST waves and a GTKWave save file grouped by interface. A failing run
   without waves is rerun once with the same seed and waves on, so a failure always leaves
   its waves, and the result names the seed and the command that reproduces it.
"""

import fcntl
import hashlib
import json
import os
import random
import re
import shlex
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
from amaranth.lib import wiring
from cocotb_tools.runner import Verilator, get_runner

from .hdl import port_names, to_sv
from .toolchain import require_simulator, verilator_root
from .waves import write_gtkw

__all__ = ["Testbench", "SimResult", "run", "build_root", "PARAMS_ENV"]

PARAMS_ENV = "CHIPKNIT_PARAMS"
#: Overrides every bench's ``cxx_opt`` (e.g. ``-Os`` to time a long run of a quick-compile
#: bench).
CXX_OPT_ENV = "CHIPKNIT_VERILATOR_CXX_OPT"
TIMESCALE = ("1ns", "1ps")


@dataclass(frozen=True)
class Testbench:
    """A cocotb test module and the design it drives.

    Parameters
    ----------
    name : str
        Name of the testbench and of the top-level Verilog module.
    top : callable
        Builds the component from keyword parameters.
    module : str
        Importable cocotb test module.
    params : mapping
        Default parameters for ``top``; JSON-serialisable, they are also handed to the test.
    description : str
        One line for ``chipknit sim --list``.
    simulator : str
        What ``chipknit sim`` runs it on unless told otherwise: Icarus starts fastest, but
        designs it runs too slowly (a whole package, a mesh) say ``"verilator"``.
    cxx_opt : str
        The C++ compiler's optimisation for the Verilator model (Verilator's own default is
        ``-Os``). On the large designs compiling the model takes most of a test's time:
        ``-O0`` compiles a package several times faster, for a slower simulation; benches
        whose runs are short say so. It applies to the run-time code (Verilator's
        ``OPT_FAST`` and ``OPT_GLOBAL``); the start-up code is never optimised.
        ``CHIPKNIT_VERILATOR_CXX_OPT`` overrides it.
    """
    __test__ = False  # not a pytest test class, despite the name

    name: str
    top: Callable[..., wiring.Component]
    module: str
    params: Mapping[str, object] = field(default_factory=dict)
    description: str = ""
    simulator: str = "icarus"
    cxx_opt: str = "-Os"
    public_internals: bool = False


@dataclass
class SimResult:
    """What a run produced."""
    bench: str
    simulator: str
    seed: int
    params: dict
    tests: int
    failures: int
    results_xml: Path
    log: Path
    build_dir: Path
    reproduce: str
    failed_tests: list[str] = field(default_factory=list)
    waves: Path | None = None
    gtkw: Path | None = None

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.failures == 0

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict} {self.bench} on {self.simulator}: "
                 f"{self.tests - self.failures}/{self.tests} tests passed, seed {self.seed}"]
        if self.failed_tests:
            lines.append(f"  failed: {', '.join(self.failed_tests)}")
        lines.append(f"  log:     {self.log}")
        lines.append(f"  results: {self.results_xml}")
        if self.waves is not None:
            lines.append(f"  waves:   {self.waves}")
            lines.append(f"  gtkwave: gtkwave {self.gtkw}")
        if not self.passed:
            lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)

    def check(self) -> None:
        """Raise ``AssertionError`` with the summary unless every test passed."""
        if not self.passed:
            raise AssertionError(self.summary())


def build_root() -> Path:
    """Where builds go: ``$CHIPKNIT_BUILD_DIR``, else ``./build``."""
    return Path(os.environ.get("CHIPKNIT_BUILD_DIR", "build")).resolve()


class _TopPortsVerilator(Verilator):
    """cocotb's Verilator runner with only the top level's ports visible to cocotb.

    cocotb's runner passes ``--public-flat-rw``, which keeps every signal of the design
    public: none can be inlined or optimised away, and each gets a symbol-table entry. The
    benches read and drive only their top level's ports (``Testbench.public_internals``
    says otherwise), so a control file makes those public instead."""

    def _build_command(self):
        commands = super()._build_command()
        verilate = commands[0]
        public = verilate.index("--public-flat-rw")
        control = Path(self.build_dir) / "top_ports.vlt"
        control.write_text("`verilator_config\n"
                           f'public_flat_rw -module "{self.hdl_toplevel}" -var "*"\n')
        verilate[public:public + 1] = [str(control)]
        return commands


def _runner(simulator: str, public_internals: bool):
    if simulator == "verilator" and not public_internals:
        return _TopPortsVerilator()
    return get_runner(simulator)


def _tool_fingerprint(simulator: str) -> str:
    parts = [cocotb.__version__]
    if simulator == "verilator":
        parts.append(str(verilator_root()))
    return "/".join(parts)


def cxx_make_variables(simulator: str, cxx_opt: str) -> dict[str, str]:
    """The ``make`` variables that give a Verilator model's run-time code ``cxx_opt``.

    Only a choice other than Verilator's own is passed on (its ``-Os`` for the run-time
    code, nothing for the start-up code in the ``*__Slow`` files, which stays unoptimised
    either way): ``-Os`` on those files once made a model's symbol table take many minutes
    to compile."""
    if simulator != "verilator" or cxx_opt == "-Os":
        return {}
    return {"OPT_FAST": cxx_opt, "OPT_GLOBAL": cxx_opt}


@contextmanager
def _make_variables(**variables):
    """Pass ``variables`` to the ``make`` the runner starts (through ``MAKEFLAGS``, whose
    variable assignments act as command-line overrides)."""
    before = os.environ.get("MAKEFLAGS")
    if variables:
        extra = " ".join(f"{name}={value}" for name, value in variables.items())
        os.environ["MAKEFLAGS"] = f"{before or ''} {extra}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = before


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_results(xml_path: Path) -> tuple[int, list[str]]:
    """(number of tests, names of failed tests) from a JUnit XML file."""
    if not xml_path.exists():
        return 0, []
    tree = ElementTree.parse(xml_path)
    tests, failed = 0, []
    for case in tree.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name", "?"))
    return tests, failed


def reproduce_command(bench: str, simulator: str, seed: int, params: Mapping,
                      defaults: Mapping, testcase: str | None) -> str:
    words = ["chipknit", "sim", bench, "--simulator", simulator, "--seed", str(seed), "--waves"]
    for key, value in params.items():
        if defaults.get(key) != value:
            words += ["--param", f"{key}={json.dumps(value)}"]
    if testcase:
        words += ["--testcase", testcase]
    return shlex.join(words)


def run(bench: Testbench, *, simulator: str = "icarus", seed: int | None = None,
        params: Mapping | None = None, waves: bool = False, testcase: str | None = None,
        rerun_failures_with_waves: bool = True, progress: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None) -> SimResult:
    """Build and run ``bench``; see the module documentation.

    Parameters
    ----------
    simulator : "icarus" or "verilator"
    seed : int, optional
        ``COCOTB_RANDOM_SEED``; random (and reported) when not given.
    params : mapping, optional
        Overrides of ``bench.params``.
    waves : bool
        Dump FST waves and write a ``.gtkw`` beside them.
    testcase : str, optional
        Run only the cocotb tests whose name matches this regular expression.
    env : mapping, optional
        Extra environment for the test process (e.g. where a benchmark writes its figures).
    """
    require_simulator(simulator)
    say = progress or (lambda message: None)
    unknown = set(params or {}) - set(bench.params)
    if unknown:
        raise ValueError(f"Unknown parameter(s) {', '.join(sorted(unknown))} for testbench "
                         f"{bench.name!r}; it takes {', '.join(bench.params) or 'none'}")
    merged = {**bench.params, **(params or {})}
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 31)

    component = bench.top(**merged)
    sv_text = to_sv(component, bench.name)
    make_variables = cxx_make_variables(simulator, os.environ.get(CXX_OPT_ENV) or bench.cxx_opt)
    key = hashlib.sha256("\0".join(
        [sv_text, simulator, str(waves), _tool_fingerprint(simulator),
         "public" if bench.public_internals else "ports"]
        + ([repr(sorted(make_variables.items()))] if make_variables else [])
    ).encode()).hexdigest()
    suffix = "-waves" if waves else ""
    build_dir = build_root() / "sim" / f"{bench.name}-{simulator}{suffix}-{key[:12]}"

    with _locked(build_dir.with_name(build_dir.name + ".lock")):
        build_dir.mkdir(parents=True, exist_ok=True)
        sv_path = build_dir / f"{bench.name}.sv"
        if not sv_path.exists() or sv_path.read_text() != sv_text:
            sv_path.write_text(sv_text)
        runner = _runner(simulator, bench.public_internals)
        build_args = []
        if simulator == "verilator":
            # Lint is a separate, strict step (chipknit.tb.lint); the simulation build must
            # not stop on the warnings it waives.
            build_args += ["-Wno-fatal", "-O2"]
            if waves:
                build_args += ["--trace-fst", "--trace-structs"]
        say(f"building {bench.name} for {simulator} in {build_dir}")
        with _make_variables(**make_variables):
            runner.build(sources=[sv_path], hdl_toplevel=bench.name, build_dir=build_dir,
                         build_args=build_args, timescale=TIMESCALE, waves=waves,
                         log_file=build_dir / "build.log")

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", testcase or "all")
    run_dir = build_dir / "runs" / f"seed{seed}-{label}-{worker}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results_xml = run_dir / "results.xml"
    log = run_dir / "sim.log"
    fst = run_dir / f"{bench.name}.fst"
    plusargs, test_args = [], []
    if waves and simulator == "icarus":
        plusargs.append(f"+dumpfile_path={fst}")
    if waves and simulator == "verilator":
        test_args += ["--trace-file", str(fst)]

    say(f"running {bench.module} (seed {seed})")
    try:
        runner.test(test_module=bench.module, hdl_toplevel=bench.name,
                    hdl_toplevel_lang="verilog", seed=seed, test_dir=run_dir,
                    build_dir=build_dir, results_xml=str(results_xml), waves=waves,
                    testcase=None, test_filter=testcase, plusargs=plusargs,
                    test_args=test_args, timescale=TIMESCALE, log_file=log,
                    extra_env={**(env or {}), PARAMS_ENV: json.dumps(merged)})
    except SystemExit:
        # The runner exits when a test fails under pytest; the XML says what happened.
        pass
    tests, failed = _read_results(results_xml)
    if tests == 0:
        # The simulator died before cocotb wrote a result: count that as one failed test.
        tests, failed = 1, ["<simulation produced no results>"]
    result = SimResult(
        bench=bench.name, simulator=simulator, seed=seed, params=merged, tests=tests,
        failures=len(failed), failed_tests=failed,
        results_xml=results_xml, log=log, build_dir=build_dir,
        reproduce=reproduce_command(bench.name, simulator, seed, merged, bench.params,
                                    testcase))
    if waves:
        result.waves = fst
        result.gtkw = write_gtkw(run_dir / f"{bench.name}.gtkw", fst, bench.name, simulator,
                                 port_names(component))
    elif not result.passed and rerun_failures_with_waves:
        say(f"run failed; rerunning seed {seed} with waves")
        rerun = run(bench, simulator=simulator, seed=seed, params=params, waves=True,
                    testcase=testcase, rerun_failures_with_waves=False, progress=progress,
                    env=env)
        result.waves, result.gtkw = rerun.waves, rerun.gtkw
    return result
