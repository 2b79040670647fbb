# amaranth: UnusedElaboratable=no
"""The NPU tile behind the network: cocotb through its register window, lint, parameters."""

import pytest

from chipknit.rtl.npu.commands import QueueParams
from chipknit.rtl.tiles.npu import NPU_REGISTERS, NpuTileParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run

BENCH = get_testbench("npu_tile")


def test_npu_tile(seed):
    run(BENCH, simulator="verilator", seed=seed).check()


def test_register_window_matches_the_docs():
    from chipknit.rtl.tiles import npu
    for index, register in enumerate(NPU_REGISTERS):
        assert f"0x{4 * index:02x}     ``{register.name}``" in npu.__doc__, register.name


@pytest.mark.parametrize("kwargs,message", [
    ({"queue": 1}, "Expected QueueParams"),
    ({"staging": 0}, "Staging must be a positive integer"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        NpuTileParams(**kwargs)


def test_window_needs_32_bit_beats():
    from chipknit.rtl.noc.flit import FlitFormat
    from chipknit.rtl.noc.transaction import TransactionParams
    wide = QueueParams(transaction=TransactionParams(flit=FlitFormat(data_width=64)))
    with pytest.raises(ValueError, match="needs 32-bit beats, not 64"):
        NpuTileParams(queue=wide)
