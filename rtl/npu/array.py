"""Weight-stationary systolic array: R×C signed multiply-accumulate cells.

Why weight-stationary: each cell holds its weight and passes activations right and partial
sums down, so a cell is a multiplier, one adder and registers — no per-cell clear or readout
multiplexer as output-stationary needs. On ECP5 that was 31 % against 47 % of the LUTs for a
16×16 array (design.md §5). The weights of the next tile shift into a shadow register chain
while the current tile computes, so a GEMM streams with no reload bubble.
"""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .mac import MAC_KINDS, MAC_LATENCY, Multiplier

__all__ = ["ArrayParams", "SystolicArray"]


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class ArrayParams:
    """Parameters of a :class:`SystolicArray`.

    Parameters
    ----------
    rows : int
        R, the reduction (K) dimension of one weight tile.
    cols : int
        C, the output channels (N) of one weight tile.
    operand_width : int
        Signed width of activations and weights. 9 holds an int8 value minus an int8 zero
        point, which is what the GEMM engine feeds.
    mac : str
        How products map onto the FPGA: ``"infer"``, ``"lut"`` or ``"ecp5_dsp"``
        (see :mod:`chipknit.rtl.npu.mac`), or ``"ecp5_mixed"``: the first ``dsp_cells``
        cells (row-major) are ``ecp5_dsp``, the rest ``lut`` padded to the same latency.
    dsp_cells : int
        ``ecp5_mixed`` only: how many cells get a MULT18X18D (the part's DSP budget; 156
        on an LFE5U-85F).
    """
    rows: int = 4
    cols: int = 4
    operand_width: int = 9
    mac: str = "infer"
    dsp_cells: int = 0

    def __post_init__(self):
        _positive("Rows", self.rows)
        _positive("Columns", self.cols)
        _positive("Operand width", self.operand_width)
        if self.mac not in MAC_KINDS + ("ecp5_mixed",):
            raise ValueError(f"MAC kind must be one of {', '.join(MAC_KINDS)}, ecp5_mixed, "
                             f"not {self.mac!r}")
        if not isinstance(self.dsp_cells, int) or isinstance(self.dsp_cells, bool) \
                or not 0 <= self.dsp_cells <= self.rows * self.cols:
            raise ValueError(f"DSP cells must be an integer in [0, {self.rows * self.cols}], "
                             f"not {self.dsp_cells!r}")
        if self.dsp_cells and self.mac != "ecp5_mixed":
            raise ValueError(f"DSP cells only apply to the ecp5_mixed mapping, not "
                             f"{self.mac!r}")

    @property
    def mac_latency(self) -> int:
        """Cycles of every cell's multiplier."""
        return MAC_LATENCY["ecp5_dsp" if self.mac == "ecp5_mixed" else self.mac]

    def cell_mac(self, row: int, col: int) -> str:
        """The mapping of cell (row, col)'s multiplier."""
        if self.mac != "ecp5_mixed":
            return self.mac
        return "ecp5_dsp" if row * self.cols + col < self.dsp_cells else "lut"

    @property
    def psum_width(self) -> int:
        """Signed width of a column's sum of ``rows`` products: it never overflows."""
        return 2 * self.operand_width + (self.rows - 1).bit_length()

    @property
    def latency(self) -> int:
        """Cycles from an activation row at ``a`` to its result row at ``o``."""
        return self.rows + self.cols + self.mac_latency

    @property
    def swap_hold(self) -> int:
        """After a row with ``swap``, cycles before the next ``w_load`` may come: the swap
        must have reached the last cell before the shadow chain moves."""
        return self.rows + self.cols - 1


