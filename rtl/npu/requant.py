"""TFLite's int8 output stage in hardware: bias, Q31 multiplier, shifts, zero point, clamp.

Bit-exact with :func:`chipknit.tb.models.npu.requantize` (see ``docs/npu.md``).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RequantParams", "Requantiser", "channel_layout", "requant_input_layout",
           "SHIFT_WIDTH", "LATENCY"]

SHIFT_WIDTH = 6
#: Pipeline stages from an accepted input to its result at the output.
LATENCY = 8

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
    stages deep and stalls as a whole while ``o`` is not ready, so ``i.ready`` follows
    ``o.ready`` combinationally (one gate). Results leave in the order beats entered. A reset
    drops every beat in flight.

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
        m.d.comb += [
            advance.eq(~valid[-1] | self.o.ready),
            self.i.ready.eq(advance),
            self.o.valid.eq(valid[-1]),
        ]
        with m.If(advance):
            m.d.sync += valid.eq(Cat(self.i.valid, valid[:-1]))

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

        p = self.i.payload
        zero_point = carry(p.out_zero_point, 6, "out_zero_point")
        act_min = carry(p.act_min, 7, "act_min")
        act_max = carry(p.act_max, 7, "act_max")
        bypass = carry(p.bypass, 7, "bypass")

        for lane in range(lanes):
            acc = p.acc[lane]
            ch = p.channel[lane]
            raw = carry(acc, 7, f"raw{lane}")
            # 1: bias and shift split.
            x1 = stage((acc + ch.bias)[:32].as_signed(), f"x1_{lane}")
            left1 = stage(Mux(ch.shift > 0, ch.shift.as_unsigned()[:5], 0), f"left1_{lane}")
            right1 = stage(Mux(ch.shift < 0, (-ch.shift)[:6], 0), f"right1_{lane}")
            mul1 = stage(ch.multiplier, f"mul1_{lane}")
            # 2: left shift (wraps to 32 bits).
            x2 = stage((x1 << left1)[:32].as_signed(), f"x2_{lane}")
            mul2 = stage(mul1, f"mul2_{lane}")
            right2 = stage(right1, f"right2_{lane}")
            # 3: two 32×16 partial products of x * multiplier.
            low3 = stage(x2 * mul2[:16], f"low3_{lane}")
            high3 = stage(x2 * mul2[16:].as_signed(), f"high3_{lane}")
            overflow3 = stage((x2 == INT32_MIN) & (mul2 == INT32_MIN), f"overflow3_{lane}")
            right3 = stage(right2, f"right3_{lane}")
            # 4: the full product plus the rounding nudge 2**30; floor division by 2**31 of
            # ab + 2**30 is TFLite's nudge-and-truncate (ties toward +inf) for either sign.
            total4 = stage((high3 << 16) + low3 + (1 << 30), f"total4_{lane}")
            overflow4 = stage(overflow3, f"overflow4_{lane}")
            right4 = stage(right3, f"right4_{lane}")
            # 5: high word, saturated in the one overflow case.
            high5 = stage(Mux(overflow4, INT32_MAX, (total4 >> 31)[:32].as_signed()),
                          f"high5_{lane}")
            right5 = stage(Mux(right4 > 31, 31, right4)[:5], f"right5_{lane}")
            # 6: rounding divide by 2**right, ties away from zero: compare the remainder with
            # the threshold (mask >> 1) + (x < 0).
            mask = Signal(32, name=f"mask_{lane}")
            m.d.comb += mask.eq((Const(1, 33) << right5) - 1)
            quotient6 = stage((high5 >> right5)[:32].as_signed(), f"quotient6_{lane}")
            round6 = stage((high5.as_unsigned() & mask) > ((mask >> 1) + high5[31]),
                           f"round6_{lane}")
            # 7: round, then add the output zero point (wraps).
            z7 = stage((quotient6 + round6 + zero_point[6])[:32].as_signed(), f"z7_{lane}")
            # 8: clamp, or the raw accumulator.
            clamped = Mux(z7 < act_min[7], act_min[7], Mux(z7 > act_max[7], act_max[7], z7))
            out8 = stage(Mux(bypass[7], raw[7], clamped), f"out8_{lane}")
            m.d.comb += self.o.payload[lane].eq(out8)
        return m
