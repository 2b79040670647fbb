"""One end of a link as a self-checking design: what a board runs on its header pins.

When each die is its own board, each board runs one :class:`LinkEndSelfTest`: self-checking
traffic (:class:`~chipknit.rtl.traffic.SequenceGenerator` and
:class:`~chipknit.rtl.traffic.SequenceChecker` per VC) through a :class:`LinkAdapter` onto
lanes. Cable a board's transmit pins to its own receive pins and it tests itself; cable two
boards crosswise and each checks what the other sends (both run the same bitstream, so the
stream ids match).

The lanes are outside the component (``lanes_tx``/``lanes_rx``), so the same design runs in
simulation with lanes looped back through an :class:`~.interposer.Interposer` and on boards
through a :class:`~.phy_ddr.DdrPhy` (see ``chipknit.platforms``). A beat fills the lanes
(``beat_width == lanes × bits_per_lane``); one cycle in every ``idle_period`` carries no
beat, which lets the PHY's clock-crossing FIFO absorb two boards' oscillator difference.

Status outputs follow the board convention: ``ok`` once flits have arrived on every VC and
no checker has seen a lost, duplicated or corrupted flit; ``error`` (sticky) when one has;
``heartbeat`` blinks while flits arrive.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..traffic import SequenceChecker, SequenceGenerator
from .adapter import LinkAdapter
from .frame import LinkParams
from .interposer import Interposer, InterposerParams
from .lanes import LaneParams, LaneSignature
from .receiver import ReceiverStatus
from .transmitter import TransmitterStatus

__all__ = ["LinkEndParams", "LinkEndSelfTest", "LinkEndLoopback"]


@dataclass(frozen=True)
class LinkEndParams:
    """Parameters of a :class:`LinkEndSelfTest`.

    Parameters
    ----------
    link : LinkParams
        The link; ``link.beat_width`` must equal the lanes' width.
    lanes : LaneParams
        The lanes the beats go out on.
    idle_period : int
        One cycle in this many sends no beat (0: never).
    heartbeat_bits : int
        The heartbeat toggles every ``2**heartbeat_bits`` received flits.
    """
    link: LinkParams = field(default_factory=LinkParams)
    lanes: LaneParams = field(default_factory=lambda: LaneParams(lanes=8, bits_per_lane=2))
    idle_period: int = 256
    heartbeat_bits: int = 20

    def __post_init__(self):
        if not isinstance(self.link, LinkParams):
            raise TypeError(f"Link parameters must be a LinkParams, not {self.link!r}")
        if not isinstance(self.lanes, LaneParams):
            raise TypeError(f"Lane parameters must be a LaneParams, not {self.lanes!r}")
        if self.link.beat_width != self.lanes.width:
            raise ValueError(f"A {self.link.beat_width}-bit beat does not fill "
                             f"{self.lanes.lanes} lanes × {self.lanes.bits_per_lane} bits")
        for name in ("idle_period", "heartbeat_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a "
                                 f"non-negative integer, not {value!r}")
        if self.idle_period == 1:
            raise ValueError("An idle period of 1 would never send a beat")


class LinkEndSelfTest(wiring.Component):
    """Self-checking traffic through one link adapter onto lanes.

    Members
    -------
    lanes_tx : Out(LaneSignature(lanes))
    lanes_rx : In(LaneSignature(lanes))
        The lanes; ``lanes_rx.valid[0]`` qualifies a received beat.
    ok, error, heartbeat : Out(1)
        Board status (see the module docs).
    received, lost, duplicated, corrupted : Out(32).array(vcs)
        Each VC's checker counts.
    tx_status, rx_status : Out
        The adapter's counters.
    """

    def __init__(self, params: LinkEndParams = LinkEndParams()):
        if not isinstance(params, LinkEndParams):
            raise TypeError(f"Expected LinkEndParams, not {params!r}")
        self.params = params
        vcs = params.link.vcs
        super().__init__({
            "lanes_tx": Out(LaneSignature(params.lanes)),
            "lanes_rx": In(LaneSignature(params.lanes)),
            "ok": Out(1), "error": Out(1), "heartbeat": Out(1),
            "received": Out(32).array(vcs), "lost": Out(32).array(vcs),
            "duplicated": Out(32).array(vcs), "corrupted": Out(32).array(vcs),
            "tx_status": Out(TransmitterStatus(params.link)),
            "rx_status": Out(ReceiverStatus(params.link)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.adapter = adapter = LinkAdapter(p.link)
        wiring.connect(m, adapter.tx_status, wiring.flipped(self.tx_status))
        wiring.connect(m, adapter.rx_status, wiring.flipped(self.rx_status))

        # Beats onto the lanes, with an idle cycle every ``idle_period``.
        send = Signal()
        if p.idle_period:
            phase = Signal(range(p.idle_period))
            m.d.sync += phase.eq(phase + 1)
            with m.If(phase == p.idle_period - 1):
                m.d.sync += phase.eq(0)
            m.d.comb += send.eq(phase != p.idle_period - 1)
        else:
            m.d.comb += send.eq(1)
        m.d.comb += adapter.tx.ready.eq(send)
        m.d.sync += [
            self.lanes_tx.data.eq(adapter.tx.payload),
            self.lanes_tx.valid.eq((adapter.tx.valid & send).replicate(p.lanes.lanes)),
        ]
        m.d.comb += [adapter.rx.valid.eq(self.lanes_rx.valid[0]),
                     adapter.rx.payload.eq(self.lanes_rx.data)]

        arrived_all = 1
        bad = 0
        flits = 0
        for vc in range(p.link.vcs):
            generator = m.submodules[f"generator_{vc}"] = SequenceGenerator(
                p.link.flit_width, vc)
            checker = m.submodules[f"checker_{vc}"] = SequenceChecker(p.link.flit_width, vc)
            wiring.connect(m, generator.o, adapter.i[vc])
            wiring.connect(m, adapter.o[vc], checker.i)
            m.d.comb += [
                generator.enable.eq(1),
                self.received[vc].eq(checker.received), self.lost[vc].eq(checker.lost),
                self.duplicated[vc].eq(checker.duplicated),
                self.corrupted[vc].eq(checker.corrupted),
            ]
            arrived_all = arrived_all & (checker.received != 0)
            bad = bad | (checker.lost != 0) | (checker.duplicated != 0) | (
                checker.corrupted != 0)
            flits = flits + checker.received
        error = Signal()
        with m.If(bad):
            m.d.sync += error.eq(1)
        m.d.comb += [self.error.eq(error), self.ok.eq(arrived_all & ~error)]
        if p.heartbeat_bits:
            m.d.comb += self.heartbeat.eq(flits[p.heartbeat_bits])
        else:
            m.d.comb += self.heartbeat.eq(flits[0])
        return m


class LinkEndLoopback(wiring.Component):
    """A :class:`LinkEndSelfTest` whose lanes loop back through an :class:`Interposer`.

    What a board does with a loopback cable, in simulation or inside one FPGA. The
    interposer's fault controls are inputs (see :class:`~.interposer.Interposer`).

    Members
    -------
    error_threshold, stuck_mask, stuck_value : In
        The interposer's bit-error threshold and stuck lanes.
    wire_errors : Out(32)
        Bits the interposer flipped.
    ok, error, heartbeat, received, lost, duplicated, corrupted, tx_status, rx_status : Out
        As :class:`LinkEndSelfTest`.
    """

    def __init__(self, params: LinkEndParams = LinkEndParams(), *, error_bits: int = 32,
                 seed: int = 1):
        self.params = params
        self.interposer_params = InterposerParams(
            lane_params=params.lanes, max_delay=0, error_bits=error_bits, seed=seed,
            counter_width=32)
        self._end = LinkEndSelfTest(params)
        members = {name: member for name, member in self._end.signature.members.items()
                   if name not in ("lanes_tx", "lanes_rx")}
        super().__init__({
            "error_threshold": In(error_bits),
            "stuck_mask": In(params.lanes.lanes),
            "stuck_value": In(params.lanes.lanes),
            "wire_errors": Out(32),
            **members,
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.end = end = self._end
        m.submodules.interposer = wires = Interposer(self.interposer_params)
        wiring.connect(m, end.lanes_tx, wires.tx)
        wiring.connect(m, wires.rx, end.lanes_rx)
        m.d.comb += [wires.error_threshold.eq(self.error_threshold),
                     wires.stuck_mask.eq(self.stuck_mask),
                     wires.stuck_value.eq(self.stuck_value),
                     self.wire_errors.eq(wires.errors)]
        wiring.connect(m, end.tx_status, wiring.flipped(self.tx_status))
        wiring.connect(m, end.rx_status, wiring.flipped(self.rx_status))
        m.d.comb += [getattr(self, name).eq(getattr(end, name))
                     for name in ("ok", "error", "heartbeat")]
        for name in ("received", "lost", "duplicated", "corrupted"):
            m.d.comb += [ours.eq(theirs)
                         for ours, theirs in zip(getattr(self, name), getattr(end, name),
                                                 strict=True)]
        return m
