"""Every testbench the project has, by name (what ``chipknit sim`` and the tests run)."""

from dataclasses import replace

from chipknit.rtl.credit import CreditParams
from chipknit.rtl.credit_loopback import CreditLoopback
from chipknit.rtl.link.interposer import Interposer, InterposerParams
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.npu.array import ArrayParams
from chipknit.rtl.npu.engine import EngineParams, GemmEngine
from chipknit.rtl.npu.requant import Requantiser, RequantParams

from .harness import Testbench
from .tests.host_common import bridge_top as host_bridge_top
from .tests.host_common import uart_bridge_top as host_uart_bridge_top
from .tests.host_common import uart_pair_top as host_uart_pair_top
from .tests.noc_common import mesh_top as noc_mesh_top
from .tests.noc_common import router_top as noc_router_top
from .tests.noc_interface import ni_system_top as noc_interface_top
from .tests.noc_package import package_top as noc_package_top
from .tests.package_common import E2E_PARAMS as PACKAGE_E2E_PARAMS
from .tests.package_common import SPLIT_PARAMS as PACKAGE_SPLIT_PARAMS
from .tests.package_common import e2e_top as package_e2e_top
from .tests.package_common import split_top as package_split_top

__all__ = ["TESTBENCHES", "get_testbench", "QUICK_COMPILE"]

#: ``Testbench.cxx_opt`` of the large designs whose runs are short: their Verilator model
#: compiles about four times faster at -O0 and runs several times slower, a gain when the
#: compile is most of the test (noc_package: 426 s to compile, 3 s to run at -Os, tenth
#: session). The package benches run minutes of traffic and keep -Os.
QUICK_COMPILE = "-O0"


def register_slice(width: int = 36):
    from chipknit.rtl.register_slice import RegisterSlice
    return RegisterSlice(width)


def credit_loopback(payload_width: int = 32, depth: int = 4, latency: int = 1):
    return CreditLoopback(CreditParams(payload_width=payload_width, depth=depth),
                          latency=latency)


LINK_PAIR_PARAMS = {"flit_width": 64, "vcs": 2, "beat_width": 16, "frame_flits": 15,
                    "seq_bits": 3, "replay_frames": 4, "rx_credits": 48,
                    "replay_timeout": None, "counter_width": 32, "output_skid": True,
                    "replay_head_registers": True, "latency": 2}


def _link_top(top_class, params):
    from chipknit.rtl.link.frame import LinkParams
    merged = {**LINK_PAIR_PARAMS, **params}
    latency = merged.pop("latency")
    return top_class(LinkParams(**merged), latency=latency)


def link_pair(**params):
    """A :class:`LinkPair`; keyword parameters as in :data:`LINK_PAIR_PARAMS`."""
    from chipknit.rtl.link.pair import LinkPair
    return _link_top(LinkPair, params)


def link_soak(**params):
    """A :class:`LinkSoak`; keyword parameters as in :data:`LINK_PAIR_PARAMS`."""
    from chipknit.rtl.link.soak import LinkSoak
    return _link_top(LinkSoak, params)


LINK_TRAINING_PARAMS = {**{k: v for k, v in LINK_PAIR_PARAMS.items() if k != "latency"},
                        "lanes": 18, "bits_per_lane": 1, "deskew_range": 7,
                        "frame_cycles": 128, "test_frames": 4, "retrain_window": 2048,
                        "retrain_errors": 24, "train_timeout": 8192, "error_backoff": 1024,
                        "max_delay": 11}


def trained_link_pair(**params):
    """A :class:`TrainedLinkPair`; keyword parameters as in :data:`LINK_TRAINING_PARAMS`."""
    from chipknit.rtl.link.frame import LinkParams
    from chipknit.rtl.link.trained_pair import TrainedLinkPair
    from chipknit.rtl.link.training import TrainingParams
    p = {**LINK_TRAINING_PARAMS, **params}
    link = LinkParams(**{k: p[k] for k in LINK_PAIR_PARAMS if k != "latency"})
    training = TrainingParams(link, LaneParams(p["lanes"], p["bits_per_lane"]),
                              **{k: p[k] for k in ("deskew_range", "frame_cycles",
                                                   "test_frames", "retrain_window",
                                                   "retrain_errors", "train_timeout",
                                                   "error_backoff")})
    return TrainedLinkPair(training, max_delay=p["max_delay"])


