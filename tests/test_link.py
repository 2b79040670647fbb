"""The link adapter: framing, CRC, go-back-N replay and credits, end to end and in parts."""

import random

import pytest
from amaranth.sim import Simulator

from chipknit.rtl.link.commit_fifo import CommitFifo
from chipknit.rtl.link.frame import LinkParams
from chipknit.tb.benches import LINK_PAIR_PARAMS, get_testbench
from chipknit.tb.harness import run
from chipknit.tb.models.link import (
    HEADER_CRC_INITIAL,
    HEADER_CRC_POLYNOMIALS,
    FrameFormat,
    crc16,
    go_back_n_goodput,
    header_crc,
)

BENCH = get_testbench("link_pair")
SMALL = {"flit_width": 32, "frame_flits": 4, "rx_credits": 8, "replay_frames": 2,
         "replay_timeout": 200}
# One slot, so the header comes first and the slot's first beat is the frame's second.
HEADER_FIRST = {"flit_width": 32, "frame_flits": 1, "rx_credits": 8, "replay_frames": 2,
                "replay_timeout": 200}
# One beat per flit, as the `icebreaker` package's link (18-bit flits on 18 lanes), with
# 16-bit counters, no output skid at the receivers and a replay's first two beats read from
# the replay buffer.
ONE_BEAT = {"flit_width": 18, "beat_width": 18, "frame_flits": 4, "rx_credits": 8,
            "replay_frames": 2, "replay_timeout": 200, "counter_width": 16,
            "output_skid": False, "replay_head_registers": False}


@pytest.mark.parametrize("simulator,params,testcase", [
    ("verilator", {}, None),
    ("verilator", SMALL, None),
    ("verilator", HEADER_FIRST, None),
    ("verilator", ONE_BEAT, None),
    # Icarus runs this design at ~1 k cycles/s: the same tests, on request only.
    pytest.param("icarus", SMALL, None, marks=pytest.mark.slow),
], ids=["verilator-default", "verilator-small", "verilator-header-first", "verilator-one-beat",
        "icarus-small"])
def test_link_pair(simulator, params, testcase, seed):
    result = run(BENCH, simulator=simulator, params=params, seed=seed, testcase=testcase)
    result.check()


def test_default_frame_meets_efficiency_target():
    params = LinkParams()
    assert params.frame_beats == 63 and params.frame_bits == 1008
    assert params.payload_efficiency >= 0.95
    model = FrameFormat(**{k: LINK_PAIR_PARAMS[k] for k in (
        "flit_width", "vcs", "beat_width", "frame_flits", "seq_bits", "rx_credits")})
    assert model.frame_beats == params.frame_beats
    assert model.payload_efficiency == params.payload_efficiency


def test_replay_head_reads_fit_only_where_beats_1_and_2_are_not_both_slots():
    # One-beat flits: the header sits at beat frame_flits // 2, so 2 and 4 slots fit, 8 not.
    one_beat = {"flit_width": 18, "beat_width": 18}
    assert [LinkParams(**one_beat, frame_flits=n).head_reads_fit for n in (1, 2, 4, 8)] == [
        True, True, True, False]
    assert LinkParams(**one_beat, frame_flits=4, replay_head_registers=False)
    # Two-beat flits: slot 0 fills beats 0 and 1; the header is beat 2 in a frame of 2 slots
    # (fits) and beat 4 in one of 4 (beats 1 and 2 are both slot beats).
    two_beats = {"flit_width": 32, "beat_width": 16}
    assert LinkParams(**two_beats, frame_flits=2).head_reads_fit
    assert not LinkParams(**two_beats, frame_flits=4).head_reads_fit
    with pytest.raises(ValueError, match="replay_head_registers=False needs beats 1 and 2"):
        LinkParams(replay_head_registers=False)
    with pytest.raises(ValueError, match="replay_head_registers must be True or False"):
        LinkParams(replay_head_registers=1)


def test_crc_model_known_answer():
    # CRC-16/CMS check value over the ASCII bytes "123456789" is 0xAEE7.
    assert crc16(b"123456789", 8) == 0xAEE7
    # The header CRCs against Amaranth's software CRC with the same generator and initial
    # value (an independent implementation), over "123456789".
    from amaranth.lib.crc import Algorithm
    for width, polynomial in HEADER_CRC_POLYNOMIALS.items():
        algorithm = Algorithm(crc_width=width, polynomial=polynomial,
                              initial_crc=HEADER_CRC_INITIAL[width], reflect_input=False,
                              reflect_output=False, xor_output=0)
        assert header_crc(int.from_bytes(b"123456789"), 72, width) == \
            algorithm(data_width=8).compute(b"123456789"), width


