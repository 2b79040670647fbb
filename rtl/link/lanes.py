"""The lanes of a die-to-die link: N data lanes with a valid per lane.

As in UCIe and BoW, a link is a bundle of data lanes plus a valid (strobe) and a forwarded
clock. In simulation and single-FPGA emulation the forwarded clock is the core clock, so
the interface carries only data and valid; the board-to-board PHY
(:mod:`chipknit.rtl.link.phy_ddr`) puts them on pins with a real forwarded clock.

Lane ``i`` carries bits ``[i * bits_per_lane : (i + 1) * bits_per_lane]`` of ``data`` each
core cycle, bit ``i * bits_per_lane`` first on the wire. ``valid`` has one bit per lane, so
that skew between lanes (:class:`~chipknit.rtl.link.interposer.Interposer`) shows on the
strobe as well as on the data; a transmitter drives all of them alike.
"""

from dataclasses import dataclass

from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["LaneParams", "LaneSignature"]


@dataclass(frozen=True)
class LaneParams:
    """Shape of a set of lanes.

    Parameters
    ----------
    lanes : int
        Data lanes.
    bits_per_lane : int
        Bits each lane carries per core cycle: 1 for SDR pins, 2 for DDR pins, more for an
        on-chip gearbox.
    """
    lanes: int = 16
    bits_per_lane: int = 1

    def __post_init__(self):
        if not isinstance(self.lanes, int) or self.lanes < 1:
            raise ValueError(f"Lanes must be a positive integer, not {self.lanes!r}")
        if not isinstance(self.bits_per_lane, int) or self.bits_per_lane < 1:
            raise ValueError(
                f"Bits per lane must be a positive integer, not {self.bits_per_lane!r}")

    @property
    def width(self) -> int:
        """Data bits per core cycle over all lanes."""
        return self.lanes * self.bits_per_lane


class LaneSignature(wiring.Signature):
    """A set of lanes, seen from the transmitter.

    Members
    -------
    data : Out(lanes * bits_per_lane)
        Lane ``i`` carries bits ``[i * bits_per_lane : (i + 1) * bits_per_lane]``.
    valid : Out(lanes)
        Per-lane valid (the forwarded strobe of UCIe/BoW): bit ``i`` qualifies lane ``i``'s
        bits this cycle. A transmitter drives every bit alike; they differ at a receiver
        only through skew or faults.
    """

    def __init__(self, params: LaneParams):
        if not isinstance(params, LaneParams):
            raise TypeError(f"Lane parameters must be a LaneParams, not {params!r}")
        self._params = params
        super().__init__({
            "data": Out(params.width),
            "valid": Out(params.lanes),
        })

    @property
    def params(self) -> LaneParams:
        return self._params

    def __eq__(self, other):
        return type(other) is type(self) and other.params == self.params

    def __repr__(self):
        return f"LaneSignature({self.params!r})"