def interposer(lanes: int = 16, bits_per_lane: int = 1, max_delay: int = 7,
               error_bits: int = 32, seed: int = 1, counter_width: int = 32):
    return Interposer(InterposerParams(LaneParams(lanes, bits_per_lane), max_delay=max_delay,
                                       error_bits=error_bits, seed=seed,
                                       counter_width=counter_width))


CROSS_LINK_PARAMS = {"data_width": 30, "vcs": 2, "depth": 4, "flit_width": 32,
                     "beat_width": 16, "frame_flits": 4, "seq_bits": 3, "replay_frames": 4,
                     "rx_credits": 8, "replay_timeout": 128, "latency": 2}


def cross_link(**params):
    """A :class:`CrossLinkPair`; keyword parameters as in :data:`CROSS_LINK_PARAMS`."""
    from chipknit.rtl.link.frame import LinkParams
    from chipknit.rtl.noc.cross_link import CrossLinkPair, CrossLinkParams
    from chipknit.rtl.noc.flit import FlitFormat
    p = {**CROSS_LINK_PARAMS, **params}
    link = LinkParams(**{k: p[k] for k in ("flit_width", "vcs", "beat_width", "frame_flits",
                                           "seq_bits", "replay_frames", "rx_credits",
                                           "replay_timeout")})
    return CrossLinkPair(CrossLinkParams(flit=FlitFormat(data_width=p["data_width"],
                                                         vcs=p["vcs"]),
                                         link=link, depth=p["depth"], latency=p["latency"]))


def npu_requant(lanes: int = 2):
    return Requantiser(RequantParams(lanes=lanes))


def npu_engine(rows: int = 4, cols: int = 4, mac: str = "infer", a_depth: int = 256,
               w_depth: int = 256, acc_depth: int = 64, qp_depth: int = 16, lanes: int = 2):
    return GemmEngine(EngineParams(array=ArrayParams(rows=rows, cols=cols, mac=mac),
                                   a_depth=a_depth, w_depth=w_depth, acc_depth=acc_depth,
                                   qp_depth=qp_depth, requant_lanes=lanes))


def npu_queue_params(depth: int = 8, in_flight: int = 8, outstanding: int = 8,
                     data_width: int = 32, length_bits: int = 8, tag_bits: int = 4, **engine):
    """:class:`QueueParams` of a queue (with its DMA) in front of :func:`npu_engine` (same
    engine parameters); ``data_width``, ``length_bits`` and ``tag_bits`` shape the DMA's
    port."""
    from chipknit.rtl.noc.flit import FlitFormat
    from chipknit.rtl.noc.transaction import TransactionParams
    from chipknit.rtl.npu.commands import QueueParams
    engine = {**NPU_ENGINE_PARAMS, **engine}
    array = ArrayParams(rows=engine["rows"], cols=engine["cols"], mac=engine["mac"])
    params = EngineParams(array=array, a_depth=engine["a_depth"], w_depth=engine["w_depth"],
                          acc_depth=engine["acc_depth"], qp_depth=engine["qp_depth"],
                          requant_lanes=engine["lanes"])
    transaction = TransactionParams(flit=FlitFormat(data_width=data_width),
                                    length_bits=length_bits, tag_bits=tag_bits)
    return QueueParams(params, depth=depth, in_flight=in_flight, transaction=transaction,
                       outstanding=outstanding)


def npu_commands(**params):
    """A :class:`CommandQueue`; parameters as :func:`npu_queue_params`."""
    from chipknit.rtl.npu.commands import CommandQueue
    return CommandQueue(npu_queue_params(**params))


