"""TFLite's int8 output stage in hardware: bias, Q31 multiplier, shifts, zero point, clamp.

Bit-exact with :func:`chipknit.tb.models.npu.requantize` (see ``docs/npu.md``).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .mac import DspProduct

__all__ = ["RequantParams", "Requantiser", "channel_layout", "requant_input_layout",
           "SHIFT_WIDTH", "LATENCY"]

SHIFT_WIDTH = 6
#: Pipeline stages from an accepted input to its result at the output.
LATENCY = 13

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

#: Per-output-channel parameters (one per lane and beat).
channel_layout = data.StructLayout({
    "bias": signed(32),
    "multiplier": signed(32),
    "shift": signed(SHIFT_WIDTH),
})


def requant_input_layout(lanes: int) -> data.StructLayout:
    """One input beat: ``lanes`` accumulators with their channel parameters, and the
    per-layer output zero point, clamp bounds and the bypass switch."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(32), lanes),
        "channel": data.ArrayLayout(channel_layout, lanes),
        "out_zero_point": signed(8),
        "act_min": signed(8),
        "act_max": signed(8),
        "bypass": unsigned(1),
    })


@dataclass(frozen=True)
class RequantParams:
    """Parameters of a :class:`Requantiser`.

    Parameters
    ----------
    lanes : int
        Values requantised per beat (each lane has its own 32×32 multiplier).
    """
    lanes: int = 1

    def __post_init__(self):
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) or self.lanes < 1:
            raise ValueError(f"Lanes must be a positive integer, not {self.lanes!r}")


