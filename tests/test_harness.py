"""The simulation harness: caching, seeds, waves, failure reports — on both simulators."""

import re
import shlex
import shutil
import subprocess

import pytest

from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.tests.harness_probe import FAIL_ENV

PROBE = get_testbench("harness_probe")
SIMULATORS = ["icarus", "verilator"]


def _digest(result) -> str:
    match = re.search(r"probe digest ([0-9a-f]{8})", result.log.read_text())
    assert match, f"no digest in {result.log}"
    return match.group(1)


def _fst_signals(fst) -> set[str]:
    """Hierarchical names in an FST file, read with GTKWave's fst2vcd."""
    vcd = subprocess.run(["fst2vcd", str(fst)], capture_output=True, text=True,
                         check=True).stdout
    scope, names = [], set()
    for line in vcd.splitlines():
        words = line.split()
        if words[:1] == ["$scope"]:
            scope.append(words[2])
        elif words[:1] == ["$upscope"]:
            scope.pop()
        elif words[:1] == ["$var"]:
            names.add(".".join([*scope, words[4]]))
    return names


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_same_seed_same_run_and_build_is_cached(simulator):
    first = run(PROBE, simulator=simulator, seed=1234)
    first.check()
    binary = next(p for p in first.build_dir.iterdir()
                  if p.name in ("sim.vvp", "harness_probe"))
    built_at = binary.stat().st_mtime_ns
    second = run(PROBE, simulator=simulator, seed=1234)
    second.check()
    assert second.build_dir == first.build_dir
    assert binary.stat().st_mtime_ns == built_at, "an unchanged design was rebuilt"
    assert _digest(first) == _digest(second)
    other = run(PROBE, simulator=simulator, seed=4321)
    assert _digest(other) != _digest(first)


def test_parameters_key_the_build():
    a = run(PROBE, simulator="icarus", seed=5)
    b = run(PROBE, simulator="icarus", seed=5, params={"depth": 3})
    a.check()
    b.check()
    assert a.build_dir != b.build_dir


def test_verilator_cxx_opt_keys_the_build_and_reaches_the_compiler(monkeypatch):
    """A bench's ``cxx_opt`` is the C++ optimisation of its Verilator model: it keys the
    build, reaches every compile command, and MAKEFLAGS is as it was afterwards."""
    import dataclasses
    import os

    from chipknit.tb.harness import CXX_OPT_ENV, cxx_make_variables
    monkeypatch.delenv(CXX_OPT_ENV, raising=False)
    default = run(PROBE, simulator="verilator", seed=5)
    before = os.environ.get("MAKEFLAGS")     # as the harness's environment set-up left it
    quick_bench = dataclasses.replace(PROBE, cxx_opt="-O0")
    shutil.rmtree(run(quick_bench, simulator="verilator", seed=5).build_dir)
    quick = run(quick_bench, simulator="verilator", seed=5)     # built afresh: its log says how
    default.check()
    quick.check()
    assert default.build_dir != quick.build_dir
    assert _digest(default) == _digest(quick)
    assert os.environ.get("MAKEFLAGS") == before
    log = (quick.build_dir / "build.log").read_text()
    compiles = [line for line in log.splitlines() if " -c " in line]
    assert any(" -O0 " in line for line in compiles)
    assert not any(" -Os " in line for line in compiles)
    assert cxx_make_variables("verilator", "-O0") == {"OPT_FAST": "-O0", "OPT_GLOBAL": "-O0"}
    # The default, and Icarus, leave the flags alone (the start-up code stays unoptimised).
    assert cxx_make_variables("verilator", "-Os") == {}
    assert cxx_make_variables("icarus", "-O0") == {}


def _vpi_scopes(build_dir) -> set[str]:
    """The design scopes a Verilator model makes visible to cocotb (its symbol table)."""
    text = "".join(p.read_text() for p in build_dir.glob("Vtop__Syms*.cpp"))
    return set(re.findall(r'new VerilatedScope\{this, "([^"]+)"', text)) - {"TOP"}