class _Cell(wiring.Component):
    """One multiply-accumulate cell (internal to :class:`SystolicArray`)."""

    def __init__(self, params: ArrayParams, mac: str):
        self._params = params
        self._mac = mac
        op = signed(params.operand_width)
        super().__init__({
            "a_in": In(op), "swap_in": In(1), "psum_in": In(signed(params.psum_width)),
            "w_in": In(op), "w_load": In(1),
            "a_out": Out(op), "swap_out": Out(1), "psum_out": Out(signed(params.psum_width)),
            "w_out": Out(op),
        })

    def elaborate(self, platform):
        m = Module()
        p = self._params
        weight = Signal(signed(p.operand_width))
        # a_out and swap_out are the registers the activation passes through.
        m.d.sync += [self.a_out.eq(self.a_in), self.swap_out.eq(self.swap_in)]
        with m.If(self.w_load):
            m.d.sync += self.w_out.eq(self.w_in)       # the shadow weight
        with m.If(self.swap_in):
            m.d.sync += weight.eq(self.w_out)          # becomes active with the new tile
        m.submodules.mul = mul = Multiplier(p.operand_width, self._mac, p.mac_latency)
        m.d.comb += [mul.a.eq(self.a_out), mul.b.eq(weight)]
        m.d.sync += self.psum_out.eq(self.psum_in + mul.p)
        return m


class SystolicArray(wiring.Component):
    """R×C weight-stationary systolic array: ``o = a @ W`` per row, fixed latency.

    Protocol (no handshake; the array never stalls):

    - **Weights.** Each cycle with ``w_load`` shifts the row ``w`` into the top of the
      shadow weight chain; after R loads, the row loaded first is weight row R-1 and the
      last is row 0 (load rows R-1 down to 0). Shadow weights do not affect results.
    - **Activations.** Each cycle with ``a_valid`` presents an activation row ``a`` (R
      values, unskewed; the array skews it). ``swap`` on a row makes the shadow weights
      active for that row and every later one. No ``w_load`` may come until
      :attr:`ArrayParams.swap_hold` cycles after the ``swap`` row.
    - **Results.** :attr:`ArrayParams.latency` cycles after a row entered, ``o`` holds
      ``sum_r a[r] * W[r][c]`` for each column c, with ``o_valid``.

    A reset clears the pipeline and the active weights; results in flight are lost.

    Attributes
    ----------
    a : In(ArrayLayout(signed(operand_width), rows))
    a_valid, swap : In(1)
    w : In(ArrayLayout(signed(operand_width), cols))
    w_load : In(1)
    o : Out(ArrayLayout(signed(psum_width), cols))
    o_valid : Out(1)
    """

    def __init__(self, params: ArrayParams = ArrayParams()):
        if not isinstance(params, ArrayParams):
            raise TypeError(f"Expected ArrayParams, not {params!r}")
        self.params = params
        op = signed(params.operand_width)
        super().__init__({
            "a": In(data.ArrayLayout(op, params.rows)),
            "a_valid": In(1),
            "swap": In(1),
            "w": In(data.ArrayLayout(op, params.cols)),
            "w_load": In(1),
            "o": Out(data.ArrayLayout(signed(params.psum_width), params.cols)),
            "o_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        rows, cols = p.rows, p.cols

        def delay(value, cycles, name):
            for index in range(cycles):
                reg = Signal(value.shape(), name=f"{name}_d{index + 1}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        cells = [[_Cell(p, p.cell_mac(r, c)) for c in range(cols)] for r in range(rows)]
        for r in range(rows):
            for c in range(cols):
                cell = cells[r][c]
                m.submodules[f"cell_{r}_{c}"] = cell
                if c == 0:
                    # Skew: row r enters r cycles later than row 0.
                    m.d.comb += [cell.a_in.eq(delay(self.a[r], r, f"skew_a{r}")),
                                 cell.swap_in.eq(delay(self.swap, r, f"skew_swap{r}"))]
                else:
                    left = cells[r][c - 1]
                    m.d.comb += [cell.a_in.eq(left.a_out), cell.swap_in.eq(left.swap_out)]
                if r == 0:
                    m.d.comb += [cell.psum_in.eq(0), cell.w_in.eq(self.w[c])]
                else:
                    above = cells[r - 1][c]
                    m.d.comb += [cell.psum_in.eq(above.psum_out), cell.w_in.eq(above.w_out)]
                m.d.comb += cell.w_load.eq(self.w_load)
        for c in range(cols):
            # Deskew: column c leaves c cycles after column 0; delay it to line up.
            m.d.comb += self.o[c].eq(delay(cells[rows - 1][c].psum_out, cols - 1 - c,
                                           f"deskew_o{c}"))
        m.d.comb += self.o_valid.eq(delay(self.a_valid, p.latency, "valid"))
        return m
