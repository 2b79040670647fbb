"""Link training: brings the lanes up under a link adapter, repairs them and retrains.

:class:`LinkTrainer` sits between a :class:`~chipknit.rtl.link.adapter.LinkAdapter`'s beat
streams and the physical lanes (:class:`~chipknit.rtl.link.lanes.LaneSignature`). Both ends
run the same state machine (``docs/link.md``, section *Training*, is the specification):

``RESET → DETECT → TEST → CONFIG → ACTIVE``, with ``DRAIN`` (finish the frame being sent)
on the way out of ``ACTIVE`` and ``ERROR`` (counted, cause shown, retried after a back-off)
when training fails. While training, every lane carries *training frames* of
``frame_cycles`` cycles: ``valid`` high only in the first cycle (the marker), then the lane
number and its complement, the fields (phase, have-peer, fresh, usable-lane mask) and their
complement, then a PRBS-7 that restarts each frame.

- **DETECT**: waits for half a training frame without any marker (so the next marker is
  the earliest lane's), then notes when each lane's marker arrives; the spread is the skew.
  Beyond ``deskew_range`` → ``ERROR`` (cause ``SKEW``). Each lane then gets a delay that
  lines it up with the latest.
- **TEST**: for ``test_frames`` frames every deskewed lane is checked — marker in place,
  lane number (straight or reversed), PRBS without a single error. A lane that fails any
  check is not usable. Lane reversal is detected from the lane numbers. The usable mask
  gives the lane map (:mod:`~chipknit.rtl.link.lane_map`): full width, half width, or
  ``ERROR`` (cause ``LANES``).
- **CONFIG**: each end sends its usable mask (the peer's transmit map) and whether it has
  the peer's; when both have both, each sends one ``GO`` frame and data follows at the next
  frame boundary. If either end's adapter is *fresh* (reset since it last carried traffic),
  the other resets its adapter too before ``GO`` (a *link reset*).
- **ACTIVE**: ``valid`` is high on every lane every cycle. The end retrains when
  ``retrain_errors`` frame or header CRC failures come within ``retrain_window`` received
  beats, or when the peer's ``valid`` drops (the peer retrains or was reset). The
  transmitter stops only at a frame boundary, so a retrain that keeps both adapters loses
  nothing: go-back-N replays.

Every training state shares one timer (``train_timeout`` cycles from ``DETECT`` to
``ACTIVE``); expiring it is an ``ERROR`` (cause ``TIMEOUT``). ``ERROR`` sends training
frames that say so for ``error_backoff`` cycles, then trains again. Nothing waits without
a bound.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..prbs import PrbsGenerator, PrbsParams
from .frame import LinkParams
from .lane_map import LaneMapper, LaneMode, RxGearbox, TxGearbox
from .lanes import LaneParams, LaneSignature

__all__ = ["TrainingParams", "TrainingState", "ErrorCause", "FramePhase", "TrainingStatus",
           "LinkTrainer", "PRBS"]

#: The training frames' PRBS: order 7, seed 1 (restarted at every frame's first PRBS bit).
PRBS = PrbsParams(width=1, order=7, seed=1, counter_width=1)


class TrainingState(enum.Enum, shape=3):
    """The state of one end's trainer."""
    RESET = 0
    DETECT = 1
    TEST = 2
    CONFIG = 3
    ACTIVE = 4
    DRAIN = 5
    ERROR = 6


class ErrorCause(enum.Enum, shape=2):
    """Why the last training failed."""
    NONE = 0
    SKEW = 1      #: lane skew beyond ``deskew_range``
    LANES = 2     #: too few usable lanes even for half width
    TIMEOUT = 3   #: training did not finish in ``train_timeout`` cycles


class FramePhase(enum.Enum, shape=2):
    """What a training frame says about its sender."""
    TRAIN = 0     #: detecting or testing lanes (mask not valid)
    CONFIG = 1    #: mask valid
    GO = 2        #: last training frame: data starts at the next frame boundary
    ERROR = 3     #: sender is in its error back-off


