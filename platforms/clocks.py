"""The core clock of a board design: the board's oscillator as it is, or an ECP5 PLL.

A design that runs faster than the board's oscillator (the ULX3S has 25 MHz) gets its
``sync`` domain from :class:`Ecp5Pll`, an ``EHXPLLL`` whose dividers
:func:`ecp5_pll_dividers` chooses the way Lattice's and Project Trellis's ``ecppll`` do:
the phase detector between 3.125 and 400 MHz, the VCO between 400 and 800 MHz, the output
as close to the request as the integer dividers allow. The domain is reset the way
Amaranth resets the oscillator's: it is reset-less, and the global set/reset (``SGSR``, driven
through two flip-flops on the PLL's clock) holds every flip-flop at its initial value until
the PLL reports lock. A domain reset would instead be a net from one flip-flop to the
reset logic of every flip-flop across the die: with one, the default package placed at an
estimated 62 MHz against 81 (docs/build.md, *The default clock*). The output frequency is
given to nextpnr as a clock constraint, so the build's timing report is against the
frequency the design really runs at.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal

__all__ = ["PllDividers", "ecp5_pll_dividers", "Ecp5Pll"]

_PFD_MHZ = (3.125, 400.0)
_VCO_MHZ = (400.0, 800.0)
_OUT_MHZ = (3.125, 400.0)


@dataclass(frozen=True)
class PllDividers:
    """Dividers of an ``EHXPLLL`` with its feedback from CLKOP."""
    clki_div: int
    clkfb_div: int
    clkop_div: int
    input_mhz: float

    @property
    def output_mhz(self) -> float:
        return self.input_mhz * self.clkfb_div / self.clki_div

    @property
    def vco_mhz(self) -> float:
        return self.output_mhz * self.clkop_div

    @property
    def cphase(self) -> int:
        # The coarse phase ecppll writes for a 0-degree output fed back to itself.
        return self.clkop_div // 2


def ecp5_pll_dividers(input_mhz: float, output_mhz: float) -> PllDividers:
    """Dividers giving the output nearest ``output_mhz`` (within 1 %) from ``input_mhz``.

    Raises
    ------
    ValueError
        The request is outside the PLL's range, or no divider set comes within 1 %.
    """
    if not _OUT_MHZ[0] <= output_mhz <= _OUT_MHZ[1]:
        raise ValueError(f"An ECP5 PLL output must be {_OUT_MHZ[0]}–{_OUT_MHZ[1]} MHz, not "
                         f"{output_mhz:g}")
    best = None
    for clki_div in range(1, 129):
        pfd = input_mhz / clki_div
        if not _PFD_MHZ[0] <= pfd <= _PFD_MHZ[1]:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            for clkop_div in range(1, 129):
                if not _VCO_MHZ[0] <= out * clkop_div <= _VCO_MHZ[1]:
                    continue
                # Nearest output first; among equals, the VCO nearest the middle of its range.
                score = (abs(out - output_mhz), abs(out * clkop_div - sum(_VCO_MHZ) / 2))
                if best is None or score < best[0]:
                    best = (score, PllDividers(clki_div, clkfb_div, clkop_div, input_mhz))
    if best is None or best[0][0] > 0.01 * output_mhz:
        raise ValueError(f"No ECP5 PLL setting makes {output_mhz:g} MHz from {input_mhz:g} "
                         f"MHz within 1 %")
    return best[1]


class Ecp5Pll(Elaboratable):
    """An ``EHXPLLL`` making the ``sync`` domain at ``output_mhz`` from the board clock.

    Parameters
    ----------
    clk_in : Signal
        The board oscillator (its pin buffer's output).
    input_mhz, output_mhz : float

    Attributes
    ----------
    dividers : PllDividers
    locked : Signal
        The PLL's lock output (the global set/reset holds the design while it is low).
    """

    def __init__(self, clk_in, input_mhz: float, output_mhz: float):
        self.clk_in = clk_in
        self.dividers = ecp5_pll_dividers(input_mhz, output_mhz)
        self.locked = Signal()

    @property
    def output_hz(self) -> float:
        return self.dividers.output_mhz * 1e6

    def elaborate(self, platform):
        m = Module()
        d = self.dividers
        m.domains.sync = domain = ClockDomain("sync", reset_less=True)
        clk = domain.clk
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{d.input_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{d.output_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=d.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=d.clkop_div,
            p_CLKOP_CPHASE=d.cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=d.clkfb_div,
            i_CLKI=self.clk_in, i_CLKFB=clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
            i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0,
            i_ENCLKOP=0, o_CLKOP=clk, o_LOCK=self.locked,
        )
        # As Amaranth's ECP5 platform does for the oscillator: two flip-flops outside GSR
        # (PUR clears them at configuration) release SGSR a few cycles after lock.
        gsr0, gsr1 = Signal(), Signal()
        m.submodules += [
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk, i_D=self.locked, o_Q=gsr0),
            Instance("FD1S3AX", p_GSR="DISABLED", i_CK=clk, i_D=gsr0, o_Q=gsr1),
            Instance("SGSR", i_CLK=clk, i_GSR=gsr1),
        ]
        if platform is not None:
            platform.add_clock_constraint(clk, self.output_hz)
        return m
