"""Host bridge: a byte-stream command protocol onto the network's transactions.

The bridge knows nothing of UARTs: it takes bytes on ``rx`` and gives bytes on ``tx`` (both
``lib.stream``), so any byte transport can carry it (:class:`~.top.UartHostBridge` uses a
UART; SPI or an FTDI FIFO would do as well). On the other side it is an initiator
(``Out(InitiatorSignature(params))``, see :mod:`chipknit.rtl.noc.transaction`). The frame
format is specified in docs/host.md; in short (multi-byte fields little-endian):

=========  ===================================================================================
command    ``A5  op  tag  len  addr[4]  data...  crc``
response   ``A5  op|80  tag  len  data...  status  crc``  (a NAK has ``op`` = ``FF``)
=========  ===================================================================================

``crc`` is CRC-8/AUTOSAR over everything between the sync byte and itself. Commands
(:data:`OP_READ`, :data:`OP_WRITE`, :data:`OP_WRITE_MASKED`, :data:`OP_COUNTERS`) carry
``len + 1`` beats of ``data_width`` bits; a masked write follows each beat's data bytes with
its strobe byte(s). One command is served at a time: the bridge takes no byte while it
executes a command and sends its response.

Error handling (every case is counted; the bridge never waits forever on the host):

- bytes outside a frame that are not the sync byte are dropped (``garbage_bytes``);
- a frame with no byte for ``frame_timeout`` cycles is abandoned (``frame_timeouts``) and the
  bridge hunts for the next sync byte; no response is sent (the host times out and retries);
- a whole frame whose CRC is wrong, whose op is unknown, whose length is more than the bridge
  buffers (writes) or the network allows, or whose address does not fit ``addr_width`` gets
  a NAK (``naks``; bad CRCs also ``crc_errors``) and is not executed;
- a response beat that takes more than ``bus_timeout`` cycles ends the command with status
  :data:`STATUS_BUS_TIMEOUT` (``bus_timeouts``); a read is padded with zero beats, so the
  response always has the length its header announced. Response beats that arrive later are
  recognised by their tag and dropped (``stale_responses``).

A write is executed only once its CRC has checked out, so its data waits in a buffer of
``buffer_beats`` beats (one memory). A read streams: its response header leaves as soon as
the request is accepted, and each beat goes out as it arrives.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import crc, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..block_ram import collision_free_memory, registered_read
from ..credit import add_event_counters
from ..noc.transaction import InitiatorSignature, Status, TransactionParams
from ..timer import CycleTimer

__all__ = ["HostBridgeParams", "HostBridge", "SYNC", "OP_READ", "OP_WRITE",
           "OP_WRITE_MASKED", "OP_COUNTERS", "OP_NAK", "NAK_BAD_CRC", "NAK_BAD_OP",
           "NAK_BAD_LENGTH", "NAK_BAD_ADDRESS", "STATUS_BUS_TIMEOUT", "COUNTERS", "CRC"]

#: First byte of every frame, both ways.
SYNC = 0xA5
OP_READ = 0x01
OP_WRITE = 0x02
OP_WRITE_MASKED = 0x03
#: Read the bridge's own counters (:data:`COUNTERS`, one 32-bit word each).
OP_COUNTERS = 0x04
#: ``op`` byte of a NAK response (the command was not executed).
OP_NAK = 0xFF
#: Status bytes of a NAK (a response's status byte is otherwise a :class:`Status`).
NAK_BAD_CRC = 0x81
NAK_BAD_OP = 0x82
NAK_BAD_LENGTH = 0x83
NAK_BAD_ADDRESS = 0x84
#: Status byte of a command whose response beat did not come within ``bus_timeout``.
STATUS_BUS_TIMEOUT = 0x85
#: The frame CRC.
CRC = crc.catalog.CRC8_AUTOSAR
#: Counters in the order :data:`OP_COUNTERS` returns them.
COUNTERS = ("commands", "garbage_bytes", "crc_errors", "frame_timeouts", "naks",
            "bus_timeouts", "stale_responses", "transport_errors", "transport_overruns")
_OWN_COUNTERS = COUNTERS[:7]


def _positive(name, value, low=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer of at least {low}, not {value!r}")


class _State(enum.Enum):
    """States of the bridge: one ``m.Switch`` on the state register, not an ``If``/``Elif``
    chain, which makes every state's logic wait on the compares of the states before it
    (host bridge alone: 125 register inputs at 6–8 LUT levels as a chain, 5 at 7 as a
    switch)."""
    HUNT = 0
    OP = 1
    TAG = 2
    LEN = 3
    ADDR = 4
    DATA = 5
    CRC = 6
    CHECK = 7
    ISSUE = 8
    WDATA = 9
    WDATA_DONE = 10
    HEADER = 11
    RBEAT = 12
    RBYTES = 13
    COUNTER = 14
    STATUS = 15
    CHECKSUM = 16


@dataclass(frozen=True)
class HostBridgeParams:
    """Parameters of a :class:`HostBridge`.

    Parameters
    ----------
    transaction : TransactionParams
        The network's transactions (beat width, address width, length and tag bits).
    buffer_beats : int
        Write data the bridge holds (one memory); longer writes get a NAK. At most 256 (the
        frame's ``len`` byte) and at most ``transaction.max_beats``.
    frame_timeout : int
        Cycles without a byte after which a partial frame is abandoned. Make it longer than
        a byte takes on the transport, and shorter than the host waits before retrying.
    bus_timeout : int
        Cycles the bridge waits for a response beat before it gives up on the command.
    counter_width : int
        Width of the saturating counters (at most 32: they are returned as 32-bit words).
    """
    transaction: TransactionParams = TransactionParams()
    buffer_beats: int = 64
    frame_timeout: int = 1 << 16
    bus_timeout: int = 1 << 16
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.transaction, TransactionParams):
            raise TypeError(f"Transaction parameters must be a TransactionParams, not "
                            f"{self.transaction!r}")
        _positive("Buffer beats", self.buffer_beats)
        limit = min(256, self.transaction.max_beats)
        if self.buffer_beats > limit:
            raise ValueError(f"Buffer beats must be at most {limit} (a frame's length byte "
                             f"and the network's max_beats), not {self.buffer_beats}")
        _positive("Frame timeout", self.frame_timeout)
        _positive("Bus timeout", self.bus_timeout)
        _positive("Counter width", self.counter_width)
        if self.counter_width > 32:
            raise ValueError(f"Counter width must be at most 32, not {self.counter_width}")

    @property
    def beat_bytes(self) -> int:
        return self.transaction.beat_bytes

    @property
    def strobe_bytes(self) -> int:
        """Bytes that carry one beat's strobes in a masked write."""
        return -(-self.transaction.strobe_width // 8)

    @property
    def max_read_beats(self) -> int:
        return min(256, self.transaction.max_beats)


class HostBridge(wiring.Component):
    """Command frames in, transactions out, response frames back (see the module docs).

    Parameters
    ----------
    params : HostBridgeParams

    Members
    -------
    rx : In(stream.Signature(8))
        Bytes from the host. ``ready`` is low while a command executes.
    tx : Out(stream.Signature(8))
        Bytes to the host.
    bus : Out(InitiatorSignature(params.transaction))
        The network side. One transaction at a time; ``tag`` counts commands, so a response
        to an abandoned command is told apart from the current one.
    transport_errors, transport_overruns : In(counter_width)
        The transport's own receive error counters (a UART's framing errors and overruns),
        reported by :data:`OP_COUNTERS`; tie to 0 if it has none.
    commands, garbage_bytes, crc_errors, frame_timeouts, naks, bus_timeouts, stale_responses
        : Out(counter_width)
        Saturating event counters: well-formed commands executed, bytes dropped while
        hunting for a frame, frames with a bad CRC, partial frames abandoned, NAKs sent,
        response beats that timed out, response beats of abandoned commands dropped.
    """

    def __init__(self, params: HostBridgeParams = HostBridgeParams()):
        if not isinstance(params, HostBridgeParams):
            raise TypeError(f"Host bridge parameters must be a HostBridgeParams, not "
                            f"{params!r}")
        self.params = params
        width = params.counter_width
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(InitiatorSignature(params.transaction)),
            "transport_errors": In(width),
            "transport_overruns": In(width),
            **{name: Out(width) for name in _OWN_COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tp = p.transaction
        beat_bytes, strobe_bytes = p.beat_bytes, p.strobe_bytes
        count = add_event_counters(m, self, _OWN_COUNTERS, p.counter_width)

        m.submodules.rx_crc = rx_crc = crc.Processor(CRC(data_width=8))
        m.submodules.tx_crc = tx_crc = crc.Processor(CRC(data_width=8))

        # Write buffer: one beat of data and strobes per entry. It is written while a frame
        # arrives and read in WDATA, after the frame's CRC bytes, so no read meets a write
        # (`collision_free_memory`).
        m.submodules.buffer = buffer = collision_free_memory(
            shape=tp.data_width + tp.strobe_width, depth=p.buffer_beats)
        wr = buffer.write_port()
        rd_addr = Signal(range(p.buffer_beats))
        rd_en = Signal()
        rd_data = registered_read(m, buffer, rd_addr, enable=rd_en, name="buffer_data")

        # Command fields.
        op = Signal(8)
        tag = Signal(8)
        length = Signal(8)
        addr = Signal(32)
        # Beat assembly (command data) and disassembly (response data).
        field = Signal(range(max(beat_bytes + strobe_bytes, 4) + 1))
        beat_index = Signal(9)
        # (beat_index == length), kept in a register beside beat_index (see first_beat and
        # next_beat) so that the state logic reads one flip-flop instead of a comparison.
        final_beat = Signal()
        beats_left = Signal(8)       # length - beat_index
        loaded_all = Signal()        # WDATA: every beat has been read from the buffer
        beat = Signal(tp.data_width)
        strobe = Signal(8 * strobe_bytes)
        pending_write = Signal()
        # The op and length decoded as their bytes arrive, so that no state's logic starts
        # with a comparison of a whole byte.
        is_read = Signal()
        is_write = Signal()
        masked = Signal()
        is_counters = Signal()
        fits_buffer = Signal()       # length < buffer_beats
        fits_read = Signal()         # length < max_read_beats
        last_field = Signal.like(field)
        # Execution.
        bus_tag = Signal(tp.tag_bits)
        status = Signal(8)
        nak = Signal()
        got_wresp = Signal()
        timed_out = Signal()
        idle = CycleTimer(m, "idle", p.frame_timeout)
        watchdog = CycleTimer(m, "watchdog", p.bus_timeout)
        counter_index = Signal(range(len(COUNTERS)))
        word = Signal(32)            # the counter at counter_index, a cycle late
        word_fresh = Signal()        # ... and counter_index has not moved since
        latched = Signal(24)         # the counter's bytes still to send
        presented = Signal()
        last_beat = Signal()

        counters = [getattr(self, name) for name in COUNTERS]

        def first_beat():
            m.d.sync += [beat_index.eq(0), beats_left.eq(length), final_beat.eq(length == 0),
                         loaded_all.eq(0)]

        def next_beat():
            m.d.sync += [beat_index.eq(beat_index + 1), beats_left.eq(beats_left - 1),
                         final_beat.eq(beats_left == 1)]

        # Buffer writes land the cycle after a beat's last byte.
        m.d.sync += pending_write.eq(0)
        m.d.comb += [
            wr.addr.eq(beat_index - 1),
            wr.data.eq(Cat(beat, Mux(masked, strobe[:tp.strobe_width],
                                     Const((1 << tp.strobe_width) - 1, tp.strobe_width)))),
            wr.en.eq(pending_write & fits_buffer),
        ]

        # Every index value selects something (zero past the last counter), so the
        # selection is a complete case, as lint wants.
        padded = counters + [Const(0, p.counter_width)] * (
            2 ** len(counter_index) - len(counters))
        m.d.sync += [word.eq(Array(padded)[counter_index]), word_fresh.eq(1)]

        # Bytes in: every parse state takes a byte whenever one is offered.
        got = Signal()
        byte = self.rx.payload
        m.d.comb += rx_crc.data.eq(byte)

        # Bytes out leave from a register (one byte), with what the transmit CRC does with
        # them (start, add, nothing); the CRC takes each byte as it leaves, so neither the
        # byte's multiplexers nor the CRC are on one path. A byte is loaded only into an
        # empty register (``out_ready`` is ``~tx_full``, not ``| tx.ready``), so no state's
        # logic waits on the transport's ready: one idle cycle between bytes, nothing
        # against a UART's byte time. The checksum byte then also finds every byte before
        # it in the CRC.
        out_valid = Signal()
        out_byte = Signal(8)
        out_crc_start = Signal()
        out_crc_add = Signal()
        out_ready = Signal()
        tx_full = Signal()
        tx_byte = Signal(8)
        tx_crc_start = Signal()
        tx_crc_add = Signal()
        leaves = tx_full & self.tx.ready
        m.d.comb += [
            self.tx.valid.eq(tx_full), self.tx.payload.eq(tx_byte),
            tx_crc.data.eq(tx_byte),
            tx_crc.start.eq(leaves & tx_crc_start), tx_crc.valid.eq(leaves & tx_crc_add),
            out_ready.eq(~tx_full),
        ]
        sent = out_valid & out_ready
        with m.If(sent):
            m.d.sync += [tx_full.eq(1), tx_byte.eq(out_byte), tx_crc_start.eq(out_crc_start),
                         tx_crc_add.eq(out_crc_add)]
        with m.Elif(leaves):
            m.d.sync += tx_full.eq(0)

        def parse_state():
            """Common to the states inside a command frame: take bytes, feed the CRC, and
            give up on a frame that stops arriving."""
            m.d.comb += [self.rx.ready.eq(1), got.eq(self.rx.valid),
                         rx_crc.valid.eq(self.rx.valid)]
            with m.If(self.rx.valid):
                idle.restart()
            with m.Elif(idle.expiring):
                idle.restart()
                m.d.comb += count["frame_timeouts"].eq(1)
                m.d.sync += state.eq(_State.HUNT)
            with m.Else():
                idle.step()

        def drain_stale():
            """No command owns the response stream: whatever comes is late."""
            m.d.comb += self.bus.response.ready.eq(1)
            with m.If(self.bus.response.valid):
                m.d.comb += count["stale_responses"].eq(1)

        def send(value, next_state=None):
            m.d.comb += [out_valid.eq(1), out_byte.eq(value)]
            if next_state is not None:
                with m.If(out_ready):
                    m.d.sync += state.eq(next_state)

        response = self.bus.response
        matches = response.payload.tag == bus_tag

        state = Signal(_State)
        with m.Switch(state):
            with m.Case(_State.HUNT):
                m.d.comb += self.rx.ready.eq(1)
                drain_stale()
                with m.If(self.rx.valid):
                    with m.If(byte == SYNC):
                        m.d.comb += rx_crc.start.eq(1)
                        idle.restart()
                        m.d.sync += state.eq(_State.OP)
                    with m.Else():
                        m.d.comb += count["garbage_bytes"].eq(1)

            with m.Case(_State.OP):
                parse_state()
                drain_stale()
                with m.If(got):
                    m.d.sync += [op.eq(byte), is_read.eq(byte == OP_READ),
                                 is_write.eq((byte == OP_WRITE) | (byte == OP_WRITE_MASKED)),
                                 masked.eq(byte == OP_WRITE_MASKED),
                                 is_counters.eq(byte == OP_COUNTERS)]
                    m.d.sync += state.eq(_State.TAG)
            with m.Case(_State.TAG):
                parse_state()
                drain_stale()
                with m.If(got):
                    m.d.sync += tag.eq(byte)
                    m.d.sync += state.eq(_State.LEN)
            with m.Case(_State.LEN):
                parse_state()
                drain_stale()
                with m.If(got):
                    m.d.sync += [length.eq(byte), field.eq(0),
                                 fits_buffer.eq(byte < p.buffer_beats),
                                 fits_read.eq(byte < p.max_read_beats)]
                    m.d.sync += state.eq(_State.ADDR)
            with m.Case(_State.ADDR):
                parse_state()
                drain_stale()
                # The beat counters start over in every ADDR cycle (the length is known since
                # LEN), not only as the last address byte arrives: they are used from DATA on,
                # and their reset then waits for no byte, field or timer decision.
                first_beat()
                with m.If(got):
                    m.d.sync += [addr.eq(Cat(addr[8:], byte)), field.eq(field + 1)]
                    with m.If(field == 3):
                        m.d.sync += [field.eq(0), last_field.eq(
                            Mux(masked, beat_bytes + strobe_bytes - 1, beat_bytes - 1))]
                        with m.If(is_write):
                            m.d.sync += state.eq(_State.DATA)
                        with m.Else():
                            m.d.sync += state.eq(_State.CRC)
            with m.Case(_State.DATA):
                parse_state()
                drain_stale()
                with m.If(got):
                    m.d.sync += field.eq(field + 1)
                    with m.If(field < beat_bytes):
                        m.d.sync += beat.eq(Cat(beat[8:], byte))
                    with m.Else():
                        m.d.sync += strobe.eq(Cat(strobe[8:], byte))
                    with m.If(field == last_field):
                        m.d.sync += [field.eq(0), pending_write.eq(1)]
                        next_beat()
                        with m.If(final_beat):
                            m.d.sync += state.eq(_State.CRC)
            with m.Case(_State.CRC):
                parse_state()
                drain_stale()
                with m.If(got):
                    m.d.sync += state.eq(_State.CHECK)

            with m.Case(_State.CHECK):
                drain_stale()
                known = is_read | is_write | is_counters
                too_long = Mux(is_write, ~fits_buffer, is_read & ~fits_read)
                if tp.addr_width < 32:
                    out_of_range = ~is_counters & (addr[tp.addr_width:] != 0)
                else:
                    out_of_range = Const(0)
                m.d.sync += [field.eq(0), status.eq(Status.OKAY.value),
                             nak.eq(1), got_wresp.eq(0), timed_out.eq(0),
                             counter_index.eq(0), word_fresh.eq(0), presented.eq(0)]
                watchdog.restart()
                first_beat()
                with m.If(~rx_crc.match_detected):
                    m.d.sync += status.eq(NAK_BAD_CRC)
                    m.d.comb += count["crc_errors"].eq(1)
                with m.Elif(~known):
                    m.d.sync += status.eq(NAK_BAD_OP)
                with m.Elif(too_long):
                    m.d.sync += status.eq(NAK_BAD_LENGTH)
                with m.Elif(out_of_range):
                    m.d.sync += status.eq(NAK_BAD_ADDRESS)
                with m.Else():
                    m.d.sync += nak.eq(0)
                    m.d.comb += count["commands"].eq(1)
                with m.If(~rx_crc.match_detected | ~known | too_long | out_of_range):
                    m.d.comb += count["naks"].eq(1)
                    m.d.sync += state.eq(_State.HEADER)
                with m.Elif(is_counters):
                    m.d.sync += state.eq(_State.HEADER)
                with m.Else():
                    m.d.sync += state.eq(_State.ISSUE)

            with m.Case(_State.ISSUE):
                drain_stale()
                m.d.comb += [
                    self.bus.request.valid.eq(1),
                    self.bus.request.payload.write.eq(is_write),
                    self.bus.request.payload.addr.eq(addr),
                    self.bus.request.payload.length.eq(length),
                    self.bus.request.payload.tag.eq(bus_tag),
                ]
                with m.If(self.bus.request.ready):
                    with m.If(is_write):
                        m.d.sync += state.eq(_State.WDATA)
                    with m.Else():
                        m.d.sync += state.eq(_State.HEADER)

            with m.Case(_State.WDATA):
                # beat_index: the next buffer entry to read. The read port holds a beat on
                # its output for as long as it is presented and not taken.
                load = (~presented | self.bus.wdata.ready) & ~loaded_all
                m.d.comb += [
                    rd_addr.eq(beat_index),
                    rd_en.eq(load),
                    self.bus.wdata.valid.eq(presented),
                    self.bus.wdata.payload.data.eq(rd_data[:tp.data_width]),
                    self.bus.wdata.payload.strobe.eq(rd_data[tp.data_width:]),
                    self.bus.wdata.payload.last.eq(last_beat),
                ]
                with m.If(load):
                    m.d.sync += [presented.eq(1), last_beat.eq(final_beat),
                                 loaded_all.eq(final_beat)]
                    next_beat()
                with m.Elif(self.bus.wdata.ready):
                    m.d.sync += presented.eq(0)
                with m.If(presented & self.bus.wdata.ready & last_beat):
                    m.d.sync += state.eq(_State.WDATA_DONE)
                m.d.comb += response.ready.eq(1)
                with m.If(response.valid):
                    with m.If(matches & ~got_wresp):
                        m.d.sync += [got_wresp.eq(1), status.eq(response.payload.status)]
                    with m.Else():
                        m.d.comb += count["stale_responses"].eq(1)

            with m.Case(_State.WDATA_DONE):
                m.d.comb += response.ready.eq(1)
                with m.If(got_wresp):
                    m.d.sync += state.eq(_State.HEADER)
                with m.Elif(response.valid):
                    watchdog.restart()
                    with m.If(matches):
                        m.d.sync += status.eq(response.payload.status)
                        m.d.sync += state.eq(_State.HEADER)
                    with m.Else():
                        m.d.comb += count["stale_responses"].eq(1)
                with m.Elif(watchdog.expiring):
                    watchdog.restart()
                    m.d.sync += status.eq(STATUS_BUS_TIMEOUT)
                    m.d.comb += count["bus_timeouts"].eq(1)
                    m.d.sync += state.eq(_State.HEADER)
                with m.Else():
                    watchdog.step()

            with m.Case(_State.HEADER):
                rop = Mux(nak, OP_NAK, op | 0x80)
                rlen = Mux(nak, 0, Mux(is_counters, len(COUNTERS) - 1, length))
                send(Mux(field == 0, SYNC, Mux(field == 1, rop, Mux(field == 2, tag, rlen))))
                with m.If(sent):
                    m.d.comb += [out_crc_start.eq(field == 0), out_crc_add.eq(field != 0)]
                    m.d.sync += field.eq(field + 1)
                    with m.If(field == 3):
                        m.d.sync += field.eq(0)
                        with m.If(nak | is_write):
                            m.d.sync += state.eq(_State.STATUS)
                        with m.Elif(is_counters):
                            m.d.sync += state.eq(_State.COUNTER)
                        with m.Else():
                            m.d.sync += state.eq(_State.RBEAT)

            with m.Case(_State.RBEAT):
                with m.If(timed_out):
                    m.d.sync += beat.eq(0)
                    m.d.sync += state.eq(_State.RBYTES)
                with m.Else():
                    m.d.comb += response.ready.eq(1)
                    with m.If(response.valid):
                        watchdog.restart()
                        with m.If(matches):
                            m.d.sync += beat.eq(response.payload.data)
                            with m.If((status == Status.OKAY.value)
                                      & (response.payload.status != Status.OKAY)):
                                m.d.sync += status.eq(response.payload.status)
                            m.d.sync += state.eq(_State.RBYTES)
                        with m.Else():
                            m.d.comb += count["stale_responses"].eq(1)
                    with m.Elif(watchdog.expiring):
                        watchdog.restart()
                        m.d.sync += [timed_out.eq(1), beat.eq(0), status.eq(STATUS_BUS_TIMEOUT)]
                        m.d.comb += count["bus_timeouts"].eq(1)
                        m.d.sync += state.eq(_State.RBYTES)
                    with m.Else():
                        watchdog.step()

            with m.Case(_State.RBYTES):
                send(beat[:8])
                with m.If(sent):
                    m.d.comb += out_crc_add.eq(1)
                    m.d.sync += [beat.eq(beat >> 8), field.eq(field + 1)]
                    with m.If(field == beat_bytes - 1):
                        m.d.sync += field.eq(0)
                        next_beat()
                        with m.If(final_beat):
                            m.d.sync += state.eq(_State.STATUS)
                        with m.Else():
                            m.d.sync += state.eq(_State.RBEAT)

            with m.Case(_State.COUNTER):
                drain_stale()
                # The counter is read into a register (``word``) a cycle after counter_index
                # moves, and once, at its first byte, so that its four bytes agree.
                with m.If(word_fresh | (field != 0)):
                    send(Mux(field == 0, word[:8], latched[:8]))
                with m.If(sent):
                    m.d.comb += out_crc_add.eq(1)
                    m.d.sync += [field.eq(field + 1), latched.eq(latched >> 8)]
                    with m.If(field == 0):
                        m.d.sync += latched.eq(word[8:])
                    with m.If(field == 3):
                        m.d.sync += [field.eq(0), counter_index.eq(counter_index + 1),
                                     word_fresh.eq(0)]
                        with m.If(counter_index == len(COUNTERS) - 1):
                            m.d.sync += state.eq(_State.STATUS)

            with m.Case(_State.STATUS):
                drain_stale()
                send(status)
                with m.If(sent):
                    m.d.comb += out_crc_add.eq(1)
                    m.d.sync += state.eq(_State.CHECKSUM)

            with m.Case(_State.CHECKSUM):
                drain_stale()
                send(tx_crc.crc, _State.HUNT)
                with m.If(sent & ~nak & ~is_counters):
                    m.d.sync += bus_tag.eq(bus_tag + 1)
            with m.Default():
                # (Codes past the last state: none is ever entered.)
                m.d.sync += state.eq(_State.HUNT)

        return m
