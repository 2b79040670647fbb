"""The memory tile: block RAM serving memory-mapped requests (stands in for an HBM die).

It takes ``In(TargetSignature(params))`` — the flipped target port of a
:class:`~chipknit.rtl.noc.interface.TargetInterface` — and serves one beat per cycle:

- Requests queue in a small FIFO (``queue`` entries) and are served in order, back to back:
  the next request starts in the cycle after the previous one's last beat.
- A read issues one RAM read per cycle (``length + 1`` of them); the RAM's registered
  output and the beat's ``{tag, last, status}`` wait in a one-entry stage until the
  response FIFO takes them. A beat is issued only while that stage is free or leaving, so
  backpressure on ``response`` stalls the reads and no beat is lost.
- A write takes one ``wdata`` beat per cycle and writes the bytes whose ``strobe`` bit is
  set (``amaranth.lib.memory`` write port with 8-bit granularity); its one response beat
  follows the last data beat through the same pipeline.
- A request that is unaligned or whose burst runs past the last word is refused: no RAM
  access, a read gets ``length + 1`` TARGET_ERROR beats (data 0), a write's data beats are
  consumed and dropped and its response is TARGET_ERROR; ``errors`` counts such requests.

Reset empties the queues; the RAM contents are kept (block RAM has no reset).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..block_ram import collision_free_memory, registered_read
from ..credit import add_event_counters
from ..noc.transaction import Status, TargetSignature, TransactionParams

__all__ = ["MemoryParams", "MemoryTile"]


@dataclass(frozen=True)
class MemoryParams:
    """Parameters of a memory tile.

    Parameters
    ----------
    transaction : TransactionParams
        The transaction (and flit) shape; a word is one beat of ``data_width`` bits.
    words : int
        RAM size in words; byte addresses ``0 .. words * beat_bytes - 1`` are served.
    init : tuple of int
        Initial contents, word 0 first (the rest are zero).
    queue : int
        Requests buffered ahead of the one being served.
    response_depth : int
        Response FIFO entries: 3 or more serve one beat a cycle, 2 one every other cycle.
    counter_width : int
        Width of the saturating ``errors`` counter.
    """
    transaction: TransactionParams = TransactionParams()
    words: int = 1024
    init: tuple = ()
    queue: int = 2
    response_depth: int = 4
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.transaction, TransactionParams):
            raise TypeError(f"Transaction must be a TransactionParams, not "
                            f"{self.transaction!r}")
        for name, low in (("words", 1), ("queue", 1), ("response_depth", 2),
                          ("counter_width", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be an integer "
                                 f"of at least {low}, not {value!r}")
        if not isinstance(self.init, tuple):
            raise TypeError(f"Init must be a tuple of words, not {type(self.init).__name__}")
        if len(self.init) > self.words:
            raise ValueError(f"Init has {len(self.init)} words but the memory only "
                             f"{self.words}")
        limit = 1 << self.transaction.data_width
        for word in self.init:
            if not isinstance(word, int) or not 0 <= word < limit:
                raise ValueError(f"Init word {word!r} does not fit "
                                 f"{self.transaction.data_width} bits")
        if self.words * self.transaction.beat_bytes > 1 << self.transaction.addr_width:
            raise ValueError(f"{self.words} words do not fit the "
                             f"{self.transaction.addr_width}-bit address")


class MemoryTile(wiring.Component):
    """Block-RAM memory target. See the module documentation for the protocol.

    Members
    -------
    bus : In(TargetSignature(transaction))
        Requests and write data in, responses out (connect a ``TargetInterface.target``).
    errors : Out(counter_width)
        Requests refused (unaligned or out of range), saturating.
    """

    def __init__(self, params: MemoryParams):
        if not isinstance(params, MemoryParams):
            raise TypeError(f"Expected MemoryParams, not {params!r}")
        self.params = params
        super().__init__({
            "bus": In(TargetSignature(params.transaction)),
            "errors": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        t = p.transaction
        bus = self.bus
        word_bits = max(1, (p.words - 1).bit_length())

        # A step reads or writes, never both, so no read meets a write in its cycle and the
        # RAM need not define that case (`collision_free_memory`).
        m.submodules.ram = ram = collision_free_memory(shape=t.data_width, depth=p.words,
                                                       init=p.init)
        wr = ram.write_port(granularity=8)
        rd_en = Signal()

        # Request queue.
        m.submodules.requests = requests = fifo.SyncFIFO(
            width=t.request_layout.size, depth=p.queue)
        m.d.comb += [
            requests.w_data.eq(bus.request.payload),
            requests.w_en.eq(bus.request.valid),
            bus.request.ready.eq(requests.w_rdy),
        ]
        head = t.request_layout(requests.r_data)

        # The request being served.
        active = Signal()
        write = Signal()
        tag = Signal(t.tag_bits)
        refused = Signal()
        word = Signal(word_bits)
        # Beats after this one, and whether there are none: a register, so that the end of
        # a request is no compare in front of the next request's take.
        remaining = Signal(t.length_bits)
        last_beat = Signal()

        # Response FIFO and the one-cycle stage in front of it (RAM read latency).
        m.submodules.responses = responses = fifo.SyncFIFOBuffered(
            width=t.response_layout.size, depth=p.response_depth)
        m.d.comb += [
            bus.response.payload.eq(responses.r_data),
            bus.response.valid.eq(responses.r_rdy),
            responses.r_en.eq(bus.response.ready),
        ]
        stage_valid = Signal()
        stage = Signal(t.response_layout)
        stage_read = Signal()  # the stage's data comes from the RAM read port
        # A beat may go when the stage is free or leaves into the FIFO this cycle. (Not
        # from ``responses.level``: a SyncFIFOBuffered of depth 2 refuses a write in the
        # cycle after its first one, when its level is 1, which lost a response beat.)
        # A stage that cannot leave holds, and so does the RAM's output (no read is
        # issued while it waits).
        room = ~stage_valid | responses.w_rdy

        # A beat is processed this cycle (a read issued or a write beat taken).
        step = Signal()
        m.d.comb += step.eq(active & room & (~write | bus.wdata.valid))
        m.d.comb += bus.wdata.ready.eq(active & write & room)

        rd_data = registered_read(m, ram, word, enable=rd_en, name="ram_data")
        m.d.comb += [
            rd_en.eq(step & ~write & ~refused),
            wr.addr.eq(word),
            wr.data.eq(bus.wdata.payload.data),
            wr.en.eq(Mux(step & write & ~refused, bus.wdata.payload.strobe, 0)),
        ]
        # Into the stage: every read beat, and a write's last beat.
        status = Mux(refused, Status.TARGET_ERROR, Status.OKAY)
        with m.If(step):
            m.d.sync += [
                stage_valid.eq(~write | last_beat),
                stage.write.eq(write), stage.tag.eq(tag), stage.status.eq(status),
                stage.last.eq(last_beat | write), stage_read.eq(~write & ~refused),
            ]
        with m.Elif(responses.w_rdy):
            m.d.sync += stage_valid.eq(0)
        m.d.comb += [
            responses.w_en.eq(stage_valid),
            responses.w_data.eq(Cat(stage.write, stage.tag, stage.status,
                                    Mux(stage_read, rd_data, 0), stage.last)),
        ]
        with m.If(step):
            m.d.sync += [remaining.eq(remaining - 1), last_beat.eq(remaining == 1),
                         word.eq(word + 1)]

        # Take the next request when idle or in the cycle the last beat goes.
        take = requests.r_rdy & (~active | (step & last_beat))
        m.d.comb += requests.r_en.eq(take)
        first = head.addr[t.align_bits:]
        unaligned = head.addr[:t.align_bits].any() if t.align_bits else 0
        # In range: first + length < words, on widths that cannot overflow.
        end = Signal(len(first) + 1)
        m.d.comb += end.eq(first + head.length)
        bad = Signal()
        m.d.comb += bad.eq(unaligned | (end >= p.words))
        with m.If(take):
            m.d.sync += [
                active.eq(1), write.eq(head.write), tag.eq(head.tag),
                remaining.eq(head.length), last_beat.eq(head.length == 0),
                refused.eq(bad), word.eq(first[:word_bits]),
            ]
        with m.Elif(step & last_beat):
            m.d.sync += active.eq(0)

        increments = add_event_counters(m, self, ["errors"], p.counter_width)
        m.d.comb += increments["errors"].eq(take & bad)
        return m
