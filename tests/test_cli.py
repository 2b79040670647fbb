"""The command line explains itself and is thin over the API."""

import subprocess
import sys

import pytest

from chipknit.cli import main, make_parser

COMMANDS = ["build", "sim", "lint", "bench"]


def _chipknit(*args):
    return subprocess.run([sys.executable, "-m", "chipknit", *args], capture_output=True,
                          text=True)


def test_help_lists_every_command():
    completed = _chipknit("--help")
    assert completed.returncode == 0
    for command in COMMANDS:
        assert command in completed.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    completed = _chipknit(command, "--help")
    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) > 5


def test_sim_list(capsys):
    assert main(["sim", "--list"]) == 0
    out = capsys.readouterr().out
    assert "credit_loopback" in out and "params: payload_width=32 depth=4 latency=1" in out


def test_sim_unknown_testbench(capsys):
    assert main(["sim", "nonesuch"]) == 2
    assert "No testbench 'nonesuch'" in capsys.readouterr().err


def test_sim_bad_param_is_refused(capsys):
    assert main(["sim", "credit_loopback", "--param", "nonesuch=1"]) == 2
    assert "Unknown parameter(s) nonesuch" in capsys.readouterr().err


def test_param_values_are_json():
    args = make_parser().parse_args(["sim", "x", "--param", "depth=8", "--param", "name=abc"])
    assert dict(args.param) == {"depth": 8, "name": "abc"}


def test_lint_command(capsys):
    assert main(["lint", "credit_sender", "credit_receiver"]) == 0
    assert "lint credit_sender: clean" in capsys.readouterr().out


def test_bench_credit_quick(tmp_path):
    out = tmp_path / "credit.json"
    assert main(["bench", "credit", "--quick", "--json", str(out), "--plot",
                 str(tmp_path / "credit.png")]) == 0
    import json
    figures = json.loads(out.read_text())
    assert figures["max_model_error"] < 0.01
    assert (tmp_path / "credit.png").stat().st_size > 0