NPU_ENGINE_PARAMS = {"rows": 4, "cols": 4, "mac": "infer", "a_depth": 256, "w_depth": 256,
                     "acc_depth": 64, "qp_depth": 16, "lanes": 2}


def link_end_loopback(lanes: int = 8, bits_per_lane: int = 2, idle_period: int = 256):
    from chipknit.rtl.link.end_selftest import LinkEndLoopback, LinkEndParams
    return LinkEndLoopback(LinkEndParams(lanes=LaneParams(lanes, bits_per_lane),
                                         idle_period=idle_period))


def npu_tile(staging: int = 4, status_depth: int = 8, **queue):
    """An :class:`NpuTile`; the queue's parameters as :func:`npu_queue_params`."""
    from chipknit.rtl.tiles.npu import NpuTile, NpuTileParams
    return NpuTile(NpuTileParams(npu_queue_params(**queue), staging=staging,
                                 status_depth=status_depth))


#: The register bank the tests use: status and control registers of several widths.
REGISTER_BANK_DEMO = (
    ("frames_sent", 32, "r", 0), ("crc_errors", 16, "r", 0), ("lane_map", 18, "rw", 0x3FFFF),
    ("state", 3, "r", 0), ("retrain_threshold", 12, "rw", 100), ("scratch", 32, "rw", 0),
    ("link_up", 1, "r", 0), ("enable", 1, "rw", 1),
)


def register_bank(addr_width: int = 16, length_bits: int = 3, tag_bits: int = 4):
    from chipknit.rtl.noc.transaction import TransactionParams
    from chipknit.rtl.registers import Access, Register, RegisterBank
    access = {"r": Access.READ, "rw": Access.READ_WRITE}
    return RegisterBank(
        TransactionParams(addr_width=addr_width, length_bits=length_bits, tag_bits=tag_bits),
        [Register(name, width, access[mode], reset) for name, width, mode, reset
         in REGISTER_BANK_DEMO])


