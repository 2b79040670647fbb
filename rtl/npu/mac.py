"""The systolic array's multiplier, in three mappings chosen by parameter, and the
pipelined DSP product the requantiser uses too.

- ``"infer"``: ``a * b`` with a register on the operands, one after the product and one
  on the output (latency 3, :class:`DspProduct`). Portable: in simulation and on other
  FPGAs it is plain registers around ``a * b`` (Yosys maps each product to a DSP where it
  can: SB_MAC16 on iCE40, which absorbs the registers). On an ECP5 platform it is a
  MULT18X18D with those three registers inside it, as ``"ecp5_dsp"``: Yosys never packs
  fabric registers into the DSP itself, and without them an 8×8 array ran at 73 MHz
  instead of 161 MHz (design.md §5).
- ``"lut"``: a balanced adder tree of the partial products of ``b``'s bits (latency 2 or
  more; every register goes into the tree, so a longer latency means fewer adders per
  cycle: at 3, at most two); never uses a DSP (~2-4x smaller than ``a * b``
  synthesised with ``-nodsp``).
- ``"ecp5_dsp"``: an ``Instance("MULT18X18D")`` with its input, pipeline and output
  registers enabled (latency 3) on every platform. ECP5 only: it neither simulates nor
  lints without the vendor cell library.

``latency`` may ask for more cycles than the mapping needs, so cells of different mappings
line up in one array: a ``lut`` tree spreads them over its levels, the others put them on
the product (``ecp5_mixed`` arrays give their ``lut`` cells the DSP cells' 3 cycles).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MAC_KINDS", "MAC_LATENCY", "Multiplier", "DspProduct", "DSP_LATENCY"]

#: Cycles of a :class:`DspProduct` (operand, pipeline and output registers).
DSP_LATENCY = 3

MAC_LATENCY = {"infer": DSP_LATENCY, "lut": 2, "ecp5_dsp": DSP_LATENCY}
MAC_KINDS = tuple(MAC_LATENCY)
_DSP_WIDTH = 18


class Multiplier(wiring.Component):
    """Signed ``width``×``width`` multiplier, pipelined: ``p`` is ``a * b`` from
    ``MAC_LATENCY[kind]`` cycles earlier. No handshake; it runs every cycle.

    Attributes
    ----------
    a, b : In(signed(width))
    p : Out(signed(2 * width))
    """

    def __init__(self, width: int, kind: str = "infer", latency: int | None = None):
        if kind not in MAC_LATENCY:
            raise ValueError(f"MAC kind must be one of {', '.join(MAC_KINDS)}, not {kind!r}")
        if kind == "ecp5_dsp" and width > _DSP_WIDTH:
            raise ValueError(f"MULT18X18D takes at most {_DSP_WIDTH}-bit operands, not {width}")
        if latency is None:
            latency = MAC_LATENCY[kind]
        if not isinstance(latency, int) or latency < MAC_LATENCY[kind]:
            raise ValueError(f"Latency of a {kind!r} multiplier must be an integer >= "
                             f"{MAC_LATENCY[kind]}, not {latency!r}")
        self.width = width
        self.kind = kind
        self.latency = latency
        super().__init__({"a": In(signed(width)), "b": In(signed(width)),
                          "p": Out(signed(2 * width))})

    def elaborate(self, platform):
        m = Module()
        product = Signal(signed(2 * self.width))
        if self.kind == "lut":
            self._shift_add(m, product)
        else:
            m.submodules.dsp = dsp = DspProduct(
                self.width, self.width, vendor=True if self.kind == "ecp5_dsp" else None)
            m.d.comb += [dsp.a.eq(self.a), dsp.b.eq(self.b), dsp.en.eq(1),
                         product.eq(dsp.p)]
        pads = 0 if self.kind == "lut" else self.latency - MAC_LATENCY[self.kind]
        for index in range(pads):
            padded = Signal(signed(2 * self.width), name=f"pad{index}")
            m.d.sync += padded.eq(product)
            product = padded
        m.d.comb += self.p.eq(product)
        return m

    def _shift_add(self, m, product):
        # b = -b[w-1]*2**(w-1) + sum b[i]*2**i: one partial product per bit of b (an AND
        # gate, which packs into the adder's LUT), summed by a balanced tree of two-input
        # adders. The last bit's term is subtracted in the first level. Every value is
        # kept to 2*width bits: the product fits them, and two's complement arithmetic
        # modulo 2**(2*width) is exact. All ``latency`` registers go into the tree, spread
        # over its levels as evenly as they go (9 terms: 4 levels; 3 registers put levels
        # {1, 2}, {3} and {4} in one cycle each), so no cycle has more than two adders.
        width = self.width
        full = 2 * width
        terms = []
        for bit in range(width):
            term = Signal(signed(min(width + bit, full)), name=f"pp{bit}")
            with m.If(self.b[bit]):
                m.d.comb += term.eq(self.a << bit)
            terms.append((term, bit == width - 1))          # (value, subtract it)
        # Pair the subtracted term with its neighbour, and leave term 0 alone if odd.
        nodes = terms[::-1]
        levels = max(len(nodes) - 1, 0).bit_length()
        stage_of = [level * self.latency // max(levels, 1) for level in range(levels)]
        registered = 0
        for level in range(levels):
            last_in_stage = level == levels - 1 or stage_of[level + 1] != stage_of[level]
            registered += last_in_stage
            paired = []
            for index in range(0, len(nodes), 2):
                group = nodes[index:index + 2]
                value = group[0][0] if not group[0][1] else -group[0][0]
                if len(group) == 2:
                    value = value - group[1][0] if group[1][1] else value + group[1][0]
                node = Signal(signed(full), name=f"sum{level}_{index // 2}")
                if last_in_stage:
                    m.d.sync += node.eq(value)
                else:
                    m.d.comb += node.eq(value)
                paired.append((node, False))
            nodes = paired
        value = nodes[0][0] if not nodes[0][1] else -nodes[0][0]
        for index in range(registered, self.latency):
            stage = Signal(signed(full), name=f"tree_pad{index}")
            m.d.sync += stage.eq(value)
            value = stage
        m.d.comb += product.eq(value)


class DspProduct(wiring.Component):
    """Signed ``a * b`` with a register on the operands, one after the product and one on
    the output: ``p`` is the product of the operands :data:`DSP_LATENCY` cycles earlier,
    counting only cycles with ``en`` (all three registers load together).

    ``vendor``: None uses a MULT18X18D with those registers inside on an ECP5 platform
    (``platform.family == "ecp5"``) when both operands fit its 18 bits, and plain registers
    around ``a * b`` everywhere else (simulation included); True always instantiates the
    MULT18X18D. The data registers have no reset (the DSP's are tied off).

    Attributes
    ----------
    a : In(signed(a_width))
    b : In(signed(b_width))
    en : In(1)
    p : Out(signed(a_width + b_width))
    """

    def __init__(self, a_width: int, b_width: int, *, vendor: bool | None = None):
        for name, width in (("A", a_width), ("B", b_width)):
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise ValueError(f"{name} width must be a positive integer, not {width!r}")
            if vendor and width > _DSP_WIDTH:
                raise ValueError(f"MULT18X18D takes at most {_DSP_WIDTH}-bit operands, not "
                                 f"{width}")
        self.vendor = vendor
        super().__init__({"a": In(signed(a_width)), "b": In(signed(b_width)), "en": In(1),
                          "p": Out(signed(a_width + b_width))})

    def elaborate(self, platform):
        m = Module()
        fits = max(len(self.a), len(self.b)) <= _DSP_WIDTH
        if self.vendor or (self.vendor is None and fits
                           and getattr(platform, "family", None) == "ecp5"):
            self._ecp5(m)
            return m
        a = Signal.like(self.a, name="a_r", reset_less=True)
        b = Signal.like(self.b, name="b_r", reset_less=True)
        product = Signal.like(self.p, name="product", reset_less=True)
        out = Signal.like(self.p, name="out", reset_less=True)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), b.eq(self.b), product.eq(a * b), out.eq(product)]
        m.d.comb += self.p.eq(out)
        return m

    def _ecp5(self, m):
        a = Signal(signed(_DSP_WIDTH))
        b = Signal(signed(_DSP_WIDTH))
        p = Signal(signed(2 * _DSP_WIDTH))
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p)]
        ports = {f"i_A{bit}": a[bit] for bit in range(_DSP_WIDTH)}
        ports |= {f"i_B{bit}": b[bit] for bit in range(_DSP_WIDTH)}
        ports |= {f"i_C{bit}": Const(0) for bit in range(_DSP_WIDTH)}
        ports |= {f"o_P{bit}": p[bit] for bit in range(2 * _DSP_WIDTH)}
        registers = {}
        for reg in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
            registers |= {f"p_REG_{reg}_CLK": "CLK0", f"p_REG_{reg}_CE": "CE0",
                          f"p_REG_{reg}_RST": "RST0"}  # RST0 tied low: data registers need no reset
        m.submodules.dsp = Instance(
            "MULT18X18D",
            **registers,
            p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT",
            p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE",
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
            i_CLK0=ClockSignal(), i_CLK1=Const(0), i_CLK2=Const(0), i_CLK3=Const(0),
            i_CE0=self.en, i_CE1=Const(0), i_CE2=Const(0), i_CE3=Const(0),
            i_RST0=Const(0), i_RST1=Const(0), i_RST2=Const(0), i_RST3=Const(0),
            **ports,
        )
