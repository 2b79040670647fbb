"""The systolic array's multiplier, in three mappings chosen by parameter, and the
pipelined DSP product the requantiser uses too.

- ``"infer"``: ``a * b`` with a register on the operands, one after the product and one
  on the output (latency 3, :class:`DspProduct`). Portable: in simulation and on other
  FPGAs it is plain registers around ``a * b`` (Yosys maps each product to a DSP where it
  can: SB_MAC16 on iCE40, which absorbs the registers). On an ECP5 platform it is a
  MULT18X18D with those three registers inside it, as ``"ecp5_dsp"``: Yosys never packs
  fabric registers into the DSP itself, and without them an 8×8 array ran at 73 MHz
  instead of 161 MHz (design.md §5).
- ``"lut"``: a shift-add tree of the partial products of ``b``'s bits (latency 2, one
  register in the middle of the tree); never uses a DSP (~2-4x smaller than ``a * b``
  synthesised with ``-nodsp``).
- ``"ecp5_dsp"``: an ``Instance("MULT18X18D")`` with its input, pipeline and output
  registers enabled (latency 3) on every platform. ECP5 only: it neither simulates nor
  lints without the vendor cell library.

``latency`` may ask for more cycles than the mapping needs: extra registers go on the
product, so cells of different mappings line up in one array (``ecp5_mixed`` arrays pad
their ``lut`` cells to the DSP cells' 3 cycles).
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
        for index in range(self.latency - MAC_LATENCY[self.kind]):
            padded = Signal(signed(2 * self.width), name=f"pad{index}")
            m.d.sync += padded.eq(product)
            product = padded
        m.d.comb += self.p.eq(product)
        return m

    def _shift_add(self, m, product):
        # b = -b[w-1]*2**(w-1) + sum b[i]*2**i: one partial product per bit of b, summed
        # in pairs into a register, then the pairs summed into p.
        width = self.width
        terms = []
        for bit in range(width):
            term = Signal(signed(2 * width), name=f"pp{bit}")
            shifted = (self.a << bit) if bit < width - 1 else -(self.a << bit)
            with m.If(self.b[bit]):
                m.d.comb += term.eq(shifted)
            terms.append(term)
        pairs = []
        for index in range(0, len(terms), 2):
            pair = Signal(signed(2 * width), name=f"pair{index // 2}")
            m.d.sync += pair.eq(sum(terms[index:index + 2]))
            pairs.append(pair)
        m.d.sync += product.eq(sum(pairs))


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
