# amaranth: UnusedElaboratable=no
"""The whole package end to end (cocotb, Verilator), its address map and counters, and the
config extensions it needs (two-port NPU tiles, counters banks)."""

import dataclasses

import pytest

from chipknit.rtl.package.config import Package
from chipknit.rtl.package.top import (
    COUNTERS_BASE,
    NPU_BASE,
    WINDOW_SIZE,
    PackageDieLink,
    PackageTop,
    address_map,
    die_link_params,
)
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.tests.package_e2e import SOAK_ENV

BENCH = get_testbench("package_e2e")
DEFAULT_TESTS = "memory_and_errors|gemm_over_the_link|gemm_with_link_errors"


# A cold Verilator build of the package is ~8.5 min here (docs/package.md, *Measured*).
@pytest.mark.heavy(200)
@pytest.mark.timeout(3600)
def test_package_e2e(seed):
    run(BENCH, simulator="verilator", seed=seed, testcase=DEFAULT_TESTS).check()


@pytest.mark.heavy(60)
@pytest.mark.timeout(1800)
def test_package_e2e_icebreaker(seed):
    """The small package (16-bit flits and beats, 16-bit addresses, its memory on the far
    die): the host's memory traffic across the link, also with bit errors."""
    run(BENCH, simulator="verilator", seed=seed, testcase="memory_over_the_link",
        params={"package": "icebreaker",
                "host": {"frame_timeout": 2000, "bus_timeout": 100000, "buffer_beats": 16}}
        ).check()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_package_e2e_soak(seed):
    """Host traffic, link errors and NPU jobs at once, on the default package."""
    run(BENCH, simulator="verilator", seed=seed, testcase="soak",
        env={SOAK_ENV: "1"}).check()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_package_e2e_full_size_npus(seed):
    """The default package exactly as shipped (4x4 NPUs, full scratchpads)."""
    run(BENCH, simulator="verilator", seed=seed, params={"npu": {}},
        testcase="gemm_over_the_link").check()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_package_e2e_four_die(seed):
    """The four-die ring: memory and errors, then GEMMs on all three NPU dies (one of them
    two die links away from the memory)."""
    run(BENCH, simulator="verilator", seed=seed, params={"package": "four_die"},
        testcase="memory_and_errors|gemm_over_the_link").check()


# ---- the address map and the counters banks ------------------------------------------------

def test_default_address_map():
    entries = {e.name: e for e in address_map(Package.named("default"))}
    assert (entries["memory"].base, entries["memory"].size) == (0, 4096 * 4)
    assert entries["npu0"].base == NPU_BASE and entries["npu1"].base == NPU_BASE + WINDOW_SIZE
    assert entries["counters0"].base == COUNTERS_BASE
    assert entries["counters1"].base == COUNTERS_BASE + WINDOW_SIZE
    assert (entries["npu1"].node.die, entries["npu1"].node.x, entries["npu1"].node.port) == \
        (1, 1, 0)


def test_memories_are_placed_at_a_power_of_two_stride():
    base = Package.named("default")
    extra = dataclasses.replace(base.tiles[1], name="memory2", x=0, y=0, params={"words": 100})
    tiles = [t for t in base.tiles if t.name != "counters0"] + [extra]
    entries = [e for e in address_map(dataclasses.replace(base, tiles=tuple(tiles)))
               if e.kind == "memory"]
    assert [(e.base, e.size) for e in entries] == [(0, 16384), (16384, 400)]


def test_counter_registers_name_every_counter():
    top = PackageTop(Package.named("default"))
    die0 = [r.name for r in top.registers(0)]
    die1 = [r.name for r in top.registers(1)]
    assert die0[0] == die1[0] == "cycles"
    for name in ("link0_rx_crc_errors", "link0_tx_replayed_frames", "link0_bit_errors",
                 "router11_unroutable", "host_ni_timeouts", "memory_errors",
                 "link0_vc1_truncated"):
        assert name in die0, name
    for name in ("npu0_window_errors", "npu1_ni_decode_errors", "npu1_ti_malformed",
                 "link0_rx_crc_errors"):
        assert name in die1, name
    counter_map = top.counter_map()
    assert counter_map["die1.cycles"] == COUNTERS_BASE + WINDOW_SIZE
    assert counter_map["die0.link0_rx_crc_errors"] == COUNTERS_BASE + 4 * die0.index(
        "link0_rx_crc_errors")