def test_verilator_makes_only_the_top_ports_public():
    """cocotb's ``--public-flat-rw`` is replaced by a control file naming the top level's
    ports (the models compile several times faster): a bench sees no submodule unless it
    says ``public_internals``, and the run is the same either way."""
    import dataclasses
    ports = run(PROBE, simulator="verilator", seed=5)
    everything = run(dataclasses.replace(PROBE, public_internals=True), simulator="verilator",
                     seed=5)
    ports.check()
    everything.check()
    assert _digest(ports) == _digest(everything)
    assert ports.build_dir != everything.build_dir
    assert _vpi_scopes(ports.build_dir) == {"harness_probe"}
    assert "harness_probe.dropped" in _vpi_scopes(everything.build_dir)
    assert 'public_flat_rw -module "harness_probe"' in \
        (ports.build_dir / "top_ports.vlt").read_text()
    assert not (everything.build_dir / "top_ports.vlt").exists()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_waves_and_gtkw_groups(simulator):
    result = run(PROBE, simulator=simulator, seed=7, waves=True)
    result.check()
    assert result.waves.exists() and result.waves.stat().st_size > 0
    gtkw = result.gtkw.read_text()
    assert f'[dumpfile] "{result.waves}"' in gtkw
    groups = re.findall(r"^-(\w+)$", gtkw, re.MULTILINE)
    assert groups[:2] == ["i", "i"] and "o" in groups and "status" in groups
    traced = [line.split("[")[0] for line in gtkw.splitlines() if line.startswith("harness_probe.")]
    ports = ["clk", "rst", "i__valid", "i__ready", "i__payload", "o__valid", "o__ready",
             "o__payload", "drop_credit", "dropped_credits", "extra_credit", "sender_reset",
             "receiver_reset", "credits", "level", "credit_overflows", "overruns"]
    assert {f"harness_probe.{name}" for name in ports} == set(traced)
    assert set(traced) <= _fst_signals(result.waves), "the save file names signals not in the FST"


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_failing_test_keeps_waves_seed_and_reproduce_command(simulator, monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "1")
    result = run(PROBE, simulator=simulator, seed=99)
    assert not result.passed
    assert result.failed_tests == ["probe"]
    assert result.waves is not None and result.waves.exists(), "failure left no waves"
    assert result.gtkw.exists()
    summary = result.summary()
    assert "seed 99" in summary and result.reproduce in summary
    assert "Test failed with COCOTB_RANDOM_SEED=99" in result.results_xml.read_text()
    words = shlex.split(result.reproduce)
    assert words[:3] == ["chipknit", "sim", "harness_probe"]
    assert words[words.index("--seed") + 1] == "99"
    assert words[words.index("--simulator") + 1] == simulator
    with pytest.raises(AssertionError, match="reproduce: chipknit sim harness_probe"):
        result.check()


def test_reproduce_command_runs():
    """The printed command, run as printed, reproduces the run (through the real CLI)."""
    result = run(PROBE, simulator="icarus", seed=31, params={"depth": 3})
    words = shlex.split(result.reproduce)
    assert words[words.index("--param") + 1] == "depth=3"
    assert shutil.which(words[0]), "the chipknit command is not installed"
    completed = subprocess.run(words, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "PASS harness_probe on icarus: 1/1 tests passed, seed 31" in completed.stdout
    assert ".gtkw" in completed.stdout
    reproduced = re.search(r"log: +(\S+)", completed.stdout).group(1)
    assert f"probe digest {_digest(result)}" in open(reproduced).read()


def test_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="Unknown parameter.*depthh.*it takes payload_width"):
        run(PROBE, params={"depthh": 2})


def test_unknown_simulator_is_refused():
    with pytest.raises(ValueError, match="Simulator must be one of icarus, verilator"):
        run(PROBE, simulator="xsim")