@dataclass(frozen=True)
class TrainingParams:
    """Parameters of a :class:`LinkTrainer` (both ends must agree).

    Parameters
    ----------
    link : LinkParams
        The adapter above; its ``beat_width`` must be a multiple of ``bits_per_lane`` and
        its frame length sets where a transmitter may stop.
    lanes : LaneParams
        Physical lanes. ``slots = beat_width / bits_per_lane`` of them carry a beat; the
        rest are repair lanes (``repair_lanes``). The default, 18 lanes for 16-bit beats,
        maps out any 2 dead lanes at full rate.
    deskew_range : int
        Largest lane-to-lane skew, in cycles, the trainer removes.
    frame_cycles : int
        Length of a training frame.
    test_frames : int
        Training frames each lane must pass without a single error in ``TEST``.
    retrain_window, retrain_errors : int
        Retrain when ``retrain_errors`` CRC failures (frame or header) come within
        ``retrain_window`` received beats (windows are consecutive, not sliding; at half
        width a window lasts twice as many cycles and holds the same number of frames).
    train_timeout : int
        Cycles from entering ``DETECT`` to ``ACTIVE`` before training fails.
    error_backoff : int
        Cycles spent in ``ERROR`` before training again.
    counter_width : int
        Width of the saturating status counters.
    """
    link: LinkParams = field(default_factory=LinkParams)
    lanes: LaneParams = field(default_factory=lambda: LaneParams(18, 1))
    deskew_range: int = 7
    frame_cycles: int = 128
    test_frames: int = 4
    retrain_window: int = 2048
    retrain_errors: int = 24
    train_timeout: int = 8192
    error_backoff: int = 1024
    counter_width: int = 32

    def __post_init__(self):
        if not isinstance(self.link, LinkParams):
            raise TypeError(f"Link parameters must be a LinkParams, not {self.link!r}")
        if not isinstance(self.lanes, LaneParams):
            raise TypeError(f"Lane parameters must be a LaneParams, not {self.lanes!r}")
        for name in ("deskew_range",):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        for name in ("frame_cycles", "test_frames", "retrain_window", "retrain_errors",
                     "train_timeout", "error_backoff", "counter_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.link.beat_width % self.lanes.bits_per_lane:
            raise ValueError(f"beat_width ({self.link.beat_width}) must be a multiple of "
                             f"bits_per_lane ({self.lanes.bits_per_lane})")
        if self.slots % 2:
            raise ValueError(f"A beat must fill an even number of lanes for half width, "
                             f"not {self.slots}")
        if self.lanes.lanes < self.slots:
            raise ValueError(f"{self.lanes.lanes} lanes cannot carry a {self.link.beat_width}"
                             f"-bit beat: at least {self.slots} are needed")
        if self.frame_cycles < self.prbs_start + 16:
            raise ValueError(f"frame_cycles must be at least {self.prbs_start + 16} for "
                             f"{self.lanes.lanes} lanes (layout plus 16 PRBS bits), "
                             f"not {self.frame_cycles}")
        if self.frame_cycles < 4 * (self.deskew_range + 1):
            raise ValueError(f"frame_cycles must be at least 4 × (deskew_range + 1) = "
                             f"{4 * (self.deskew_range + 1)}, not {self.frame_cycles}")
        if self.retrain_window < self.link.frame_beats * 2:
            raise ValueError(f"retrain_window must cover at least two link frames "
                             f"({2 * self.link.frame_beats} beats), not {self.retrain_window}")
        if self.retrain_errors > self.retrain_window // self.link.frame_beats:
            raise ValueError(f"retrain_errors ({self.retrain_errors}) must be reachable: a "
                             f"window of {self.retrain_window} beats holds at least "
                             f"{self.retrain_window // self.link.frame_beats} frame ends")

    @property
    def slots(self) -> int:
        """Lanes one beat fills at full width."""
        return self.link.beat_width // self.lanes.bits_per_lane

    @property
    def repair_lanes(self) -> int:
        return self.lanes.lanes - self.slots

    @property
    def id_bits(self) -> int:
        """Bits of a lane number in a training frame."""
        return max(1, (self.lanes.lanes - 1).bit_length())

    @property
    def field_bits(self) -> int:
        """Bits of the fields: phase (2), have-peer, fresh, usable mask (one per lane)."""
        return 4 + self.lanes.lanes

    @property
    def id_start(self) -> int:
        return 1

    @property
    def field_start(self) -> int:
        return self.id_start + 2 * self.id_bits

    @property
    def prbs_start(self) -> int:
        return self.field_start + 2 * self.field_bits

    @property
    def delay_bits(self) -> int:
        return max(1, self.deskew_range.bit_length())


def TrainingStatus(params: TrainingParams) -> wiring.Signature:
    """What a :class:`LinkTrainer` shows (all outputs; counters saturate)."""
    n, c = params.lanes.lanes, params.counter_width
    return wiring.Signature({
        "state": Out(TrainingState),
        "cause": Out(ErrorCause),             # why the last training failed
        "rx_mode": Out(LaneMode),             # how this end receives
        "tx_mode": Out(LaneMode),             # how this end sends (from the peer's mask)
        "lane_map": Out(n),                   # usable receive lanes, by wire
        "tx_lane_map": Out(n),                # usable transmit lanes (the peer's mask)
        "reversed": Out(1),                   # receive lanes arrive reversed
        "deskew": Out(data.ArrayLayout(range(params.deskew_range + 1), n)),
        "tx_active": Out(1),
        "rx_active": Out(1),
        "retrains": Out(c),                   # times ACTIVE was left
        "training_errors": Out(c),            # times ERROR was entered
        "link_resets": Out(c),                # adapter resets this end asked for
        "state_cycles": Out(data.ArrayLayout(c, len(TrainingState))),
    })


class LinkTrainer(wiring.Component):
    """Training, deskew, lane repair and retraining for one end of a link.

    Members
    -------
    up_tx : In(stream.Signature(beat_width))
        Beats from the adapter; taken only while sending data (``ready`` low otherwise,
        and every other cycle at half width).
    up_rx : Out(stream.Signature(beat_width))
        Beats to the adapter (``ready`` ignored: the receiver always takes them).
    lanes_tx : Out(LaneSignature(lanes))
        Registered.
    lanes_rx : In(LaneSignature(lanes))
    crc_errors : In(32)
        The adapter's receiver's CRC error counter (``rx_status.crc_errors``).
    header_errors : In(32)
        Its header CRC error counter (``rx_status.header_errors``). Both count toward a
        retrain: a frame whose beats all repeat one value can pass the frame CRC and fail
        only the header's (one 16-bit value does at the default), and it must not keep the
        link ACTIVE.
    restart : In(1)
        Restart training from ``RESET`` (this end is being reset); counters are kept.
    adapter_reset : Out(1)
        Reset the adapter (synchronous): during ``restart`` and ``RESET``, and for one cycle
        at a link reset.
    status : Out(TrainingStatus(params))
    """

    def __init__(self, params: TrainingParams = TrainingParams()):
        if not isinstance(params, TrainingParams):
            raise TypeError(f"Training parameters must be a TrainingParams, not {params!r}")
        self.params = params
        p = params
        super().__init__({
            "up_tx": In(stream.Signature(p.link.beat_width)),
            "up_rx": Out(stream.Signature(p.link.beat_width)),
            "lanes_tx": Out(LaneSignature(p.lanes)),
            "lanes_rx": In(LaneSignature(p.lanes)),
            "crc_errors": In(32),
            "header_errors": In(32),
            "restart": In(1),
            "adapter_reset": Out(1),
            "status": Out(TrainingStatus(p)),
        })

    def elaborate(self, platform):  # noqa: C901 (one state machine, read top to bottom)
        m = Module()
        p = self.params
        n, b, s = p.lanes.lanes, p.lanes.bits_per_lane, p.slots
        T, D, I, F = p.frame_cycles, p.deskew_range, p.id_bits, p.field_bits
        status = self.status
        state = status.state
        ones = (1 << b) - 1

        # ---------------------------------------------------------------- shared state
        fresh = Signal(init=1)        # the adapter has not carried traffic since reset
        tx_active, rx_active = status.tx_active, status.rx_active
        link_reset = Signal()          # one-cycle adapter reset requested by the trainer
        m.d.comb += self.adapter_reset.eq(self.restart | (state == TrainingState.RESET)
                                          | link_reset)
        timer = Signal(range(max(p.train_timeout, p.error_backoff) + 1))
        fail = Signal()                # training failed this cycle (cause below)
        fail_cause = Signal(ErrorCause)
        retrain = Signal()             # leave ACTIVE (or CONFIG) and train again
        pending_error = Signal()       # DRAIN goes to ERROR rather than DETECT

        # ---------------------------------------------------------------- transmit side
        m.submodules.tx_gearbox = txg = TxGearbox(n, s, b)
        m.submodules.tx_mapper = tx_mapper = LaneMapper(n, s)
        wiring.connect(m, wiring.flipped(self.up_tx), txg.beats)
        m.d.comb += [txg.mode.eq(tx_mapper.mode), txg.rank.eq(tx_mapper.rank),
                     status.tx_mode.eq(tx_mapper.mode)]
        tx_beat = Signal(range(p.link.frame_beats))   # index of the next beat in its frame
        with m.If(self.up_tx.valid & self.up_tx.ready):
            m.d.sync += tx_beat.eq(Mux(tx_beat == p.link.frame_beats - 1, 0, tx_beat + 1))
        at_boundary = Signal()
        m.d.comb += at_boundary.eq((tx_beat == 0) & ~txg.phase)
        stopping = Signal()            # DRAIN reached a frame boundary: stop before it
        m.d.comb += [stopping.eq((state == TrainingState.DRAIN) & at_boundary),
                     txg.enable.eq(tx_active & ~stopping)]

        tc = Signal(range(T))          # transmit training-frame cycle
        m.d.sync += tc.eq(Mux(tc == T - 1, 0, tc + 1))
        tx_go = Signal()               # the current frame is the GO frame
        tx_fields = Signal(2 * F)      # fields and complement, shifted out LSB first
        have_peer = Signal()
        my_mask = status.lane_map
        phase_now = Signal(FramePhase)
        with m.If(state == TrainingState.CONFIG):
            m.d.comb += phase_now.eq(FramePhase.CONFIG)
        with m.Elif(state == TrainingState.ERROR):
            m.d.comb += phase_now.eq(FramePhase.ERROR)
        with m.Else():
            m.d.comb += phase_now.eq(FramePhase.TRAIN)
        go_now = Signal()
        fields_word = Signal(F)
        m.d.comb += fields_word.eq(Cat(Mux(go_now, FramePhase.GO, phase_now), have_peer,
                                       fresh, my_mask))
        with m.If(tc == 0):
            m.d.sync += [tx_fields.eq(Cat(fields_word, ~fields_word)), tx_go.eq(go_now)]
        with m.Elif(tc >= p.field_start):
            m.d.sync += tx_fields.eq(tx_fields >> 1)

        m.submodules.tx_prbs = tx_prbs = ResetInserter(tc == p.prbs_start - 1)(
            PrbsGenerator(PRBS))
        in_prbs_tx = tc >= p.prbs_start
        m.d.comb += [tx_prbs.enable.eq(in_prbs_tx), tx_prbs.o.ready.eq(1)]

        common = Signal()              # the bit every lane sends this cycle (outside ids)
        with m.If(tc >= p.prbs_start):
            m.d.comb += common.eq(tx_prbs.o.payload[0])
        with m.Elif(tc >= p.field_start):
            m.d.comb += common.eq(tx_fields[0])
        id_pos = Signal(range(I))
        id_inv = Signal()
        in_id = Signal()
        m.d.comb += in_id.eq((tc >= p.id_start) & (tc < p.field_start))
        with m.If(tc >= p.id_start + I):
            m.d.comb += [id_pos.eq(tc - p.id_start - I), id_inv.eq(1)]
        with m.Else():
            m.d.comb += id_pos.eq(tc - p.id_start)
        train_data = []
        for i in range(n):
            bit = Signal(name=f"train_bit_{i}")
            m.d.comb += bit.eq(Mux(in_id, Const(i, I).bit_select(id_pos, 1) ^ id_inv, common))
            train_data.append(bit.replicate(b))

        with m.If(tx_active):
            m.d.sync += [self.lanes_tx.data.eq(txg.data),
                         self.lanes_tx.valid.eq(Mux(stopping, 0, (1 << n) - 1))]
        with m.Else():
            m.d.sync += [self.lanes_tx.data.eq(Cat(*train_data)),
                         self.lanes_tx.valid.eq(Mux(tc == 0, (1 << n) - 1, 0))]
        # Leaving ACTIVE: the next training frame starts without its marker, so the peer
        # sees `valid` fall right after the last data beat.
        with m.If(stopping & tx_active):
            m.d.sync += [tx_active.eq(0), tc.eq(1)]
        with m.If(tx_go & (tc == T - 1)):
            m.d.sync += [tx_active.eq(1), fresh.eq(0), tx_go.eq(0)]

        # ---------------------------------------------------------------- receive side
        raw_data, raw_valid = self.lanes_rx.data, self.lanes_rx.valid
        delays = status.deskew
        aligned_data = Signal(n * b)
        aligned_valid = Signal(n)
        picked_valid = []              # per lane: the valid bit aligned_valid takes next
        for j in range(n):
            taps = [Cat(raw_data[j * b:(j + 1) * b], raw_valid[j])]
            for d in range(1, D + 1):
                stage = Signal(b + 1, name=f"deskew{j}_stage{d}")
                m.d.sync += stage.eq(taps[-1])
                taps.append(stage)
            picked = Signal(b + 1, name=f"deskew{j}_picked")
            with m.Switch(delays[j]):
                for d in range(D):
                    with m.Case(d):
                        m.d.comb += picked.eq(taps[d])
                with m.Default():
                    m.d.comb += picked.eq(taps[D])
            m.d.sync += [aligned_data[j * b:(j + 1) * b].eq(picked[:b]),
                         aligned_valid[j].eq(picked[b])]
            picked_valid.append(picked[b])

        alive = Signal(n)              # lanes whose marker arrived in DETECT (physical)
        reversed_ = status.reversed
        # A marker on any live lane: (aligned_valid & alive) != 0, registered beside
        # aligned_valid (from the same picked bits), so the 18-lane reduction is not on the
        # paths into the state machine. It uses last cycle's ``alive``, which differs from
        # this cycle's only in the first cycle of TEST (``alive`` is set on entering it):
        # there no aligned marker can arrive (the frame's markers are half a frame away,
        # and frame_cycles >= 4 (deskew_range + 1)), so TEST's readers mask that cycle
        # (``test_first``) and see what the unregistered reduction would give.
        any_marker = Signal()
        m.d.sync += any_marker.eq((Cat(picked_valid) & alive) != 0)
        test_first = Signal()          # the first cycle of TEST
        m.d.sync += test_first.eq(0)

        # Logical (by wire) aligned lanes: reversal undone.
        logical = Signal(n * b)
        m.d.comb += logical.eq(Mux(reversed_,
                                   Cat(*(aligned_data[j * b:(j + 1) * b]
                                         for j in reversed(range(n)))),
                                   aligned_data))

        m.submodules.rx_mapper = rx_mapper = LaneMapper(n, s)
        m.submodules.rx_gearbox = rxg = RxGearbox(n, s, b)
        rx_go_pending = Signal()
        m.d.comb += [rx_mapper.mask.eq(my_mask), rxg.mode.eq(rx_mapper.mode),
                     rxg.select.eq(rx_mapper.select), rxg.data.eq(logical),
                     rxg.enable.eq(rx_active & any_marker), status.rx_mode.eq(rx_mapper.mode)]
        m.d.comb += [self.up_rx.valid.eq(rxg.beats.valid),
                     self.up_rx.payload.eq(rxg.beats.payload)]
        rx_beat = Signal(range(p.link.frame_beats))
        with m.If(rxg.beats.valid):
            m.d.sync += rx_beat.eq(Mux(rx_beat == p.link.frame_beats - 1, 0, rx_beat + 1))
        # The peer's valid fell: it stopped sending data. A stop inside a frame means the
        # adapters cannot stay in step: link reset.
        rx_stop = Signal()
        m.d.comb += rx_stop.eq(rx_active & ~any_marker)
        with m.If(rx_stop):
            m.d.sync += rx_active.eq(0)
            with m.If((rx_beat != 0) | rxg.phase):
                m.d.comb += link_reset.eq(1)

        # Receive training-frame cycle, locked to the deskewed markers while training.
        rc = Signal(range(T))
        locking = Signal()
        with m.If(locking & any_marker & ~test_first & ~rx_go_pending & ~rx_active):
            m.d.sync += rc.eq(1)
        with m.Else():
            m.d.sync += rc.eq(Mux(rc == T - 1, 0, rc + 1))

        # --- DETECT: skew measurement on the raw lanes.
        quiet = Signal(range(T // 2 + 1))
        measuring = Signal()
        t = Signal(range(T // 2 + 1))
        seen = Signal(n)
        arrival = Signal(data.ArrayLayout(range(T // 2 + 1), n))
        latest = Signal(range(T // 2 + 1))

        # --- TEST: per physical lane checks.
        prbs_bad = Signal(n)
        id_straight_bad = Signal(n)
        id_reversed_bad = Signal(n)
        test_frame = Signal(range(p.test_frames + 2))
        mapping = Signal()
        m.submodules.rx_prbs = rx_prbs = ResetInserter(rc == p.prbs_start - 1)(
            PrbsGenerator(PRBS))
        rx_in_prbs = rc >= p.prbs_start
        m.d.comb += [rx_prbs.enable.eq(rx_in_prbs), rx_prbs.o.ready.eq(1)]
        expected = rx_prbs.o.payload[0]
        rx_in_id = (rc >= p.id_start) & (rc < p.field_start)
        rx_id_pos = Signal(range(I))
        rx_id_inv = Signal()
        with m.If(rc >= p.id_start + I):
            m.d.comb += [rx_id_pos.eq(rc - p.id_start - I), rx_id_inv.eq(1)]
        with m.Else():
            m.d.comb += rx_id_pos.eq(rc - p.id_start)
        checking = Signal()
        m.d.comb += checking.eq((state == TrainingState.TEST) & (test_frame != 0)
                                & ~mapping)
        for j in range(n):
            lane = aligned_data[j * b:(j + 1) * b]
            marker_wrong = aligned_valid[j] != (rc == 0)
            prbs_wrong = rx_in_prbs & (lane != Mux(expected, ones, 0))
            with m.If(checking & (marker_wrong | prbs_wrong)):
                m.d.sync += prbs_bad[j].eq(1)
            with m.If(checking & rx_in_id
                      & (lane[0] != (Const(j, I).bit_select(rx_id_pos, 1) ^ rx_id_inv))):
                m.d.sync += id_straight_bad[j].eq(1)
            with m.If(checking & rx_in_id
                      & (lane[0] != (Const(n - 1 - j, I).bit_select(rx_id_pos, 1)
                                     ^ rx_id_inv))):
                m.d.sync += id_reversed_bad[j].eq(1)

        # --- CONFIG: the peer's fields, read from the first good lane.
        ref = Signal(range(n))
        usable_wires = Signal(n)       # the usable receive lanes TEST found, by wire
        ref_bit = Signal()
        with m.Switch(ref):
            for j in range(n - 1):
                with m.Case(j):
                    m.d.comb += ref_bit.eq(aligned_data[j * b])
            with m.Default():
                m.d.comb += ref_bit.eq(aligned_data[(n - 1) * b])
        captured = Signal(2 * F)
        with m.If((rc >= p.field_start) & (rc < p.prbs_start)):
            m.d.sync += captured.eq(Cat(captured[1:], ref_bit))
        peer = data.View(data.StructLayout({"phase": FramePhase, "have_peer": 1, "fresh": 1,
                                            "mask": n}), captured[:F])
        # The complement check and the mask comparison are registered: the fields are
        # complete at ``prbs_start`` and used a cycle later, so neither wide compare is on
        # the path into the lane mapper's start.
        peer_mask = status.tx_lane_map
        remap = Signal()               # a decoded frame changed the peer's mask
        remap_pending = Signal()
        fields_ok = Signal()
        mask_differs = Signal()
        m.d.sync += [fields_ok.eq(captured[:F] == ~captured[F:]),
                     mask_differs.eq(peer_mask != peer.mask)]
        decoded = Signal()             # a frame's fields passed their complement check
        m.d.comb += decoded.eq((rc == p.prbs_start + 1) & fields_ok
                               & (state == TrainingState.CONFIG) & ~rx_active)
        peer_seen = Signal()
        peer_have = Signal()
        peer_fresh = Signal()
        with m.If(decoded & ((peer.phase == FramePhase.CONFIG)
                             | (peer.phase == FramePhase.GO))):
            m.d.sync += [peer_seen.eq(1), peer_have.eq(peer.have_peer),
                         peer_fresh.eq(peer.fresh)]
            with m.If(~peer_seen | mask_differs):
                m.d.sync += peer_mask.eq(peer.mask)
                m.d.comb += remap.eq(~tx_active)
            # Before this end commits to GO: a fresh peer means both adapters restart.
            # (After it, the peer may still say fresh until its own GO; a peer reset later
            # shows as a lost frame phase and a new training.)
            with m.If(peer.fresh & ~fresh & ~tx_active & ~tx_go):
                m.d.comb += link_reset.eq(1)
            with m.If(peer.phase == FramePhase.GO):
                m.d.sync += rx_go_pending.eq(1)
        # The transmit lane mapper starts the cycle after the frame that changed the peer's
        # mask (a register: the frame checks are not on the path into the mapper's state);
        # by then ``peer_mask`` holds the new mask. GO waits for both cycles.
        m.d.sync += remap_pending.eq(remap)
        m.d.comb += [tx_mapper.start.eq(remap_pending), tx_mapper.mask.eq(peer_mask)]
        m.d.comb += have_peer.eq(peer_seen)
        with m.If(rx_go_pending & (rc == T - 1)):
            m.d.sync += [rx_active.eq(1), rx_go_pending.eq(0)]
        with m.If(link_reset):
            m.d.sync += fresh.eq(1)
        # Adapter reset: its beat counters restart with it.
        with m.If(self.adapter_reset):
            m.d.sync += [tx_beat.eq(0), rx_beat.eq(0)]

        # GO: decided at a transmit frame start.
        m.d.comb += go_now.eq((state == TrainingState.CONFIG) & (tc == 0) & peer_seen
                              & peer_have & ~tx_mapper.busy & ~tx_mapper.start & ~remap
                              & (tx_mapper.mode != LaneMode.NONE)
                              & (fresh | ~peer_fresh) & ~link_reset & ~tx_active & ~tx_go)

        # ---------------------------------------------------------------- retrain trigger
        window = Signal(range(p.retrain_window))
        window_errors = Signal(range(p.retrain_errors + 1))
        last_crc = Signal(32)
        last_header = Signal(32)
        m.d.sync += [last_crc.eq(self.crc_errors), last_header.eq(self.header_errors)]
        crc_event = Signal()
        m.d.comb += crc_event.eq((self.crc_errors != last_crc)
                                 | (self.header_errors != last_header))
        # The window counts received beats, not cycles, so it holds as many frames at half
        # width (a beat every other cycle) as at full width.
        with m.If(state == TrainingState.ACTIVE):
            with m.If(rxg.beats.valid):
                m.d.sync += window.eq(Mux(window == p.retrain_window - 1, 0, window + 1))
            with m.If(rxg.beats.valid & (window == p.retrain_window - 1)):
                m.d.sync += window_errors.eq(0)
            with m.Elif(crc_event & (window_errors != p.retrain_errors)):
                m.d.sync += window_errors.eq(window_errors + 1)
        with m.Else():
            m.d.sync += [window.eq(0), window_errors.eq(0)]

        # ---------------------------------------------------------------- state machine
        enter_detect = Signal()
        training = ((state == TrainingState.DETECT) | (state == TrainingState.TEST)
                    | (state == TrainingState.CONFIG))
        with m.If(training):
            m.d.sync += timer.eq(timer + 1)
            with m.If(timer == p.train_timeout - 1):
                m.d.comb += [fail.eq(1), fail_cause.eq(ErrorCause.TIMEOUT)]
        m.d.comb += locking.eq((state == TrainingState.TEST) | (state == TrainingState.CONFIG))

        with m.If(state == TrainingState.RESET):
            m.d.sync += [tx_active.eq(0), rx_active.eq(0), fresh.eq(1), tx_go.eq(0),
                         rx_go_pending.eq(0), peer_seen.eq(0), pending_error.eq(0),
                         reversed_.eq(0), alive.eq(0), my_mask.eq(0),
                         peer_mask.eq(0), delays.eq(0), tc.eq(0)]
            m.d.comb += enter_detect.eq(1)

        with m.Elif(state == TrainingState.DETECT):
            # Half a frame without markers, then the earliest lane's marker starts t.
            with m.If(~measuring):
                with m.If(raw_valid != 0):
                    m.d.sync += quiet.eq(0)
                    with m.If(quiet == T // 2):
                        m.d.sync += [measuring.eq(1), t.eq(1), seen.eq(raw_valid),
                                     latest.eq(0)]
                        for j in range(n):
                            m.d.sync += arrival[j].eq(0)
                with m.Elif(quiet != T // 2):
                    m.d.sync += quiet.eq(quiet + 1)
            with m.Elif(t != T // 2):
                m.d.sync += t.eq(t + 1)
                for j in range(n):
                    with m.If(raw_valid[j] & ~seen[j]):
                        m.d.sync += [seen[j].eq(1), arrival[j].eq(t), latest.eq(t)]
            with m.Else():
                with m.If(latest > D):
                    m.d.comb += [fail.eq(1), fail_cause.eq(ErrorCause.SKEW)]
                with m.Else():
                    m.d.sync += [alive.eq(seen), state.eq(TrainingState.TEST), test_first.eq(1),
                                 test_frame.eq(0), mapping.eq(0), prbs_bad.eq(0),
                                 id_straight_bad.eq(0), id_reversed_bad.eq(0)]
                    for j in range(n):
                        m.d.sync += delays[j].eq(Mux(seen[j], latest - arrival[j], 0))

        with m.Elif(state == TrainingState.TEST):
            with m.If(~mapping & any_marker & ~test_first):
                m.d.sync += test_frame.eq(test_frame + 1)
                with m.If(test_frame == p.test_frames):
                    # Decide orientation and the usable lanes.
                    straight_ok = alive & ~prbs_bad & ~id_straight_bad
                    reversed_ok = alive & ~prbs_bad & ~id_reversed_bad
                    rev = (reversed_ok & ~straight_ok) != 0
                    usable = Signal(n)
                    m.d.comb += usable.eq(Mux(rev, reversed_ok, straight_ok))
                    m.d.sync += [reversed_.eq(rev),
                                 my_mask.eq(Mux(rev, Cat(*reversed(list(usable))),
                                                usable)),
                                 usable_wires.eq(usable),
                                 mapping.eq(1)]
            with m.If(mapping & ~rx_mapper.busy & ~rx_mapper.start):
                with m.If(rx_mapper.mode == LaneMode.NONE):
                    m.d.comb += [fail.eq(1), fail_cause.eq(ErrorCause.LANES)]
                with m.Else():
                    m.d.sync += [state.eq(TrainingState.CONFIG), peer_seen.eq(0),
                                 peer_have.eq(0), rx_go_pending.eq(0)]

        with m.Elif(state == TrainingState.CONFIG):
            with m.If(tx_active & rx_active):
                m.d.sync += state.eq(TrainingState.ACTIVE)
            # The peer sends data we were not told about (its GO was lost): retrain.
            with m.If(any_marker & (rc != 0) & ~rx_go_pending & ~rx_active):
                m.d.comb += retrain.eq(1)

        with m.Elif(state == TrainingState.ACTIVE):
            with m.If(~rx_active | (window_errors == p.retrain_errors)):
                m.d.comb += retrain.eq(1)

        with m.Elif(state == TrainingState.DRAIN):
            with m.If(stopping | ~tx_active):
                with m.If(pending_error):
                    m.d.sync += [state.eq(TrainingState.ERROR), timer.eq(0),
                                 pending_error.eq(0)]
                with m.Else():
                    m.d.comb += enter_detect.eq(1)

        with m.Elif(state == TrainingState.ERROR):
            m.d.sync += timer.eq(timer + 1)
            with m.If(timer == p.error_backoff - 1):
                m.d.comb += enter_detect.eq(1)

        with m.Else():                # unused encoding: start over
            m.d.sync += state.eq(TrainingState.RESET)

        with m.If(enter_detect):
            m.d.sync += [state.eq(TrainingState.DETECT), timer.eq(0), quiet.eq(0),
                         measuring.eq(0), seen.eq(0)]

        # The mapper starts when TEST decides (the cycle after `mapping` rises). In that
        # cycle the first usable wire (CONFIG reads the peer's fields from it) is found from
        # the registered mask, not in the cycle that decides it; CONFIG is 2+ cycles away.
        # Outside TEST ``mapping_started`` is cleared, so ``start`` stays high there (the
        # mapper's mode and select, and ``ref``, hold: restarting only clears its counters).
        # Gating it with the state is cleaner but made the yowasp ABC9 of this build crash
        # (exit 1, no message) on 2026-11-26; this form synthesises.
        mapping_started = Signal()
        map_start = Signal()
        m.d.comb += map_start.eq(mapping & ~mapping_started)
        with m.If(map_start):
            for j in reversed(range(n)):
                with m.If(usable_wires[j]):
                    m.d.sync += ref.eq(j)
        with m.If(state != TrainingState.TEST):
            m.d.sync += mapping_started.eq(0)
        with m.Elif(map_start):
            m.d.sync += mapping_started.eq(1)
        m.d.comb += rx_mapper.start.eq(map_start)

        with m.If(fail):
            m.d.sync += status.cause.eq(fail_cause)
            with m.If(tx_active):
                m.d.sync += [state.eq(TrainingState.DRAIN), pending_error.eq(1)]
            with m.Else():
                m.d.sync += [state.eq(TrainingState.ERROR), timer.eq(0)]
        with m.Elif(retrain):
            with m.If(tx_active):
                m.d.sync += state.eq(TrainingState.DRAIN)
            with m.Else():
                m.d.comb += enter_detect.eq(1)
        with m.If(fail | retrain):
            m.d.sync += [rx_go_pending.eq(0), tx_go.eq(0)]

        with m.If(self.restart):
            m.d.sync += state.eq(TrainingState.RESET)

        # ---------------------------------------------------------------- counters
        c = p.counter_width
        top = (1 << c) - 1

        def count(counter, event):
            with m.If(event & (counter != top)):
                m.d.sync += counter.eq(counter + 1)

        leaving_active = (state == TrainingState.ACTIVE) & retrain & ~self.restart
        count(status.retrains, leaving_active)
        entering_error = fail & ~tx_active & ~self.restart
        entering_error_late = ((state == TrainingState.DRAIN) & pending_error
                               & (stopping | ~tx_active) & ~self.restart)
        count(status.training_errors, entering_error | entering_error_late)
        count(status.link_resets, link_reset & ~self.restart)
        for k in range(len(TrainingState)):
            count(status.state_cycles[k], state.as_value() == k)
        return m
