"""Link training, deskew, lane repair and retraining.

Default: the lane map and gearboxes against the model (Amaranth simulator), parameter
validation, the model itself. ``slow``: the cocotb testbench ``link_training`` (two trained
ends over interposers; ~2.5 min with a cold Verilator build on this machine).
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from chipknit.rtl.link.frame import LinkParams
from chipknit.rtl.link.lane_map import LaneMapper, RxGearbox, TxGearbox
from chipknit.rtl.link.lanes import LaneParams
from chipknit.rtl.link.training import PRBS, LinkTrainer, TrainingParams
from chipknit.tb.benches import get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models.link_training import (
    FULL,
    HALF,
    NONE,
    TrainingFrame,
    expected_deskew,
    lane_map,
    prbs_bits,
)

BENCH = get_testbench("link_training")


@pytest.mark.slow
def test_link_training(seed):
    result = run(BENCH, simulator="verilator", seed=seed)
    result.check()


def _random_masks(lanes, count, rng):
    masks = [(1 << lanes) - 1, 0]
    for _ in range(count):
        dead = rng.randint(0, lanes)
        masks.append(((1 << lanes) - 1) & ~sum(1 << i for i in rng.sample(range(lanes), dead)))
    return masks


def test_lane_mapper_matches_model():
    lanes, slots = 18, 16
    dut = LaneMapper(lanes, slots)
    masks = _random_masks(lanes, 30, random.Random(3))
    checked = []

    async def bench(ctx):
        for mask in masks:
            ctx.set(dut.mask, mask)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            assert cycles == lanes + 1
            model = lane_map(mask, lanes, slots)
            assert ctx.get(dut.mode).value == model.mode, hex(mask)
            if model.mode != NONE:
                select = [ctx.get(dut.select[j]) for j in range(model.slots_in_use)]
                assert tuple(select) == model.select, hex(mask)
                for i in range(lanes):
                    rank = ctx.get(dut.rank[i])
                    assert (rank if rank < model.slots_in_use else None) == model.rank[i]
            checked.append(model.mode)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert {FULL, HALF, NONE} <= set(checked)


@pytest.mark.parametrize("mode", [FULL, HALF])
def test_gearboxes_round_trip(mode):
    """Beats through TxGearbox → lanes → RxGearbox come out bit-exact at the mode's rate,
    whatever lanes are usable (the dead ones carry garbage)."""
    lanes, slots = 18, 16
    rng = random.Random(7 + mode)
    while True:
        mask = _random_masks(lanes, 1, rng)[-1]
        model = lane_map(mask, lanes, slots)
        if model.mode == mode:
            break
    tx, rx = TxGearbox(lanes, slots), RxGearbox(lanes, slots)
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    m.d.comb += rx.data.eq(tx.data ^ (~mask & ((1 << lanes) - 1)))  # dead lanes inverted
    mode_value = {FULL: 2, HALF: 1}[mode]
    rank = [r if r is not None else slots for r in model.rank]
    select = list(model.select) + [0] * (slots - len(model.select))
    beats = [rng.getrandbits(16) for _ in range(60)]
    out, taken = [], []

    async def bench(ctx):
        ctx.set(tx.mode, mode_value)
        ctx.set(rx.mode, mode_value)
        for i in range(lanes):
            ctx.set(tx.rank[i], rank[i])
        for j in range(slots):
            ctx.set(rx.select[j], select[j])
        ctx.set(tx.enable, 1)
        ctx.set(rx.enable, 1)
        ctx.set(tx.beats.valid, 1)
        index = 0
        for _ in range(len(beats) * model.cycles_per_beat):
            ctx.set(tx.beats.payload, beats[index % len(beats)])
            if ctx.get(rx.beats.valid):
                out.append(ctx.get(rx.beats.payload))
            if ctx.get(tx.beats.ready):
                taken.append(beats[index % len(beats)])
                index += 1
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(taken) == len(beats)
    assert out == taken[:len(out)] and len(out) >= len(beats) - 1


def test_training_frame_layout_fits_and_decodes():
    p = TrainingParams()
    frame = TrainingFrame(p.lanes.lanes, p.frame_cycles)
    assert frame.prbs_start == p.prbs_start and frame.id_bits == p.id_bits
    valid, bits = frame.bits(lane=5, phase=1, have_peer=1, fresh=0, mask=0x3fffe)
    assert len(bits) == len(valid) == p.frame_cycles and valid[0] == 1 and sum(valid) == 1
    assert frame.decode(bits) == {"lane": 5, "phase": 1, "have_peer": 1, "fresh": 0,
                                  "mask": 0x3fffe}
    stuck = [1] * p.frame_cycles
    assert frame.decode(stuck) is None
    # The PRBS matches the RTL generator's pattern (PRBS-7: period 127, balanced).
    seq = prbs_bits(254, PRBS.order, PRBS.seed)
    assert seq[:127] == seq[127:] and sum(seq[:127]) == 64


def test_expected_deskew_model():
    assert expected_deskew([0, 3, 1], False) == [3, 0, 2]
    assert expected_deskew([0, 3, 1], True) == [2, 0, 3]


def test_trainer_elaborates_in_other_shapes():
    """DDR-shaped lanes (2 bits per lane) and no repair lanes still elaborate."""
    from amaranth.back import rtlil
    for lanes in (LaneParams(9, 2), LaneParams(16, 1)):
        rtlil.convert(LinkTrainer(TrainingParams(lanes=lanes)))


@pytest.mark.parametrize("kwargs,message", [
    ({"lanes": LaneParams(15, 1)}, "15 lanes cannot carry a 16-bit beat"),
    ({"lanes": LaneParams(18, 3)}, "must be a multiple of bits_per_lane"),
    ({"frame_cycles": 40}, "frame_cycles must be at least 71"),
    ({"deskew_range": 40}, "4 × \\(deskew_range \\+ 1\\)"),
    ({"retrain_window": 10}, "retrain_window must cover at least two link frames"),
    ({"retrain_window": 256, "retrain_errors": 5}, "retrain_errors \\(5\\) must be reachable"),
    ({"test_frames": 0}, "test_frames must be a positive integer, not 0"),
    ({"link": LinkParams(beat_width=16), "lanes": LaneParams(8, 1)}, "cannot carry"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingParams(**kwargs)