@pytest.mark.parametrize("beat_width", [16, 17, 20, 32])
def test_stuck_lanes_never_make_a_good_frame(beat_width):
    """Every lane stuck at 0 or at 1 (``valid`` still up) must not read as a frame with a
    good CRC, at any frame length, nor as a header with a good header CRC, at any field
    width: a CRC that starts from zero passes all-zero frames, and a live link whose lanes
    all die would never retrain (tb/tests/link_training.py
    ``every_lane_stuck_at_zero_mid_traffic``)."""
    ones = (1 << beat_width) - 1
    for beats in range(2, 200):
        assert crc16([0] * beats, beat_width) != 0, beats
        assert crc16([ones] * beats, beat_width) != 0xFFFF, beats
    for width in HEADER_CRC_POLYNOMIALS:
        for field_bits in range(4, 129):
            assert header_crc(0, field_bits, width) != 0, (width, field_bits)
            assert header_crc((1 << field_bits) - 1, field_bits, width) != (1 << width) - 1, \
                (width, field_bits)


@pytest.mark.parametrize("crc_width,field_bits", [(5, 11), (6, 10), (7, 9), (8, 7)])
def test_header_crc_rtl_matches_model(crc_width, field_bits):
    """The transmitter's and receiver's combinational header CRC against the bitwise model."""
    from amaranth.hdl import Module, Signal

    from chipknit.rtl.link.frame import header_crc as rtl_header_crc
    m = Module()
    fields, check = Signal(field_bits), Signal(crc_width)
    m.d.comb += check.eq(rtl_header_crc(fields, crc_width))
    sim = Simulator(m)

    async def bench(ctx):
        for value in [0, (1 << field_bits) - 1] + [1 << i for i in range(field_bits)] + \
                random.Random(crc_width).sample(range(1 << field_bits), 40):
            ctx.set(fields, value)
            assert ctx.get(check) == header_crc(value, field_bits, crc_width), value

    sim.add_testbench(bench)
    sim.run()


def _frame_formats():
    from chipknit.rtl.link.lanes import LaneParams
    from chipknit.rtl.package.config import Package
    from chipknit.rtl.package.link_end import cut_link_params
    from chipknit.rtl.package.top import die_link_params
    package = Package.load("default")
    fields = ("flit_width", "vcs", "beat_width", "frame_flits", "seq_bits", "rx_credits")
    for params in (LinkParams(), die_link_params(package, 0),
                   cut_link_params(package, LaneParams(18, 1)).link):
        yield FrameFormat(**{name: getattr(params, name) for name in fields})


@pytest.mark.parametrize("fmt", list(_frame_formats()), ids=["default", "die-link", "cut-link"])
def test_no_repeated_beat_makes_a_wholly_good_frame(fmt):
    """Lanes stuck at any levels (one bit per lane) repeat one beat value ``c`` in every beat.
    For each of the 2^W values, the frame must fail its CRC or its header's CRC (the
    trainer counts both): with both CRCs affine in ``c``, every value is checked exactly
    from W + 1 evaluations of the model, and a sample against the frame decoder."""
    import numpy as np
    W, beats = fmt.beat_width, fmt.frame_beats
    assert fmt.header_beats == 1 and fmt.header_field_bits + fmt.header_crc_width <= W
    fb, cw = fmt.header_field_bits, fmt.header_crc_width

    def frame_syndrome(c):      # 0 when the frame CRC passes
        return crc16([c] * (beats - 1), W) ^ (c & 0xFFFF)

    def header_syndrome(c):     # 0 when the header CRC passes
        return header_crc(c & ((1 << fb) - 1), fb, cw) ^ ((c >> fb) & ((1 << cw) - 1))

    values = np.arange(1 << W, dtype=np.uint32)
    passes = np.ones(1 << W, dtype=bool)
    for syndrome in (frame_syndrome, header_syndrome):
        base = syndrome(0)
        acc = np.full(1 << W, base, dtype=np.uint32)
        for i in range(W):
            acc ^= np.where((values >> i) & 1, syndrome(1 << i) ^ base, 0).astype(np.uint32)
        passes &= acc == 0
        for c in random.Random(W).sample(range(1 << W), 50):   # the linear shortcut holds
            assert int(acc[c]) == syndrome(c), (syndrome.__name__, c)
    for c in random.Random(beats).sample(range(1 << W), 20):
        frame = fmt.decode([c] * beats)
        assert passes[c] == (frame.crc_ok and frame.header_ok), c
    assert not passes.any(), [hex(int(c)) for c in values[passes][:8]]


def test_default_frame_layout_and_timers():
    """Header mid-frame with a 7-bit CRC in one beat; replay timers derived from the frame."""
    p = LinkParams()
    assert (p.seq_bits, p.header_beats, p.header_crc_width) == (3, 1, 7)
    assert p.header_start == 7 * 4 and p.first_trailer_beat == 61 and p.crc_beat == 62
    assert [p.slot_beat_index(n) for n in (0, 27, 28, 59)] == [0, 27, 29, 60]
    # The receiver's registered CRC compare adds a cycle to both (late_check).
    assert p.late_check
    assert p.replay_timeout == p.frame_beats + p.ack_round_trip == 164
    assert p.nak_holdoff == p.frame_beats + 2 * p.lane_latency + p.header_beats + 5 == 101
    assert LinkParams(replay_timeout=500, nak_holdoff=7).replay_timeout == 500
    # A wider sequence number needs a second header beat (and the efficiency falls).
    assert LinkParams(seq_bits=6).header_beats == 2
    model = FrameFormat()
    assert (model.header_start, model.header_crc_width) == (p.header_start, 7)