TESTBENCHES = {bench.name: bench for bench in [
    Testbench(
        name="credit_loopback",
        top=credit_loopback,
        module="chipknit.tb.tests.credit_loopback",
        params={"payload_width": 32, "depth": 4, "latency": 1},
        description="credit sender + wire + receiver: order, rate, lost/spurious credits, resets",
    ),
    Testbench(
        name="register_slice",
        top=register_slice,
        module="chipknit.tb.tests.register_slice",
        params={"width": 36},
        description="stream register slice: order, full rate, stalls, reset mid-transfer",
    ),
    Testbench(
        name="credit_rate",
        top=credit_loopback,
        module="chipknit.tb.tests.credit_rate",
        params={"payload_width": 32, "depth": 4, "latency": 1},
        description="measures the credit channel's rate (used by `chipknit bench credit`)",
    ),
    Testbench(
        name="link_pair",
        top=link_pair,
        module="chipknit.tb.tests.link_pair",
        params=LINK_PAIR_PARAMS,
        description="two link adapters over a lossy channel: framing, CRC, replay, credits",
    ),
    Testbench(
        name="noc_router",
        top=noc_router_top,
        module="chipknit.tb.tests.noc_router",
        params={"columns": 3, "rows": 3, "x": 1, "y": 1, "depth": 4, "data_width": 32,
                "vcs": 2, "local_ports": 1, "wire_requests": True, "injection_register": False,
                "eject_depth": 0},
        description="one NoC router: random traffic, latency, rate, unroutable, framing",
    ),
    Testbench(
        name="noc_interface",
        top=noc_interface_top,
        module="chipknit.tb.tests.noc_interface",
        params={"data_width": 32, "addr_width": 32, "length_bits": 8, "tag_bits": 4,
                "words": 256, "timeout": 300, "depth": 4},
        description="NIs + memory tiles on a 2x2 mesh: random traffic vs model, errors, reset",
        cxx_opt=QUICK_COMPILE,
    ),
    Testbench(
        name="noc_mesh",
        top=noc_mesh_top,
        module="chipknit.tb.tests.noc_mesh",
        params={"columns": 3, "rows": 3, "depth": 4, "data_width": 32, "vcs": 2,
                "local_ports": 1, "credit_registers": False, "flit_registers": False,
                "injection_registers": False, "wire_requests": True},
        description="NoC mesh: uniform/transpose/hotspot, latency per hop, full rate, "
                    "unroutable, reset",
    ),
    Testbench(
        name="noc_package",
        top=noc_package_top,
        module="chipknit.tb.tests.noc_package",
        params={"package": "default", "link_latency": 2},
        description="package NoC (dies + stand-in die links): cross-die traffic, unroutable",
        cxx_opt=QUICK_COMPILE,
    ),
    Testbench(
        name="link_soak",
        top=link_soak,
        module="chipknit.tb.tests.link_soak",
        params=LINK_PAIR_PARAMS,
        description="link soak: hardware traffic checkers, saturating load, BER sweep",
    ),
    Testbench(
        name="link_training",
        top=trained_link_pair,
        module="chipknit.tb.tests.link_training",
        params=LINK_TRAINING_PARAMS,
        description="link training: deskew, lane repair, half width, retrain, end resets",
    ),
    Testbench(
        name="harness_probe",
        top=credit_loopback,
        module="chipknit.tb.tests.harness_probe",
        params={"payload_width": 16, "depth": 2, "latency": 1},
        description="checks the harness itself: seeds reproduce, failures keep their waves",
    ),
    Testbench(
        name="interposer",
        top=interposer,
        module="chipknit.tb.tests.interposer",
        params={"lanes": 16, "bits_per_lane": 1, "max_delay": 7, "error_bits": 32, "seed": 1,
                "counter_width": 32},
        description="link interposer model: delays, skew, BER, stuck-at, reversal vs its model",
    ),
    Testbench(
        name="npu_requant",
        top=npu_requant,
        module="chipknit.tb.tests.npu_requant",
        params={"lanes": 2},
        description="NPU requantiser bit-exact against the TFLite model: ties, extremes, clamps",
    ),
    Testbench(
        name="npu_engine",
        top=npu_engine,
        module="chipknit.tb.tests.npu_engine",
        params=NPU_ENGINE_PARAMS,
        description="NPU GEMM engine bit-exact against NumPy: shapes, zero points, K blocks",
    ),
    Testbench(
        name="npu_rate",
        top=npu_engine,
        module="chipknit.tb.tests.npu_rate",
        params=NPU_ENGINE_PARAMS,
        description="measures the NPU engine's MAC utilisation (used by `chipknit bench npu`)",
    ),
    Testbench(
        name="npu_commands",
        top=npu_commands,
        module="chipknit.tb.tests.npu_commands",
        params={**NPU_ENGINE_PARAMS, "depth": 8, "in_flight": 8},
        description="NPU command queue: programs vs NumPy, error status, FENCE, reset",
    ),
    Testbench(
        name="npu_dma",
        top=npu_commands,
        module="chipknit.tb.tests.npu_dma",
        params={**NPU_ENGINE_PARAMS, "a_depth": 64, "w_depth": 32, "acc_depth": 16,
                "qp_depth": 8, "depth": 8, "in_flight": 8, "outstanding": 8,
                "data_width": 32, "length_bits": 8, "tag_bits": 4},
        description="NPU tile with DMA: compiled GEMM/conv programs vs the model, memory "
                    "backpressure, DMA errors, reset",
    ),
    Testbench(
        name="npu_fabric",
        top=npu_commands,
        module="chipknit.tb.tests.npu_fabric",
        params={**NPU_ENGINE_PARAMS, "lanes": 1, "a_depth": 2048, "w_depth": 128,
                "acc_depth": 512, "qp_depth": 8, "depth": 8, "in_flight": 64,
                "outstanding": 8, "data_width": 32, "length_bits": 8, "tag_bits": 4},
        description="measures the NPU tile fed through its DMA at B bytes/cycle "
                    "(used by `chipknit bench npu`)",
    ),
    Testbench(
        name="register_bank",
        top=register_bank,
        module="chipknit.tb.tests.register_bank",
        params={"addr_width": 16, "length_bits": 3, "tag_bits": 4},
        description="register bank behind the transaction protocol: reads, writes, errors",
    ),
    Testbench(
        name="noc_cross_link",
        top=cross_link,
        module="chipknit.tb.tests.noc_cross_link",
        params=CROSS_LINK_PARAMS,
        description="two routers on two dies over bridges and a lossy link: VCs, reset, latency",
        cxx_opt=QUICK_COMPILE,
    ),
    Testbench(
        name="link_end",
        top=link_end_loopback,
        module="chipknit.tb.tests.link_end",
        params={"lanes": 8, "bits_per_lane": 2, "idle_period": 256},
        description="board link self-test with lanes looped back: ok/error LEDs tell the truth",
    ),
    Testbench(
        name="host_bridge",
        top=host_bridge_top,
        module="chipknit.tb.tests.host_bridge",
        params={"data_width": 32, "addr_width": 32, "length_bits": 8, "tag_bits": 4,
                "buffer_beats": 16, "frame_timeout": 64, "bus_timeout": 200,
                "counter_width": 16},
        description="host bridge byte protocol vs its model: random commands, damaged "
                    "frames, bus timeouts, the host API",
    ),
    Testbench(
        name="host_uart",
        top=host_uart_pair_top,
        module="chipknit.tb.tests.host_uart",
        params={"divisor": 16, "counter_width": 16},
        description="UART rx/tx bit level: baud error ±2 %, framing errors, overruns, glitches",
    ),
    Testbench(
        name="host_uart_bridge",
        top=host_uart_bridge_top,
        module="chipknit.tb.tests.host_uart_bridge",
        params={"divisor": 16, "buffer_beats": 16, "frame_timeout": 1000,
                "bus_timeout": 500, "counter_width": 16, "data_width": 32},
        description="the host API over the UART pins of UartHostBridge, memory behind it",
    ),
    Testbench(
        name="npu_tile",
        top=npu_tile,
        module="chipknit.tb.tests.npu_tile",
        params={**NPU_ENGINE_PARAMS, "a_depth": 64, "w_depth": 32, "acc_depth": 16,
                "qp_depth": 8, "depth": 8, "in_flight": 8, "outstanding": 8,
                "data_width": 32, "length_bits": 8, "tag_bits": 4, "staging": 4,
                "status_depth": 8},
        description="NPU tile through its register window and DMA: GEMMs, lost commands, "
                    "window errors",
    ),
    Testbench(
        name="package_e2e",
        top=package_e2e_top,
        module="chipknit.tb.tests.package_e2e",
        params=PACKAGE_E2E_PARAMS,
        description="the whole package through the host bridge: memory, errors, GEMMs on "
                    "die 1's NPUs over the die link, with and without bit errors",
    ),
    Testbench(
        name="package_split",
        top=package_split_top,
        module="chipknit.tb.tests.package_split",
        params=PACKAGE_SPLIT_PARAMS,
        description="a package split one die per chip (what --die N builds per board), the "
                    "dies' lanes through interposers: training through skew and dead lanes, "
                    "a die reset mid-transfer, bit errors, GEMMs across the trained link",
    ),
]}


#: Designs Icarus runs far too slowly (see docs/status.md): ``chipknit sim`` uses Verilator.
_VERILATOR_FIRST = {"link_pair", "link_soak", "link_training", "link_end", "noc_mesh",
                    "noc_package", "noc_cross_link", "noc_interface", "npu_commands", "npu_dma",
                    "npu_fabric", "npu_tile", "package_e2e", "package_split"}
TESTBENCHES = {name: replace(bench, simulator="verilator") if name in _VERILATOR_FIRST
               else bench for name, bench in TESTBENCHES.items()}


def get_testbench(name: str) -> Testbench:
    try:
        return TESTBENCHES[name]
    except KeyError:
        raise KeyError(f"No testbench {name!r}; there are: {', '.join(TESTBENCHES)}") from None
