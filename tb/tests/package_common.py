"""The package testbench top and what the tests need to know of it (no cocotb here).

:func:`e2e_top` elaborates a shipped package as a :class:`~chipknit.rtl.package.top.
PackageTop`, with the NPU tiles' parameters optionally shrunk (``npu``), so the default
regression builds in a tolerable time; :func:`e2e_package` gives the same package to a test
(the address map, the counter registers, the NPU limits), from the testbench parameters.
:func:`split_top` is the same package split one die per chip, the chips joined by
interposers (:class:`~chipknit.rtl.package.split.SplitPackage`): boards wired together.
"""

from chipknit.rtl.package.config import Package
from chipknit.rtl.package.split import SplitPackage
from chipknit.rtl.package.top import PackageTop, package_die_link

__all__ = ["E2E_PARAMS", "SPLIT_PARAMS", "e2e_package", "e2e_top", "split_top"]

#: Default testbench parameters: the default package, 4x4 NPUs with small scratchpads.
E2E_PARAMS = {
    "package": "default",
    "npu": {"rows": 4, "cols": 4, "a_depth": 64, "w_depth": 32, "acc_depth": 16,
            "qp_depth": 8},
    "host": {"frame_timeout": 2000, "bus_timeout": 100000, "buffer_beats": 64},
    "link_latency": 2,
    "timeout": 0,           # the package's (noc.response_timeout)
}


#: Default parameters of the split package: the minimal package (host on die 0, memory on
#: die 1), lanes with up to 3 cycles of delay.
SPLIT_PARAMS = {
    "package": "minimal",
    "npu": E2E_PARAMS["npu"],
    "host": E2E_PARAMS["host"],
    "max_delay": 3,
    "timeout": 0,
}


def e2e_package(package: str = "default", npu: dict | None = None,
                host: dict | None = None, **_ignored) -> Package:
    """Shipped package ``package`` with ``npu`` and ``host`` merged into those tiles'
    params (validated again); a package without such a tile takes none, so one parameter
    set serves every package."""
    result = Package.named(package)
    for kind, params in (("npu", npu), ("host_bridge", host)):
        if params and any(t.kind == kind for t in result.tiles):
            result = result.with_tile_params(kind, **params)
    return result


def e2e_top(package: str = "default", npu: dict | None = None, host: dict | None = None,
            link_latency: int = 2, timeout: int = 0) -> PackageTop:
    """The testbench top (parameters as :data:`E2E_PARAMS`; a ``timeout`` of 0 is the
    package's)."""
    return PackageTop(e2e_package(package, npu, host),
                      die_link=package_die_link(latency=link_latency), timeout=timeout or None)


def split_top(package: str = "minimal", npu: dict | None = None, host: dict | None = None,
              max_delay: int = 3, timeout: int = 0) -> SplitPackage:
    """The split-package testbench top (parameters as :data:`SPLIT_PARAMS`)."""
    return SplitPackage(e2e_package(package, npu, host), max_delay=max_delay,
                        timeout=timeout or None)
