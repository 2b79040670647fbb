"""Every RTL top converts to SystemVerilog and lints clean under `verilator -Wall`."""

import pytest

from chipknit.tb.lint import WAIVERS, lint, lint_sv
from chipknit.tops import TOPS

# The whole-package tops take ~30-55 s each to lint: started first (tests/conftest.py).
HEAVY_TOPS = {"package_e2e": 55, "package_split": 30, "noc_package": 32, "noc_mesh": 29}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.heavy(HEAVY_TOPS[name])) if name in HEAVY_TOPS else name
    for name in sorted(TOPS)])
def test_top_lints_clean(name):
    result = lint(TOPS[name](), name)
    assert result.clean, str(result)


def test_link_bridge_alone_lints_clean():
    """The bridge inside `noc_cross_link` maps 30-bit data exactly; this one pads 32-bit data
    into 48-bit link flits and routes for a 4x4 mesh."""
    from chipknit.rtl.link.frame import LinkParams
    from chipknit.rtl.noc.flit import FlitFormat
    from chipknit.rtl.noc.link_bridge import LinkBridge, LinkBridgeParams
    from chipknit.rtl.noc.route import MeshGeometry, RouteComputer
    fmt = FlitFormat()
    params = LinkBridgeParams(flit=fmt, link=LinkParams(flit_width=48))
    bridge = LinkBridge(params, lambda: RouteComputer(fmt, MeshGeometry(4, 4), 3, 1))
    result = lint(bridge, "noc_link_bridge")
    assert result.clean, str(result)


def test_uart_host_bridge_board_config_lints_clean():
    """The host bridge as the boards build it (the testbench tops use small divisors)."""
    from chipknit.rtl.host.top import UartHostBridge
    result = lint(UartHostBridge(), "uart_host_bridge")
    assert result.clean, str(result)


def test_bridged_die_link_lints_clean():
    """The package's die link made of two bridges, two link adapters and lanes."""
    from chipknit.rtl.noc.cross_link import BridgedDieLink
    from chipknit.rtl.package.config import Package
    result = lint(BridgedDieLink(Package.named("default"), 0), "noc_bridged_die_link")
    assert result.clean, str(result)


def test_small_package_lints_clean():
    """The ``icebreaker`` package: 16-bit flits and addresses, 18-bit beats, no port slices
    (the ``package_e2e`` top lints the default)."""
    from chipknit.rtl.package.config import Package
    from chipknit.rtl.package.top import PackageTop
    result = lint(PackageTop(Package.named("icebreaker")), "package_icebreaker")
    assert result.clean, str(result)


def test_lint_still_finds_what_is_not_waived():
    bad = "module bad(input a, output y); wire x; assign y = a & x; endmodule\n"
    result = lint_sv(bad, "bad")
    assert not result.clean
    assert any("UNDRIVEN" in message for message in result.messages), result.messages


def test_waivers_are_by_rule_and_explained():
    lines = WAIVERS.read_text().splitlines()
    waivers = [line for line in lines if line.startswith("lint_off")]
    assert waivers, "no waivers found"
    for line in waivers:
        assert line.split()[1] == "-rule" and "-lines" not in line, f"not a rule waiver: {line}"
        # The reason is the comment block above it (waivers of one cause may share one).
        above = lines[:lines.index(line)]
        while above and above[-1].startswith("lint_off"):
            above.pop()
        assert above and above[-1].startswith("//"), f"waiver without a reason: {line}"
