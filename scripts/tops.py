"""Every RTL top the project converts, by name: what lint and the conversion tests cover."""

from chipknit.rtl.credit import CreditParams, CreditReceiver, CreditSender
from chipknit.rtl.link.interposer import Interposer, InterposerParams
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.npu.array import ArrayParams, SystolicArray
from chipknit.rtl.prbs import PrbsChecker, PrbsGenerator
from chipknit.rtl.selftest import CreditSelfTest
from chipknit.tb.benches import TESTBENCHES, npu_commands
from chipknit.tb.tests.noc_common import router_top as noc_router_top

__all__ = ["TOPS"]

TOPS = {
    "credit_sender": lambda: CreditSender(CreditParams()),
    "credit_receiver": lambda: CreditReceiver(CreditParams()),
    "prbs_generator": PrbsGenerator,
    "prbs_checker": PrbsChecker,
    "credit_selftest": CreditSelfTest,
    # The default interposer is linted as the `interposer` testbench; this is the DDR shape.
    "link_interposer_ddr": lambda: Interposer(InterposerParams(LaneParams(16, 2))),
    "npu_array": lambda: SystolicArray(ArrayParams(rows=4, cols=3)),
    "npu_array_lut": lambda: SystolicArray(ArrayParams(rows=3, cols=2, mac="lut")),
    # The NoC testbench tops (a 3x3 centre router, a 3x3 mesh) are linted below; this is a
    # corner router with two local ports and three VCs.
    "noc_router_corner": lambda: noc_router_top(columns=2, rows=2, x=1, y=0, local_ports=2,
                                                vcs=3),
    # The `npu_commands` testbench top is linted below; this is a 3x5 queue, one lane.
    "npu_commands_3x5": lambda: npu_commands(rows=3, cols=5, lanes=1, depth=3, in_flight=3),
    **{name: bench.top for name, bench in TESTBENCHES.items()},
}