@pytest.mark.parametrize("params", [
    {}, {"beat_width": 64}, {"beat_width": 64, "frame_flits": 1}, {"beat_width": 32}])
def test_receiver_decides_late_unless_a_one_beat_flit_comes_first(params):
    """The model's ``late_check`` (which the latency test reads) is the RTL's: a registered
    CRC compare unless a flit is one beat and a slot starts the frame."""
    p = LinkParams(**params)
    model = FrameFormat(**params)
    assert model.late_check == p.late_check
    assert p.late_check == (params.get("beat_width") != 64 or params.get("frame_flits") == 1)


def test_go_back_n_bound():
    assert go_back_n_goodput(0.0, 4) == 1.0
    assert go_back_n_goodput(0.1, 1) == pytest.approx(0.9)
    assert go_back_n_goodput(0.1, 3) == pytest.approx(0.9 / 1.2)


@pytest.mark.parametrize("kwargs,message", [
    ({"beat_width": 8}, "beat_width must be at least 16"),
    ({"flit_width": 40}, "must be a multiple of beat_width"),
    ({"replay_frames": 64, "seq_bits": 6}, "must be below 2\\*\\*seq_bits"),
    ({"vcs": 0}, "vcs must be a positive integer, not 0"),
    ({"lane_latency": -1}, "lane_latency must be a non-negative integer"),
    ({"nak_holdoff": 0}, "nak_holdoff must be a positive integer"),
])
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinkParams(**kwargs)


def test_commit_fifo_commits_and_rolls_back():
    """Tentative writes are invisible; settle(keep) exposes the first `keep`, drops the rest."""
    dut = CommitFifo(width=16, depth=8, max_keep=4)
    model, out = [], []
    rng = random.Random(5)

    async def bench(ctx):
        value = 0
        for _ in range(200):
            group = []
            for _ in range(rng.randint(0, 4)):
                if ctx.get(dut.w_rdy):
                    ctx.set(dut.w_en, 1)
                    ctx.set(dut.w_data, value)
                    group.append(value)
                    value += 1
                ctx.set(dut.r.ready, rng.random() < 0.5)
                if ctx.get(dut.r.valid) and ctx.get(dut.r.ready):
                    out.append(ctx.get(dut.r.payload))
                await ctx.tick()
                ctx.set(dut.w_en, 0)
            keep = rng.randint(0, len(group))
            ctx.set(dut.settle, 1)
            ctx.set(dut.keep, keep)
            model.extend(group[:keep])
            if ctx.get(dut.r.valid) and ctx.get(dut.r.ready):
                out.append(ctx.get(dut.r.payload))
            await ctx.tick()
            ctx.set(dut.settle, 0)
            assert ctx.get(dut.pending) == 0
        ctx.set(dut.r.ready, 1)
        for _ in range(20):
            if ctx.get(dut.r.valid):
                out.append(ctx.get(dut.r.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out == model
    assert len(model) > 100


@pytest.mark.slow
def test_frame_size_trades_efficiency_for_latency(seed):
    """Smaller frames: lower zero-load latency, lower payload efficiency (simulated, both)."""
    from chipknit.bench.link import frame_size_tradeoff
    small, default = frame_size_tradeoff((1, 15), seed=seed, progress=lambda _: None)
    assert small["latency_cycles"]["max"] < default["latency_cycles"]["min"]
    assert small["payload_efficiency"] < default["payload_efficiency"]
    for row in (small, default):
        # Serialisation dominates: latency = frame beats + the wait for a frame start.
        assert row["latency_cycles"]["max"] <= 2 * row["frame_beats"] - 1
        assert row["payload_efficiency"] <= row["payload_efficiency_format"] + 1e-3


def test_error_lfsr_steps_32_times_per_cycle():
    """The link pair's error generator compares a fresh 32-bit word every beat: its
    transition is 32 steps of the Galois LFSR (hits independent from beat to beat)."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from chipknit.rtl.link.pair import _lfsr32_word

    def step(state):
        return (state >> 1) ^ (0x80200003 if state & 1 else 0)

    m = Module()
    state, word = Signal(32), Signal(32)
    m.d.comb += word.eq(_lfsr32_word(state))
    sim = Simulator(m)

    async def bench(ctx):
        rng = random.Random(1)
        for _ in range(20):
            value = rng.getrandbits(32)
            ctx.set(state, value)
            for _ in range(32):
                value = step(value)
            assert ctx.get(word) == value

    sim.add_testbench(bench)
    sim.run()
