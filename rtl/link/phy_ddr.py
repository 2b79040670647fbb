"""Board-to-board lanes: a :class:`LaneSignature` on DDR pins with a forwarded clock.

When each die is its own FPGA board, the lanes leave through I/O pins. :class:`DdrPhy`
carries ``bits_per_lane = 2`` per core cycle on each data pin with
:class:`amaranth.lib.io.DDRBuffer` (ECP5 ``ODDRX1F``/``IDDRX1F``, iCE40 ``SB_IO`` DDR
modes), sends a forwarded clock beside the data and receives the far end's forwarded
clock, data and valid.

Transmit (core ``sync`` domain): lane ``i``'s bit ``2i`` goes out in the first half of the
cycle (``o[0]``, after the rising edge), bit ``2i + 1`` in the second half. ``valid`` goes
out on both halves. The forwarded clock is a DDR output of ``(1, 0)`` clocked by
``clock_out_domain``: with ``"sync"`` it is edge-aligned with the data (edges at the data
transitions); give it a domain running at the core clock shifted by 90 degrees (from a PLL)
for a centre-aligned clock.

Receive: the far end's forwarded clock clocks a local domain (``rx_domain``) whose reset is
the core reset, synchronised. The DDR input buffer samples data and valid in it;
``i[0]`` becomes bit ``2i`` and ``i[1]`` bit ``2i + 1``. Cycles with ``valid`` set are
written into an :class:`~amaranth.lib.fifo.AsyncFIFO` and come out in the core domain on
``rx``; cycles without ``valid`` are not kept, which is what absorbs the small frequency
difference of two boards' oscillators, so the transmitter must leave some cycles without
``valid`` (a few per thousand is plenty for two crystals), or the boards must share a clock.
A word that meets a full FIFO is dropped and counted in ``rx_overflows`` (drops in
consecutive receive cycles may count once: the count crosses clock domains as pulses).

What is and is not verified: this module elaborates and converts for the ECP5 (ULX3S) and
iCE40 (iCEBreaker) platforms (``tests/test_phy_ddr.py``, which checks the vendor DDR
primitives are instantiated); it has not been simulated (the DDR primitives have no
simulation model in Amaranth) nor run on boards. The input sampling phase, which half of a
received pair arrives as ``i[0]`` on each family, and the platform's I/O latencies are
unverified; so are timing constraints on the forwarded clock input (it should sit on a
clock-capable pin).
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Module, Mux, ResetSignal, Signal
from amaranth.lib import cdc, fifo, io, wiring
from amaranth.lib.wiring import In, Out

from ..credit import SaturatingCounter
from .lanes import LaneParams, LaneSignature

__all__ = ["DdrPhyParams", "DdrPhyPins", "DdrPhy"]


@dataclass(frozen=True)
class DdrPhyParams:
    """Parameters of a :class:`DdrPhy`.

    Parameters
    ----------
    lane_params : LaneParams
        The lanes; ``bits_per_lane`` must be 2 (one bit per clock edge).
    shared_valid : bool
        One valid pin per direction, carrying ``tx.valid[0]`` and fanned out to every
        ``rx.valid`` bit (as UCIe's single valid); else one valid pin per lane.
    fifo_depth : int
        Entries of the receive clock-crossing FIFO (a power of two).
    counter_width : int
        Width of ``rx_overflows``.
    mesochronous : bool
        Both ends run from one clock (one forwards its core clock and the other makes its
        own from it): every received word crosses into the core domain, idle ones too
        (``valid`` low), which a link trainer's training frames need. Otherwise only words
        with ``valid`` cross, and the sender must idle now and then to absorb two
        oscillators' difference.
    """
    lane_params: LaneParams = field(default_factory=lambda: LaneParams(lanes=4, bits_per_lane=2))
    shared_valid: bool = True
    fifo_depth: int = 8
    counter_width: int = 16
    mesochronous: bool = False

    def __post_init__(self):
        if not isinstance(self.lane_params, LaneParams):
            raise TypeError(f"Lane parameters must be a LaneParams, not {self.lane_params!r}")
        if self.lane_params.bits_per_lane != 2:
            raise ValueError(f"A DDR PHY carries 2 bits per lane per cycle, not "
                             f"{self.lane_params.bits_per_lane}")
        depth = self.fifo_depth
        if not isinstance(depth, int) or depth < 4 or depth & (depth - 1):
            raise ValueError(f"FIFO depth must be a power of two of at least 4, not {depth!r}")
        if not isinstance(self.counter_width, int) or self.counter_width < 1:
            raise ValueError(
                f"Counter width must be a positive integer, not {self.counter_width!r}")

    @property
    def valid_pins(self) -> int:
        return 1 if self.shared_valid else self.lane_params.lanes


@dataclass(frozen=True)
class DdrPhyPins:
    """The pins of one end of a board-to-board link, as :class:`amaranth.lib.io.PortLike`
    objects (e.g. from ``platform.request(..., dir="-")``; ``platforms/`` names them).

    ``tx_data`` and ``rx_data`` have one pin per lane, ``tx_valid``/``rx_valid`` one pin or
    one per lane (:attr:`DdrPhyParams.shared_valid`), ``tx_clk``/``rx_clk`` one pin each.
    """
    tx_data: io.PortLike
    tx_valid: io.PortLike
    tx_clk: io.PortLike
    rx_data: io.PortLike
    rx_valid: io.PortLike
    rx_clk: io.PortLike


class DdrPhy(wiring.Component):
    """Lanes on DDR pins with a forwarded clock; see the module documentation.

    Members
    -------
    tx : In(LaneSignature(lane_params))
        From the link layer's transmitter (core domain).
    rx : Out(LaneSignature(lane_params))
        To the link layer's receiver (core domain): words the far end sent with ``valid``.
    rx_overflows : Out(counter_width)
        Times received words were dropped at a full clock-crossing FIFO (a run of drops in
        consecutive receive cycles may count once).
    rx_clock : Out(1)
        The forwarded receive clock as it comes off its pin (to clock a PLL from the far
        end's clock, :attr:`DdrPhyParams.mesochronous`).
    """

    def __init__(self, params: DdrPhyParams, pins: DdrPhyPins, *,
                 clock_out_domain: str = "sync", rx_domain: str = "link_rx"):
        if not isinstance(params, DdrPhyParams):
            raise TypeError(f"PHY parameters must be a DdrPhyParams, not {params!r}")
        lanes = params.lane_params.lanes
        widths = {"tx_data": lanes, "rx_data": lanes, "tx_valid": params.valid_pins,
                  "rx_valid": params.valid_pins, "tx_clk": 1, "rx_clk": 1}
        for name, width in widths.items():
            port = getattr(pins, name)
            if not isinstance(port, io.PortLike):
                raise TypeError(f"Pin {name} must be a PortLike, not {port!r}")
            if len(port) != width:
                raise ValueError(f"Pin {name} must be {width} wide, not {len(port)}")
        self.params = params
        self.pins = pins
        self._clock_out_domain = clock_out_domain
        self._rx_domain = rx_domain
        super().__init__({
            "tx": In(LaneSignature(params.lane_params)),
            "rx": Out(LaneSignature(params.lane_params)),
            "rx_overflows": Out(params.counter_width),
            "rx_clock": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, pins = self.params, self.pins
        lanes = p.lane_params.lanes
        shared = p.shared_valid

        # Transmit: two bits per lane per cycle, valid on both halves, clock as (1, 0).
        m.submodules.tx_data = tx_data = io.DDRBuffer("o", pins.tx_data)
        m.submodules.tx_valid = tx_valid = io.DDRBuffer("o", pins.tx_valid)
        m.submodules.tx_clk = tx_clk = io.DDRBuffer("o", pins.tx_clk,
                                                    o_domain=self._clock_out_domain)
        valid_out = self.tx.valid[0] if shared else self.tx.valid
        m.d.comb += [
            tx_data.o[0].eq(Cat(self.tx.data[2 * lane] for lane in range(lanes))),
            tx_data.o[1].eq(Cat(self.tx.data[2 * lane + 1] for lane in range(lanes))),
            tx_valid.o[0].eq(valid_out),
            tx_valid.o[1].eq(valid_out),
            tx_clk.o[0].eq(1),
            tx_clk.o[1].eq(0),
        ]

        # Receive: the forwarded clock clocks a local domain; reset is the core reset.
        rx = self._rx_domain
        m.domains += ClockDomain(rx, local=True)
        m.submodules.rx_clk = rx_clk = io.Buffer("i", pins.rx_clk)
        m.d.comb += [ClockSignal(rx).eq(rx_clk.i), self.rx_clock.eq(rx_clk.i)]
        m.submodules.rx_reset = cdc.ResetSynchronizer(ResetSignal("sync", allow_reset_less=True),
                                                      domain=rx)
        m.submodules.rx_data = rx_data = io.DDRBuffer("i", pins.rx_data, i_domain=rx)
        m.submodules.rx_valid = rx_valid = io.DDRBuffer("i", pins.rx_valid, i_domain=rx)

        data_in = Cat(Cat(rx_data.i[0][lane], rx_data.i[1][lane]) for lane in range(lanes))
        valid_in = rx_valid.i[0]
        width = p.lane_params.width + p.valid_pins
        m.submodules.crossing = crossing = fifo.AsyncFIFO(
            width=width, depth=p.fifo_depth, w_domain=rx, r_domain="sync")
        m.d.comb += [
            crossing.w_data.eq(Cat(data_in, valid_in)),
            crossing.w_en.eq(1 if p.mesochronous else valid_in.any()),
        ]
        # Overflow: flagged in the receive domain, counted in the core domain.
        overflow = Signal()
        m.d[rx] += overflow.eq(crossing.w_en & ~crossing.w_rdy)
        overflow_seen = Signal()
        m.submodules.overflow_sync = cdc.PulseSynchronizer(i_domain=rx, o_domain="sync")
        m.d.comb += [
            m.submodules.overflow_sync.i.eq(overflow),
            overflow_seen.eq(m.submodules.overflow_sync.o),
        ]
        m.submodules.overflows = overflows = SaturatingCounter(p.counter_width)
        m.d.comb += [overflows.inc.eq(overflow_seen), self.rx_overflows.eq(overflows.count)]

        word_valid = crossing.r_data[p.lane_params.width:]
        m.d.comb += [
            crossing.r_en.eq(1),
            self.rx.data.eq(crossing.r_data[:p.lane_params.width]),
            self.rx.valid.eq(Mux(crossing.r_rdy,
                                 word_valid.replicate(lanes) if shared else word_valid, 0)),
        ]
        return m
