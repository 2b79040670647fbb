# amaranth: UnusedElaboratable=no

"""The register bank: cocotb against its model, elaboration checks, lint."""

import pytest

from chipknit.rtl.noc.transaction import TransactionParams
from chipknit.rtl.registers import Access, Register, RegisterBank
from chipknit.tb.benches import get_testbench, register_bank
from chipknit.tb.harness import run

BENCH = get_testbench("register_bank")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_register_bank(simulator, seed):
    run(BENCH, simulator=simulator, seed=seed).check()



def test_register_map_lists_addresses():
    bank = register_bank()
    assert bank.address("crc_errors") == 4
    assert "| 0x0008 | `lane_map` | 18 | rw |" in bank.register_map()
    with pytest.raises(KeyError, match="No register 'missing'"):
        bank.address("missing")


@pytest.mark.parametrize("registers,message", [
    ([], "at least one register"),
    ([Register("a", 8), Register("a", 8)], "'a' is used twice"),
    ([Register("wide", 33)], "wider than a 32-bit beat"),
    (["a"], "Expected a Register"),
])
def test_register_bank_refuses(registers, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RegisterBank(TransactionParams(), registers)


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "Bad-Name", "width": 8}, "lower-case identifier"),
    ({"name": "a", "width": 0}, "positive integer"),
    ({"name": "a", "width": 4, "reset": 16}, "does not fit 4 bits"),
    ({"name": "a", "width": 4, "access": "rw"}, "must be an Access"),
])
def test_register_refuses(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Register(**kwargs)


def test_register_bank_needs_address_room():
    with pytest.raises(ValueError, match="do not fit 3 address bits"):
        RegisterBank(TransactionParams(addr_width=3),
                     [Register(f"r{i}", 8, Access.READ) for i in range(3)])