class Requantiser(wiring.Component):
    """Requantises int32 accumulators to int8 exactly as TFLite does, ``lanes`` per beat.

    Per lane: ``x = acc + bias`` (wraps), ``x <<= max(shift, 0)`` (wraps), then
    SaturatingRoundingDoublingHighMul with the Q31 ``multiplier`` (ties toward +inf,
    ``INT32_MIN²`` saturates), RoundingDivideByPOT by ``max(-shift, 0)`` (ties away from zero),
    ``+ out_zero_point`` (wraps) and clamp to ``[act_min, act_max]``. ``shift`` must be in
    [-31, 31]; -32 acts as -31. With ``bypass`` set the lane returns ``acc`` unchanged
    (a readout of raw accumulators).

    Protocol: ``i`` and ``o`` are ``lib.stream`` interfaces. The pipeline is :data:`LATENCY`
    stages deep. A result that ``o`` does not take moves into an output skid register, and
    the pipeline stalls as a whole while that register is full, so ``i.ready`` is a register
    (no path from ``o.ready`` into the stages); the cycle the skid register empties, the
    pipeline still holds (one cycle per stall). Results leave in the order beats entered. A
    reset drops every beat in flight.

    Attributes
    ----------
    i : In(stream.Signature(requant_input_layout(lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(32), lanes)))
        Each lane's int8 result sign-extended to 32 bits (or the raw ``acc`` with bypass).
    """

    def __init__(self, params: RequantParams = RequantParams()):
        if not isinstance(params, RequantParams):
            raise TypeError(f"Expected RequantParams, not {params!r}")
        self.params = params
        super().__init__({
            "i": In(stream.Signature(requant_input_layout(params.lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(32), params.lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self.params.lanes
        valid = Signal(LATENCY)
        advance = Signal()
        # The output skid register: a last-stage beat that ``o`` does not take waits here,
        # and the pipeline holds while it is full. ``advance`` (every stage's enable, and
        # ``i.ready``) is that register's emptiness, so ``o.ready`` reaches no stage.
        skid_valid = Signal()
        skid = Signal(self.o.payload.shape())
        last = Signal(self.o.payload.shape())
        m.d.comb += [
            advance.eq(~skid_valid),
            self.i.ready.eq(advance),
            self.o.valid.eq(valid[-1] | skid_valid),
            self.o.payload.eq(Mux(skid_valid, skid, last)),
        ]
        with m.If(advance):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))
        with m.If(skid_valid):
            with m.If(self.o.ready):
                m.d.sync += skid_valid.eq(0)
        with m.Elif(valid[-1] & ~self.o.ready):
            m.d.sync += [skid_valid.eq(1), skid.eq(last)]

        def stage(value, name):
            """A register that loads ``value`` when the pipeline advances."""
            reg = Signal(value.shape(), name=name)
            with m.If(advance):
                m.d.sync += reg.eq(value)
            return reg

        def carry(value, stages, name):
            out = [value]
            for index in range(stages):
                out.append(stage(out[-1], f"{name}_{index + 1}"))
            return out

        # 1: the input beat, registered (it comes straight from the engine's memories).
        p = data.View(self.i.payload.shape(), stage(self.i.payload.as_value(), "input1"))
        zero_point = carry(p.out_zero_point, LATENCY - 4, "out_zero_point")
        act_min = carry(p.act_min, LATENCY - 2, "act_min")
        act_max = carry(p.act_max, LATENCY - 2, "act_max")
        bypass = carry(p.bypass, LATENCY - 2, "bypass")

        for lane in range(lanes):
            acc = p.acc[lane]
            ch = p.channel[lane]
            raw = carry(acc, LATENCY - 2, f"raw{lane}")
            # 2: bias and shift split.
            x1 = stage((acc + ch.bias)[:32].as_signed(), f"x1_{lane}")
            left1 = stage(Mux(ch.shift > 0, ch.shift.as_unsigned()[:5], 0), f"left1_{lane}")
            # The right shift, clamped to 31 here (-32 acts as -31), so that the rounding
            # masks of stage 9 decode a 5-bit register and nothing before it.
            right1 = stage(Mux(ch.shift < 0, Mux(ch.shift == -32, 31, (-ch.shift)[:5]), 0),
                           f"right1_{lane}")
            mul1 = stage(ch.multiplier, f"mul1_{lane}")
            # 3: left shift (wraps to 32 bits).
            x2 = stage((x1 << left1)[:32].as_signed(), f"x2_{lane}")
            mul2 = stage(mul1, f"mul2_{lane}")
            right2 = stage(right1, f"right2_{lane}")
            # 4-6: four 16×16 partial products in registered DSPs (one MULT18X18D each on
            # ECP5): x = xh·2**16 + xl, M = mh·2**16 + ml with xl, ml unsigned.
            halves = {"xl": Cat(x2[:16], 0).as_signed(), "xh": x2[16:].as_signed(),
                      "ml": Cat(mul2[:16], 0).as_signed(), "mh": mul2[16:].as_signed()}
            products = {}
            for name, (left, right) in {"ll": ("xl", "ml"), "lh": ("xl", "mh"),
                                        "hl": ("xh", "ml"), "hh": ("xh", "mh")}.items():
                dsp = DspProduct(17, 17)
                m.submodules[f"{name}_{lane}"] = dsp
                m.d.comb += [dsp.a.eq(halves[left]), dsp.b.eq(halves[right]),
                             dsp.en.eq(advance)]
                products[name] = dsp.p
            overflow = carry((x2 == INT32_MIN) & (mul2 == INT32_MIN), 5, f"overflow{lane}")
            right = carry(right2, 5, f"right{lane}")
            # 7-9: (x·M + 2**30) >> 31, with the nudge 2**30; floor division by 2**31 of
            # ab + 2**30 is TFLite's nudge-and-truncate (ties toward +inf) for either sign.
            # The low 16 bits of ll are below everything else, so (ab + 2**30) >> 16 is
            # hh·2**16 + lh + hl + (ll >> 16) + 2**14 exactly.
            mid6 = stage(products["lh"] + products["hl"], f"mid6_{lane}")
            low6 = stage(products["ll"][16:32] + (1 << 14), f"low6_{lane}")
            high6 = stage(products["hh"], f"hh6_{lane}")
            sum7 = stage(mid6 + low6, f"sum7_{lane}")
            high7 = stage(high6, f"hh7_{lane}")
            total8 = (high7 << 16) + sum7
            # 9: high word, saturated in the one overflow case.
            high8 = stage(Mux(overflow[5], INT32_MAX, (total8 >> 15)[:32].as_signed()),
                          f"high8_{lane}")
            # The rounding divide's masks by 2**right (thermometer codes, no adder): ``tie``
            # is bit right-1, ``below`` the bits under it.
            right_c = Signal(5, name=f"right_c{lane}")
            m.d.comb += right_c.eq(right[5])
            right8 = stage(right_c, f"right8_{lane}")
            # The masks come from the shift's two fields decoded a stage earlier (beside
            # right[5]), so that each mask bit is one LUT of registers: v == right is
            # hi_eq[v >> 3] & lo_eq[v & 7], v < right is hi_gt[v >> 3] | (hi_eq & lo_gt).
            hi, lo = right[4][3:], right[4][:3]
            hi_eq = stage(Cat(*(hi == h for h in range(4))), f"right_hi_eq{lane}")
            # (hi > 3 and lo > 7 never hold: constant zeros, not compares lint rejects.)
            hi_gt = stage(Cat(*(hi > h for h in range(3)), Const(0, 1)), f"right_hi_gt{lane}")
            lo_eq = stage(Cat(*(lo == j for j in range(8))), f"right_lo_eq{lane}")
            lo_gt = stage(Cat(*(lo > j for j in range(7)), Const(0, 1)), f"right_lo_gt{lane}")
            # (right is at most 31: tie bit 31 and below bits 30, 31 are constant zeros.)
            tie8 = stage(Cat(*(hi_eq[v >> 3] & lo_eq[v & 7] for v in range(1, 32)),
                             Const(0, 1)), f"tie8_{lane}")
            below8 = stage(Cat(*(hi_gt[v >> 3] | (hi_eq[v >> 3] & lo_gt[v & 7])
                                 for v in range(1, 31)), Const(0, 2)), f"below8_{lane}")
            # 10: rounding divide by 2**right, ties away from zero: the remainder exceeds
            # (mask >> 1) + (x < 0), that is bit right-1 is set, and for x < 0 some bit below
            # it too (an exact tie rounds away from zero, which for x < 0 is toward -inf).
            quotient9 = stage((high8 >> right8)[:32].as_signed(), f"quotient9_{lane}")
            round9 = stage((high8 & tie8).any()
                           & ~(high8[31] & ~(high8 & below8).any()), f"round9_{lane}")
            # 11: round, then add the output zero point (wraps).
            z10 = stage((quotient9 + round9 + zero_point[-1])[:32].as_signed(), f"z10_{lane}")
            # 12: the clamp's decisions, registered. The bounds are int8, so no 32-bit
            # compare: z10 is int8 when bits 31..7 are all equal, and then its low byte is
            # compared; otherwise its sign says which bound it is past.
            upper = z10[7:]
            fits = upper.all() | ~upper.any()
            low = z10[:8].as_signed()
            below11 = stage(Mux(fits, low < act_min[-2], z10[31]), f"below11_{lane}")
            above11 = stage(Mux(fits, low > act_max[-2], ~z10[31]), f"above11_{lane}")
            low11 = stage(low, f"low11_{lane}")
            # 13: the clamped int8, or the raw accumulator.
            clamped = Mux(below11, act_min[-1], Mux(above11, act_max[-1], low11))
            out12 = stage(Mux(bypass[-1], raw[-1], clamped), f"out12_{lane}")
            m.d.comb += last[lane].eq(out12)
        return m
