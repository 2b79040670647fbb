"""A link end with training, and two of them over interposers (the test top).

:class:`TrainedLinkEnd` is what a die instantiates: a
:class:`~chipknit.rtl.link.adapter.LinkAdapter` whose beats go through a
:class:`~chipknit.rtl.link.training.LinkTrainer` to the lanes. It also keeps the one
counter that must survive an adapter reset: ``lost_flits``, an upper bound on the flits
this end sent that an adapter reset may have lost (see ``docs/link.md``, *Training*).

:class:`TrainedLinkPair` joins two ends with one
:class:`~chipknit.rtl.link.interposer.Interposer` per direction, whose fault controls and
each end's restart are inputs: the simulation top for training, repair and retraining.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .adapter import LinkAdapter
from .interposer import Interposer, InterposerParams
from .lanes import LaneSignature
from .receiver import ReceiverStatus
from .training import LinkTrainer, TrainingParams, TrainingStatus
from .transmitter import TransmitterStatus

__all__ = ["TrainedLinkEnd", "TrainedLinkPair"]


class TrainedLinkEnd(wiring.Component):
    """One end of a trained link: adapter + trainer.

    Members
    -------
    i, o : flit streams per VC, as on :class:`LinkAdapter`.
    lanes_tx : Out(LaneSignature(lanes))
    lanes_rx : In(LaneSignature(lanes))
    restart : In(1)
        Reset this end's link (adapter and training); status counters are kept. Flits the
        adapter held are lost and counted in ``lost_flits`` (as an upper bound).
    training : Out(TrainingStatus)
    tx_status, rx_status : Out
        The adapter's counters (they restart with the adapter).
    lost_flits : Out(counter_width)
        Sum, over every adapter reset, of the flits this end had sent and not yet seen
        credited back (``rx_credits - credits`` per VC): every flit an adapter reset lost
        in this end's sending direction is counted here (some delivered ones may be too).
    link_down : Out(1)
        The adapter is held in reset (training, a link reset, ``restart``): flits it held
        are gone, so a packet it was delivering will not be finished (what a NoC↔link
        bridge's ``peer_reset`` wants to know).
    """

    def __init__(self, params: TrainingParams = TrainingParams()):
        if not isinstance(params, TrainingParams):
            raise TypeError(f"Training parameters must be a TrainingParams, not {params!r}")
        self.params = params
        link = params.link
        flits = stream.Signature(link.flit_width)
        super().__init__({
            "i": In(flits).array(link.vcs),
            "o": Out(flits).array(link.vcs),
            "lanes_tx": Out(LaneSignature(params.lanes)),
            "lanes_rx": In(LaneSignature(params.lanes)),
            "restart": In(1),
            "training": Out(TrainingStatus(params)),
            "tx_status": Out(TransmitterStatus(link)),
            "rx_status": Out(ReceiverStatus(link)),
            "lost_flits": Out(params.counter_width),
            "link_down": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, link = self.params, self.params.link
        m.submodules.trainer = trainer = LinkTrainer(p)
        adapter = LinkAdapter(link)
        m.submodules.adapter = ResetInserter(trainer.adapter_reset)(adapter)
        # No flit crosses in a cycle the adapter resets: it would be taken (or handed out)
        # and then forgotten without passing through the credits that count losses.
        running = ~trainer.adapter_reset
        m.d.comb += self.link_down.eq(trainer.adapter_reset)
        for vc in range(link.vcs):
            m.d.comb += [
                adapter.i[vc].valid.eq(self.i[vc].valid & running),
                adapter.i[vc].payload.eq(self.i[vc].payload),
                self.i[vc].ready.eq(adapter.i[vc].ready & running),
                self.o[vc].valid.eq(adapter.o[vc].valid & running),
                self.o[vc].payload.eq(adapter.o[vc].payload),
                adapter.o[vc].ready.eq(self.o[vc].ready & running),
            ]
        wiring.connect(m, adapter.tx, trainer.up_tx)
        # Received beats are registered between the trainer's lane mapping and the
        # adapter's receiver (it takes every beat: no ready), so the two blocks' logic is
        # not one timing path; a beat waiting in the register when the adapter resets is
        # dropped with it.
        rx_valid = Signal()
        rx_payload = Signal(link.beat_width)
        m.d.sync += [rx_valid.eq(trainer.up_rx.valid & ~trainer.adapter_reset),
                     rx_payload.eq(trainer.up_rx.payload)]
        m.d.comb += [trainer.up_rx.ready.eq(1), adapter.rx.valid.eq(rx_valid),
                     adapter.rx.payload.eq(rx_payload)]
        wiring.connect(m, trainer.lanes_tx, wiring.flipped(self.lanes_tx))
        wiring.connect(m, wiring.flipped(self.lanes_rx), trainer.lanes_rx)
        wiring.connect(m, trainer.status, wiring.flipped(self.training))
        wiring.connect(m, adapter.tx_status, wiring.flipped(self.tx_status))
        wiring.connect(m, adapter.rx_status, wiring.flipped(self.rx_status))
        m.d.comb += [trainer.restart.eq(self.restart),
                     trainer.crc_errors.eq(adapter.rx_status.crc_errors),
                     trainer.header_errors.eq(adapter.rx_status.header_errors)]

        # At the first cycle of an adapter reset its credits still hold what was in flight.
        resetting = Signal()
        m.d.sync += resetting.eq(trainer.adapter_reset)
        at_risk = sum(link.rx_credits - adapter.tx_status.credits[vc] for vc in range(link.vcs))
        top = (1 << p.counter_width) - 1
        total = Signal(p.counter_width + 1)
        m.d.comb += total.eq(self.lost_flits + at_risk)
        with m.If(trainer.adapter_reset & ~resetting):
            m.d.sync += self.lost_flits.eq(Mux(total[-1], top, total[:-1]))
        return m


class TrainedLinkPair(wiring.Component):
    """Ends ``a`` and ``b``, an interposer each way (``ab``: a → b, ``ba``: b → a).

    Members
    -------
    a_i, b_i, a_o, b_o : flit streams per VC.
    a_restart, b_restart : In(1)
        Reset one end's link (see :class:`TrainedLinkEnd`).
    ab_delay, ab_error_threshold, ab_stuck_mask, ab_stuck_value, ab_reverse : In
        The a → b interposer's controls (and ``ba_*`` for b → a), as on
        :class:`~chipknit.rtl.link.interposer.Interposer`.
    a_training, b_training : Out(TrainingStatus)
    a_tx_status, a_rx_status, b_tx_status, b_rx_status : Out
    a_lost_flits, b_lost_flits : Out(counter_width)
    ab_errors, ba_errors : Out(32)
        Bit errors each interposer injected.
    """

    def __init__(self, params: TrainingParams = TrainingParams(), max_delay: int = 11,
                 seeds: tuple[int, int] = (1, 2)):
        if not isinstance(max_delay, int) or max_delay < 0:
            raise ValueError(f"Maximum delay must be a non-negative integer, not {max_delay!r}")
        self.params, self.seeds = params, seeds
        link = params.link
        self.interposer_params = [InterposerParams(params.lanes, max_delay=max_delay,
                                                   error_bits=32, seed=seed)
                                  for seed in seeds]
        ip = self.interposer_params[0]
        flits = stream.Signature(link.flit_width)
        members = {}
        for end in ("a", "b"):
            members |= {
                f"{end}_i": In(flits).array(link.vcs),
                f"{end}_o": Out(flits).array(link.vcs),
                f"{end}_restart": In(1),
                f"{end}_training": Out(TrainingStatus(params)),
                f"{end}_tx_status": Out(TransmitterStatus(link)),
                f"{end}_rx_status": Out(ReceiverStatus(link)),
                f"{end}_lost_flits": Out(params.counter_width),
            }
        lanes = params.lanes.lanes
        for way in ("ab", "ba"):
            members |= {
                f"{way}_delay": In(lanes * ip.delay_bits),
                f"{way}_error_threshold": In(ip.error_bits),
                f"{way}_stuck_mask": In(lanes),
                f"{way}_stuck_value": In(lanes),
                f"{way}_reverse": In(1),
                f"{way}_errors": Out(ip.counter_width),
            }
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        link = self.params.link
        ends = {}
        for end in ("a", "b"):
            ends[end] = unit = TrainedLinkEnd(self.params)
            m.submodules[end] = unit
            for vc in range(link.vcs):
                wiring.connect(m, wiring.flipped(getattr(self, f"{end}_i")[vc]), unit.i[vc])
                wiring.connect(m, unit.o[vc], wiring.flipped(getattr(self, f"{end}_o")[vc]))
            for name in ("training", "tx_status", "rx_status"):
                wiring.connect(m, getattr(unit, name),
                               wiring.flipped(getattr(self, f"{end}_{name}")))
            m.d.comb += [unit.restart.eq(getattr(self, f"{end}_restart")),
                         getattr(self, f"{end}_lost_flits").eq(unit.lost_flits)]
        for (way, src, dst), ip in zip((("ab", "a", "b"), ("ba", "b", "a")),
                                       self.interposer_params, strict=True):
            m.submodules[f"wire_{way}"] = wire = Interposer(ip)
            wiring.connect(m, ends[src].lanes_tx, wire.tx)
            wiring.connect(m, wire.rx, ends[dst].lanes_rx)
            for name in ("delay", "error_threshold", "stuck_mask", "stuck_value", "reverse"):
                m.d.comb += getattr(wire, name).eq(getattr(self, f"{way}_{name}"))
            m.d.comb += getattr(self, f"{way}_errors").eq(wire.errors)
        return m
