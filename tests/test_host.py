# amaranth: UnusedElaboratable=no
"""The host bridge: cocotb runs of the bridge, the UART and the UART bridge, and unit checks
of the host library, the protocol model and the parameters."""

import random

import pytest
from amaranth.lib.crc import catalog

from chipknit.host import (
    Host,
    LoopbackTransport,
    NakError,
    ResponseTimeout,
    SerialTransport,
    TransactionError,
    protocol,
    run,
)
from chipknit.host.scripts import memory_test
from chipknit.rtl.host import bridge as rtl_bridge
from chipknit.rtl.host.bridge import HostBridgeParams
from chipknit.rtl.host.top import UartHostBridge
from chipknit.rtl.host.uart import UartParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run as run_bench
from chipknit.tb.models.host import (
    TARGET_ERROR,
    BridgeModel,
    MemoryModel,
    Region,
    model_crc8,
)

BRIDGE = get_testbench("host_bridge")
UART = get_testbench("host_uart")
UART_BRIDGE = get_testbench("host_uart_bridge")


# ---- cocotb ---------------------------------------------------------------------------------

def test_bridge(seed):
    result = run_bench(BRIDGE, simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 4


@pytest.mark.slow
@pytest.mark.parametrize("params", [
    {"data_width": 64, "addr_width": 24, "length_bits": 5, "buffer_beats": 8},
    {"data_width": 32, "addr_width": 16, "length_bits": 8, "tag_bits": 2,
     "buffer_beats": 128, "bus_timeout": 100},
], ids=["w64-a24-l5", "w32-a16-t2-b128"])
def test_bridge_shapes(params, seed):
    result = run_bench(BRIDGE, simulator="verilator", params=params, seed=seed)
    result.check()


def test_uart(seed):
    result = run_bench(UART, simulator="verilator", seed=seed)
    result.check()
    assert result.tests == 4


def test_uart_bridge(seed):
    result = run_bench(UART_BRIDGE, simulator="verilator", seed=seed)
    result.check()


# ---- protocol, model and host library --------------------------------------------------------

def test_crc_matches_amaranth():
    rng = random.Random(1)
    for length in range(40):
        data = bytes(rng.getrandbits(8) for _ in range(length))
        want = catalog.CRC8_AUTOSAR(data_width=8).compute(data)
        assert protocol.crc8(data) == want
        assert model_crc8(data) == want


def test_host_constants_match_rtl():
    for name in ("SYNC", "OP_READ", "OP_WRITE", "OP_WRITE_MASKED", "OP_COUNTERS", "OP_NAK",
                 "NAK_BAD_CRC", "NAK_BAD_OP", "NAK_BAD_LENGTH", "NAK_BAD_ADDRESS",
                 "STATUS_BUS_TIMEOUT"):
        assert getattr(protocol, name) == getattr(rtl_bridge, name), name
    assert protocol.COUNTERS == rtl_bridge.COUNTERS
    assert rtl_bridge.CRC == catalog.CRC8_AUTOSAR


def _model(**kwargs):
    memory = MemoryModel(size=4096, regions=(Region(0x2000, 0x100, TARGET_ERROR),))
    return BridgeModel(memory=memory, buffer_beats=16, **kwargs)


def test_host_against_model():
    model = _model()
    host = Host(LoopbackTransport(model), max_write_beats=16, timeout=0.01)
    words = [random.getrandbits(32) for _ in range(100)]
    host.write(0x100, words)                       # seven frames of at most 16 beats
    assert host.read(0x100, 100) == words
    host.write(0x104, [0xAABBCCDD], strobes=[0b0101])
    assert host.read(0x104, 1) == [(words[1] & 0xFF00FF00) | 0x00BB00DD]
    with pytest.raises(TransactionError) as info:
        host.read(0x2000, 4)
    assert info.value.status == protocol.STATUS_TARGET_ERROR
    assert info.value.status_name == "TARGET_ERROR"
    counters = host.read_counters()
    # 7 write frames, a read, a masked write, a read, the failed read, the counter read.
    assert counters["commands"] == model.counters["commands"] == 12
    assert counters["naks"] == 0


def test_host_refuses_unaligned_and_oversized():
    host = Host(LoopbackTransport(_model()))
    with pytest.raises(ValueError, match="not aligned"):
        host.read(0x102, 1)
    with pytest.raises(ValueError, match="32-bit address space"):
        host.read(0xFFFFFFFC, 2)
    with pytest.raises(ValueError, match="does not fit"):
        host.write(0, [1 << 32])


def test_nak_is_retried_then_raised():
    model = _model()
    host = Host(LoopbackTransport(model), max_write_beats=17, retries=2, timeout=0.01)
    with pytest.raises(NakError) as info:
        host.write(0, [0] * 17)
    assert info.value.status_name == "BAD_LENGTH"
    assert model.counters["naks"] == 3 and host.stats["retries"] == 2


def test_damaged_frames_are_retried():
    model = _model()
    rng = random.Random(3)
    sent = [0]

    def flaky(data: bytes) -> bytes:
        sent[0] += 1
        if sent[0] % 3 == 0:                         # every third frame: one bit flipped
            damaged = bytearray(data)
            damaged[rng.randrange(1, len(data))] ^= 1 << rng.randrange(8)
            return model(bytes(damaged))
        return model(data)
    flaky.gap = model.gap
    host = Host(LoopbackTransport(flaky), max_write_beats=16, timeout=0.005, resync=0,
                retries=5, retry_writes=True)
    words = [rng.getrandbits(32) for _ in range(64)]
    host.write(0, words)
    assert host.read(0, 64) == words
    assert host.stats["retries"] > 0
    assert model.counters["crc_errors"] + model.counters["frame_timeouts"] > 0


def test_silent_device_times_out():
    host = Host(LoopbackTransport(lambda data: b""), timeout=0.01, retries=1, resync=0)
    with pytest.raises(ResponseTimeout, match="2 attempts"):
        host.read(0, 1)
    with pytest.raises(ResponseTimeout, match="1 attempts"):
        host.write(0, [1])                           # a write is not retried by default


def test_response_parser_resyncs():
    parser = protocol.ResponseParser()
    model = _model()
    good = model.feed(protocol.encode_command(protocol.OP_READ, 7, 0, length=1))
    damaged = bytearray(good)
    damaged[5] ^= 0x10
    responses = parser.feed(b"\x00\xa5\x13" + bytes(damaged) + good[:3])
    responses += parser.feed(good[3:])
    assert [r.tag for r in responses] == [7]
    assert parser.bad_frames >= 1 and parser.garbage > 0


def test_same_script_on_a_blocking_transport():
    """The async script the cocotb tests await, run the way a board runs it."""
    model = _model()
    result = run(lambda host: memory_test(host, base=0x200, n_words=100, seed=5),
                 LoopbackTransport(model), max_write_beats=16, timeout=0.01)
    assert result["errors"] == 0 and result["commands"] > 5
    assert model.counters["naks"] == 0


def test_serial_transport_loopback():
    """pyserial's loop:// port: bytes come back; the host sees its own command, not a
    response, and times out instead of hanging."""
    with SerialTransport("loop://", 115200) as transport:
        transport.write(b"\x01\x02\xa5")
        assert transport.read(0.5) == b"\x01\x02\xa5"
        host = Host(transport, timeout=0.05, retries=0)
        with pytest.raises(ResponseTimeout):
            host.read(0, 1)
        assert host.parser.bad_frames + host.parser.garbage > 0


# ---- synthesis ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("board,clock", [("ulx3s", 25e6), ("icebreaker", 12e6)])
def test_uart_host_bridge_builds(board, clock, tmp_path):
    """The board configuration (115200 baud) places, routes and meets the board clock."""
    from chipknit.platforms.build import build
    from chipknit.platforms.isolate import IsolatedComponent
    top = IsolatedComponent(UartHostBridge(HostBridgeParams(),
                                           UartParams.from_baud(clock, 115200)))
    report = build(board, top=top, build_dir=tmp_path, name="host", progress=None).report
    assert report["fmax_mhz"]["sync"] >= clock / 1e6, report["fmax_mhz"]


# ---- parameters -----------------------------------------------------------------------------

def test_uart_params():
    assert UartParams.from_baud(25e6, 115200).divisor == 217
    assert UartParams.from_baud(12e6, 115200).divisor == 104
    with pytest.raises(ValueError, match="at most 1 % is allowed"):
        UartParams.from_baud(12e6, 3e6 * 0.9)
    with pytest.raises(ValueError, match="Divisor must be an integer of at least 4"):
        UartParams(divisor=3)


def test_bridge_params():
    with pytest.raises(ValueError, match="Buffer beats must be at most 256"):
        HostBridgeParams(buffer_beats=300)
    with pytest.raises(ValueError, match="Counter width must be at most 32"):
        HostBridgeParams(counter_width=33)
    with pytest.raises(TypeError, match="must be a TransactionParams"):
        HostBridgeParams(transaction=None)
    with pytest.raises(ValueError, match="shorter than two UART bytes"):
        UartHostBridge(HostBridgeParams(frame_timeout=100), UartParams(divisor=217))


@pytest.mark.parametrize("argv, want", [
    # The package's host bridge decides; the default package's is 32-bit with 64-beat writes.
    ([], {"beat_bytes": 4, "max_read_beats": 256, "max_write_beats": 64, "baud": 115200}),
    # The icebreaker package: 16-bit beats, bursts of 16, a 16-beat buffer.
    (["--package", "icebreaker"],
     {"beat_bytes": 2, "max_read_beats": 16, "max_write_beats": 16, "baud": 115200}),
    # Explicit sizes win.
    (["--package", "icebreaker", "--beat-bytes", "4", "--max-write-beats", "8",
      "--baud", "9600"],
     {"beat_bytes": 4, "max_read_beats": 16, "max_write_beats": 8, "baud": 9600}),
])
def test_host_cli_takes_its_sizes_from_the_package(argv, want):
    """``python -m chipknit.host --package NAME``: a board built from the icebreaker
    package is spoken to with its 2-byte beats, not the default package's 4."""
    from chipknit.host.__main__ import connection, make_parser
    args = make_parser().parse_args(["--port", "loop://", *argv, "counters"])
    top, baud, options = connection(args)
    got = {name: options[name] for name in ("beat_bytes", "max_read_beats",
                                            "max_write_beats")}
    assert {**got, "baud": baud} == want
    assert options["counter_map"] == top.counter_map()
    # ``gemm --package`` (where it used to be) still picks the package.
    args = make_parser().parse_args(["--port", "loop://", "gemm", "--package", "icebreaker"])
    assert connection(args)[2]["beat_bytes"] == 2