def test_default_link_flit_is_two_beats():
    link = PackageDieLink(Package.named("default"), 0)
    p = link.link_params
    assert p == die_link_params(Package.named("default"), 0)
    assert (p.beat_width, p.flit_width, p.beats_per_flit) == (17, 34, 2)


# ---- validation ---------------------------------------------------------------------------

def _default(**tile_changes):
    base = Package.named("default")
    tiles = []
    for tile in base.tiles:
        change = tile_changes.get(tile.name)
        tiles.append(dataclasses.replace(tile, **change) if change else tile)
    return dataclasses.replace(base, tiles=tuple(tiles))


@pytest.mark.parametrize("changes,message", [
    ({"npu0": {"params": {"rows": 4, "dma_port": 2}}},
     r"Tile 'npu0' is on local port 2, but die 1's routers have 1 local port\(s\)"),
    # Without dma_port the DMA takes the next port (port + 1), which die 1 does not have.
    ({"npu0": {"params": {"rows": 4}}},
     r"Tile 'npu0' is on local port 1, but die 1's routers have 1 local port\(s\)"),
    ({"npu0": {"port": 1}},
     r"Tile 'npu0' is on local port 1, but die 1's routers have 1 local port\(s\)"),
    ({"npu0": {"params": {"dma_port": -1}}}, "Tile 'npu0' dma_port must be a non-negative"),
    ({"counters1": {"x": 1, "y": 1}},
     r"Tiles 'npu1' and 'counters1' are both on die 1 router \(1, 1\) local port 0"),
])
def test_config_validation_of_two_port_tiles(changes, message):
    with pytest.raises(ValueError, match=message):
        _default(**changes)


@pytest.mark.parametrize("changes,message", [
    ({"memory": {"kind": "traffic"}},
     "Tile 'memory' has kind 'traffic', which PackageTop does not build"),
    ({"memory": {"params": {"words": 64, "colour": 1}}},
     r"Tile 'memory' \(memory\) has unknown param\(s\) 'colour'; expected words"),
    ({"counters0": {"kind": "host_bridge", "name": "host2"}},
     r"has 2 host bridges \(host, host2\); PackageTop supports one"),
])
def test_top_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        PackageTop(_default(**changes))


def test_npu_needs_32_bit_data():
    wide = dataclasses.replace(Package.named("default"), noc=dataclasses.replace(
        Package.named("default").noc, data_width=64))
    with pytest.raises(ValueError, match="the NPU register window needs 32-bit NoC data, "
                                         "not 64"):
        PackageTop(wide)


def test_narrow_flits_are_refused_with_the_package_name():
    """The ``icebreaker`` package's 16-bit flits with the default transaction shape (8
    length and 4 tag bits): the request head does not fit."""
    base = Package.named("icebreaker")
    wide = dataclasses.replace(base, noc=dataclasses.replace(base.noc, length_bits=8,
                                                             tag_bits=4))
    with pytest.raises(ValueError, match="Package 'icebreaker': The request head needs 18 "
                                         "payload bits"):
        PackageTop(wide)


def test_the_config_shapes_transactions_slices_and_links():
    """The ``icebreaker`` config's ``[noc]`` transaction shape and ``port_slices`` and its
    link's sizes reach the top, the link adapters and the bridges; the default keeps the
    defaults."""
    small, default = Package.named("icebreaker"), Package.named("default")
    top = PackageTop(small)
    t = top.transaction
    assert (t.data_width, t.addr_width, t.length_bits, t.tag_bits) == (16, 16, 4, 1)
    assert top.port_slices is False and PackageTop(small, port_slices=True).port_slices
    link = PackageDieLink(small, 0)
    p = link.link_params
    assert (p.beat_width, p.flit_width, p.frame_flits, p.replay_frames, p.rx_credits,
            p.counter_width, p.output_skid, p.replay_head_registers) == (
                18, 18, 4, 2, 8, 16, False, False)
    assert not any(b.guard_slices for b in link.bridge_params)
    assert die_link_params(small, 0, rx_credits=12).rx_credits == 12   # the caller wins
    assert len(link.a_tx_status.replayed_frames) == 16
    d = die_link_params(default, 0)
    assert (d.frame_flits, d.replay_frames, d.rx_credits, d.counter_width,
            d.output_skid, d.replay_head_registers) == (15, 4, 48, 32, True, True)
    assert PackageTop(default).port_slices is True
    assert all(b.guard_slices for b in PackageDieLink(default, 0).bridge_params)
    assert "link_bit_errors" in top.signature.members


