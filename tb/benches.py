"""Every testbench the project has, by name (what ``chipknit sim`` and the tests run)."""

from chipknit.rtl.credit import CreditParams
from chipknit.rtl.credit_loopback import CreditLoopback

from .harness import Testbench

__all__ = ["TESTBENCHES", "get_testbench"]


def credit_loopback(payload_width: int = 32, depth: int = 4, latency: int = 1):
    return CreditLoopback(CreditParams(payload_width=payload_width, depth=depth),
                          latency=latency)


TESTBENCHES = {bench.name: bench for bench in [
    Testbench(
        name="credit_loopback",
        top=credit_loopback,
        module="chipknit.tb.tests.credit_loopback",
        params={"payload_width": 32, "depth": 4, "latency": 1},
        description="credit sender + wire + receiver: order, rate, lost/spurious credits, resets",
    ),
    Testbench(
        name="credit_rate",
        top=credit_loopback,
        module="chipknit.tb.tests.credit_rate",
        params={"payload_width": 32, "depth": 4, "latency": 1},
        description="measures the credit channel's rate (used by `chipknit bench credit`)",
    ),
    Testbench(
        name="harness_probe",
        top=credit_loopback,
        module="chipknit.tb.tests.harness_probe",
        params={"payload_width": 16, "depth": 2, "latency": 1},
        description="checks the harness itself: seeds reproduce, failures keep their waves",
    ),
]}


def get_testbench(name: str) -> Testbench:
    try:
        return TESTBENCHES[name]
    except KeyError:
        raise KeyError(f"No testbench {name!r}; there are: {', '.join(TESTBENCHES)}") from None
