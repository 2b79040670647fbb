"""Every RTL top the project converts, by name: what lint and the conversion tests cover."""

from chipknit.rtl.credit import CreditParams, CreditReceiver, CreditSender
from chipknit.rtl.prbs import PrbsChecker, PrbsGenerator
from chipknit.rtl.selftest import CreditSelfTest
from chipknit.tb.benches import TESTBENCHES

__all__ = ["TOPS"]

TOPS = {
    "credit_sender": lambda: CreditSender(CreditParams()),
    "credit_receiver": lambda: CreditReceiver(CreditParams()),
    "prbs_generator": PrbsGenerator,
    "prbs_checker": PrbsChecker,
    "credit_selftest": CreditSelfTest,
    **{name: bench.top for name, bench in TESTBENCHES.items()},
}