@pytest.mark.parametrize("section,changes,message", [
    ("noc", {"port_slices": 1}, "port_slices must be true or false"),
    ("noc", {"addr_width": 0}, "NoC address width must be a positive integer"),
    ("noc", {"tag_bits": True}, "NoC tag bits must be a positive integer"),
    ("link", {"rx_credits": 0}, "Link rx credits must be a positive integer"),
    ("link", {"frame_flits": "4"}, "Link frame flits must be a positive integer"),
    ("link", {"output_skid": 0}, "Link output_skid must be true or false"),
    ("link", {"replay_head_registers": "no"}, "Link replay_head_registers must be true or"),
])
def test_config_size_keys_are_checked(section, changes, message):
    table = Package.named("icebreaker").to_dict()
    target = table["noc"] if section == "noc" else table["links"][0]
    target.update(changes)
    with pytest.raises(ValueError, match=message):
        Package.from_dict(table)


def test_a_link_the_adapter_refuses_names_the_package_and_link():
    """A window the sequence numbers cannot hold (``replay_frames`` >= 2**seq_bits) is
    refused by LinkParams, with the package and link in the message."""
    table = Package.named("icebreaker").to_dict()
    table["links"][0]["replay_frames"] = 8
    with pytest.raises(ValueError, match=r"Package 'icebreaker' link 0 \(die 0 \(0, 0\) east"
                                         r".*replay_frames \(8\) must be below"):
        die_link_params(Package.from_dict(table), 0)


def test_replay_head_reads_need_a_frame_that_leaves_them_room():
    """The default link's frame has flit slots at beats 1 and 2: its replay heads cannot be
    read from the replay buffer, and the package says which link asks for it."""
    table = Package.named("default").to_dict()
    table["links"][0]["replay_head_registers"] = False
    with pytest.raises(ValueError, match=r"Package 'default' link 0 .*"
                                         r"replay_head_registers=False needs beats 1 and 2"):
        die_link_params(Package.from_dict(table), 0)


def test_shipped_packages_keep_their_round_trip():
    for name in ("default", "four_die", "icebreaker"):
        package = Package.named(name)
        assert Package.loads(package.to_toml()) == package


def test_register_bank_of_any_size_lints_clean():
    """A bank whose register count is not a power of two (the counters banks have 40 and
    49) used to leave an incomplete read case (Verilator CASEINCOMPLETE)."""
    from chipknit.rtl.noc.transaction import TransactionParams
    from chipknit.rtl.registers import Register, RegisterBank
    from chipknit.tb.lint import lint
    bank = RegisterBank(TransactionParams(), [Register(f"r{i}", 8 + i) for i in range(5)])
    result = lint(bank, "register_bank_of_five")
    assert result.clean, str(result)


def test_stand_in_die_link_has_no_link_counters():
    """A die link without link counters (the stand-in) still gives a working top: the
    counters banks simply have no link registers."""
    from chipknit.rtl.noc.package_network import stand_in_die_link
    from chipknit.tb.hdl import to_rtlil
    top = PackageTop(_small_default(), die_link=stand_in_die_link(2))
    assert not any(r.name.startswith("link") for r in top.registers(0))
    assert "router00_unroutable" in [r.name for r in top.registers(1)]
    assert "module" in to_rtlil(top, "package_stand_in")


def _small_default():
    return Package.named("default").with_tile_params("npu", rows=2, cols=2, a_depth=16,
                                                     w_depth=16, acc_depth=8, qp_depth=4)
