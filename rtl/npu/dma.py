"""NPU DMA: moves scratchpad rows to and from remote memory over the network's
memory-mapped initiator port (:class:`~chipknit.rtl.noc.transaction.InitiatorSignature`).

A command (:func:`dma_command_layout`) is a LOAD (remote → the A, W or QP scratchpad) or a
STORE (the requantiser's results → remote). Remote memory is addressed in beats of the
network's ``data_width``; one scratchpad row is ``row_beats`` beats, little-endian (see
``docs/npu.md``, *DMA*, and :mod:`chipknit.npu.isa` for the formats). A transfer is 2-D:
``rows`` rows in lines of ``line_rows`` rows (0: one line); rows of a line are consecutive,
line ``l`` starts at ``remote + l * stride``. Each line is cut into requests of at most
``max_beats`` beats of whole rows.

Protocol:

- ``cmd`` is taken when the request side is idle. The requests of a LOAD leave back to back,
  up to ``outstanding`` of them unanswered (the record FIFO; tags count modulo
  ``2**tag_bits``), so the next command's requests can leave while this one's responses
  arrive. A STORE sends each write request, then its data beats, packed from the
  requantiser beats on ``rq`` (C int8 per row, or C int32 with ``bypass``).
- Responses come back in request order (the network's contract). ``response.ready`` is
  always high: a read beat is written to the scratchpad the cycle it arrives (on the last
  beat of each row). A response beat with no request outstanding, or whose tag or
  ``write`` differs from the oldest outstanding request's, is *unexpected*: it is dropped
  and counted in ``unexpected`` (saturating).
- ``done`` pulses once per command, in command order, when its last response has arrived;
  ``error`` is high with it if any response of the command had a status other than OKAY.
  Rows of a read request that failed are not written (they keep their contents).
- A reset abandons the command and forgets the requests in flight: the network interface,
  which shares the tile's reset, must drop their responses. Tags are not reset (they go on
  counting), so a late response that gets through anyway differs in tag from the requests
  after the reset (while at most half the tags are in flight across the reset) and is
  counted in ``unexpected`` instead of being taken for new data.
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..noc.transaction import InitiatorSignature, Status, TransactionParams
from .engine import EngineParams, _addr
from .requant import channel_layout

__all__ = ["DmaParams", "Dma", "dma_command_layout", "QP_CHANNEL_BITS", "UNEXPECTED_BITS"]

#: Width of the saturating count of unexpected response beats.
UNEXPECTED_BITS = 16

#: Bits of one channel's parameters in remote memory: int32 bias, multiplier, shift.
QP_CHANNEL_BITS = 96

TARGET_A, TARGET_W, TARGET_QP = 0, 1, 2


@dataclass(frozen=True)
class DmaParams:
    """Parameters of a :class:`Dma`.

    Parameters
    ----------
    engine : EngineParams
        The scratchpads it fills and the requantiser it stores from.
    transaction : TransactionParams
        The network's transactions (beat width, burst length, tags).
    outstanding : int
        Requests in flight (at most ``2**tag_bits``).
    """
    engine: EngineParams = field(default_factory=EngineParams)
    transaction: TransactionParams = field(default_factory=TransactionParams)
    outstanding: int = 8

    def __post_init__(self):
        if not isinstance(self.engine, EngineParams):
            raise TypeError(f"Expected EngineParams, not {self.engine!r}")
        if not isinstance(self.transaction, TransactionParams):
            raise TypeError(f"Expected TransactionParams, not {self.transaction!r}")
        tags = 1 << self.transaction.tag_bits
        if not isinstance(self.outstanding, int) or isinstance(self.outstanding, bool) \
                or not 1 <= self.outstanding <= tags:
            raise ValueError(f"Outstanding must be an integer in [1, {tags}] (the tags), "
                             f"not {self.outstanding!r}")
        longest = max(self.row_beats.values())
        if longest > self.transaction.max_beats:
            raise ValueError(f"A row of {longest} beats does not fit a request of "
                             f"{self.transaction.max_beats} beats")

    @property
    def row_beats(self) -> dict:
        """Beats of one remote row: per LOAD target, and ``"out"``/``"out32"`` (STORE)."""
        e, width = self.engine, self.transaction.data_width
        bits = {TARGET_A: 8 * e.array.rows, TARGET_W: 8 * e.array.cols,
                TARGET_QP: QP_CHANNEL_BITS * e.requant_lanes, "out": 8 * e.array.cols,
                "out32": 32 * e.array.cols}
        return {key: -(-value // width) for key, value in bits.items()}


def dma_command_layout(params: DmaParams) -> data.StructLayout:
    """One DMA command. ``rows`` is a LOAD's row count or a STORE's ``m``; ``remote`` and
    ``stride`` count beats."""
    return data.StructLayout({
        "store": 1, "target": 2, "bypass": 1, "spad_base": 12, "rows": 12, "remote": 32,
        "line_rows": 12, "stride": 32,
    })


def _times(value, constant):
    """``value * constant`` as shifts and adds (a product by a signal or a constant that
    Yosys may map to a DSP)."""
    terms = [value << bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    total = terms[0] if terms else Const(0)
    for term in terms[1:]:
        total = total + term
    return total


class Dma(wiring.Component):
    """LOAD and STORE between the scratchpads and remote memory; see the module docs.

    Attributes
    ----------
    cmd : In(stream.Signature(dma_command_layout(params)))
    done, error : Out(1)
    a_wr, w_wr, qp_wr : In(memory.WritePort.Signature(...))
        The engine's scratchpad write ports, driven by the DMA.
    rq : In(stream.Signature(ArrayLayout(signed(32), requant_lanes)))
        The requantiser's beats while a STORE runs.
    bus : Out(InitiatorSignature(params.transaction))
    busy : Out(1)
        A command is issuing or a request is unanswered.
    storing : Out(1)
        A STORE is taking requantiser beats (from acceptance to its last data beat).
    unexpected : Out(UNEXPECTED_BITS)
        Response beats dropped as unexpected (see above), saturating; cleared by reset.
    """

    def __init__(self, params: DmaParams = DmaParams()):
        if not isinstance(params, DmaParams):
            raise TypeError(f"Expected DmaParams, not {params!r}")
        self.params = params
        e = params.engine
        rows, cols = e.array.rows, e.array.cols
        super().__init__({
            "cmd": In(stream.Signature(dma_command_layout(params))),
            "done": Out(1),
            "error": Out(1),
            "a_wr": In(memory.WritePort.Signature(addr_width=_addr(e.a_depth),
                                                  shape=data.ArrayLayout(8, rows))),
            "w_wr": In(memory.WritePort.Signature(addr_width=_addr(e.w_depth),
                                                  shape=data.ArrayLayout(8, cols))),
            "qp_wr": In(memory.WritePort.Signature(
                addr_width=_addr(e.qp_depth),
                shape=data.ArrayLayout(channel_layout, e.requant_lanes))),
            "rq": In(stream.Signature(data.ArrayLayout(32, e.requant_lanes))),
            "bus": Out(InitiatorSignature(params.transaction)),
            "busy": Out(1),
            "storing": Out(1),
            "unexpected": Out(UNEXPECTED_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        p, t = self.params, self.params.transaction
        rb = p.row_beats
        bus = self.bus

        # --- The command being issued. ----------------------------------------------------
        # Requests are made in a pipeline of three registered stages, so that no path runs
        # from the command through the size arithmetic into the address adders:
        #   size:  rows of the next request, min(per-request limit, left in line, left);
        #   beats: the request's beats (rows × row beats of the command's kind);
        #   issue: the request on ``bus.request`` (address register, tag), then its record.
        # Each stage takes a new request while the one after it is empty or moving on, so
        # requests still leave back to back; a command's first one leaves 4 cycles after it
        # (one to take it into ``cmd``, see ``setup``).
        cmd = Signal(dma_command_layout(p))
        active = Signal()
        # ``active & cmd.store`` in a register of its own, for the STORE's data path and the
        # queue (``storing``): with ``active`` there, the placer had to put one register
        # near the request logic, the interface and the row registers at once (the
        # package's critical path at one seed: ``active`` → the row's group counter, 4
        # levels, 8.1 ns of routing).
        store_active = Signal()
        line = Signal(13)        # rows of a line
        left = Signal(13)        # rows not yet sized
        left_line = Signal(13)   # of those, rows left in the current line
        limit = Signal(13)       # rows per request (the command's kind)
        row = Signal(13)         # rows sized
        more = Signal()          # left != 0
        # The size's comparisons, worked out a step ahead and kept beside the counters: as
        # differences (14-bit signed; a comparison is the sign bit of a register)
        over = Signal(signed(14))        # left - limit
        line_over = Signal(signed(14))   # left_line - limit
        ahead = Signal(signed(14))       # left - left_line
        line_limit = Signal(signed(14))  # line - limit (a new line's line_over)
        # and the comparisons that include equality, as flags:
        left_short = Signal()       # left <= limit
        line_short = Signal()       # left_line <= limit
        left_in_line = Signal()     # left <= left_line
        new_line_short = Signal()   # line <= limit
        line_addr = Signal(32)
        addr = Signal(32)
        wphase = Signal()        # a STORE's data beats are due
        wleft = Signal(range(t.max_beats + 1))
        # Not reset: requests after a reset get tags the lost ones did not have.
        tag = Signal(t.tag_bits, reset_less=True)

        def select(kind, values):
            """Mux of per-kind constants by a command: LOAD target, or STORE (bypass)."""
            return Mux(kind.store, Mux(kind.bypass, values["out32"], values["out"]),
                       Mux(kind.target == TARGET_A, values[TARGET_A],
                           Mux(kind.target == TARGET_W, values[TARGET_W], values[TARGET_QP])))

        def wide(value):
            """``value`` (unsigned or signed(14)) as signed(14), for the differences."""
            if value.shape().signed:
                return value
            return Cat(value, Const(0, 14 - len(value))).as_signed()

        def at_most(x, y):
            """``x <= y`` as the sign of ``x + ~y`` (x - y - 1): one adder, whose top bit is
            taken as it is (no comparison after it). Values stay within 14-bit signed."""
            return (wide(x) + ~wide(y))[13]

        per_request = {key: max(t.max_beats // beats, 1) for key, beats in rb.items()}
        size_layout = data.StructLayout({
            "valid": 1, "rows": 13, "last": 1, "line_end": 1, "spad_addr": 12})
        sized = Signal(size_layout)              # stage 1 → 2
        issue = Signal(data.StructLayout({       # stage 2 → 3
            "valid": 1, "last": 1, "line_end": 1, "spad_addr": 12,
            "beats": range(t.max_beats + 1), "final_row": 13, "single": 1}))
        req = bus.request
        fire = Signal()
        issue_take = Signal()
        size_take = Signal()
        size_go = Signal()
        m.d.comb += [
            fire.eq(req.valid & req.ready),
            issue_take.eq(~issue.valid | fire),
            size_take.eq(sized.valid & issue_take),
            # (``more`` implies ``active``.)
            size_go.eq(more & (~sized.valid | size_take)),
        ]

        # A command is taken into ``cmd`` first; the next cycle (``setup``) works out its
        # first sizes from that register, so the queue's command multiplexers (the command
        # FIFO or a STORE straight from ``cur``) end at ``cmd`` and never reach the
        # subtractions below (the package's critical path when they did).
        setup = Signal()
        m.d.comb += self.cmd.ready.eq(~active)
        with m.If(self.cmd.valid & ~active):
            m.d.sync += [cmd.eq(self.cmd.payload), active.eq(1), setup.eq(1),
                         store_active.eq(self.cmd.payload.store)]
        with m.If(setup):
            kind_limit = Signal(13)
            # One line (``line_rows`` 0) is a line of 4096 rows, longer than any command:
            # then ``left_line`` stays above ``left`` and the line never ends before the
            # last request (where the original line of ``rows`` rows ended, with nothing
            # after it to take the next line's address). So no mux by ``line_rows == 0``
            # follows the comparisons and subtractions below: it is only the line's top bit.
            first_line = Signal(13)
            one_line = Signal()
            first_over = Signal(signed(14))
            m.d.comb += [kind_limit.eq(select(cmd, per_request)),
                         one_line.eq(cmd.line_rows == 0),
                         first_line.eq(Cat(cmd.line_rows, one_line)),
                         first_over.eq(wide(first_line) - wide(kind_limit))]
            m.d.sync += [setup.eq(0), row.eq(0), left.eq(cmd.rows),
                         more.eq(cmd.rows != 0),
                         line.eq(first_line), left_line.eq(first_line),
                         limit.eq(kind_limit),
                         over.eq(wide(cmd.rows) - wide(kind_limit)),
                         line_over.eq(first_over), line_limit.eq(first_over),
                         ahead.eq(wide(cmd.rows) - wide(first_line)),
                         left_short.eq(at_most(cmd.rows, kind_limit)),
                         # (A line of 4096 is longer than any limit.)
                         line_short.eq(at_most(cmd.line_rows, kind_limit) & ~one_line),
                         new_line_short.eq(at_most(cmd.line_rows, kind_limit) & ~one_line),
                         left_in_line.eq(at_most(cmd.rows, cmd.line_rows) | one_line),
                         line_addr.eq(cmd.remote), addr.eq(cmd.remote)]

        # Stage 1: the size, min(limit, left_line, left). The three comparisons are the signs
        # of registers (the differences above), so the choice is a LUT of registers; the
        # differences' next values are worked out beside the counters' for each choice, as
        # differences of registers, and the choice only picks among them. A choice that is
        # the command's last request (count == left) leaves ``more`` low: what it leaves in
        # ``left_line`` and the differences is never read (the next command reloads them).
        limit_first = Signal()
        line_first = Signal()
        count = Signal(13)
        line_end = Signal()
        last = Signal()

        def after(value):
            """``value`` (a function of ``left`` after the request, unless it is the last
            one) for both choices, from registers, and the choice picks one: ``left`` after
            is ``over`` when the limit goes first, else ``ahead``."""
            return Mux(limit_first, value(over), value(ahead))

        m.d.comb += [
            limit_first.eq(~line_over[-1] & ~over[-1]),     # limit <= left_line, left
            line_first.eq(~ahead[-1]),                      # left_line <= left
            count.eq(Mux(limit_first, limit, Mux(line_first, left_line, left))),
            line_end.eq(line_short & line_first),           # count == left_line
            last.eq(left_short & left_in_line),             # count == left
        ]
        with m.If(size_go):
            m.d.sync += [sized.valid.eq(1), sized.rows.eq(count),
                         sized.last.eq(last),
                         sized.line_end.eq(line_end),
                         sized.spad_addr.eq(cmd.spad_base + row),
                         row.eq(row + count), more.eq(~last),
                         over.eq(after(lambda x: x - wide(limit))),
                         left_short.eq(after(lambda x: at_most(x, limit)))]
            with m.If(limit_first):
                m.d.sync += left.eq(over)
            with m.Elif(line_first):
                m.d.sync += left.eq(ahead)
            with m.Else():
                m.d.sync += left.eq(0)
            with m.If(line_end):
                m.d.sync += [left_line.eq(line), line_over.eq(line_limit),
                             line_short.eq(new_line_short),
                             ahead.eq(after(lambda x: x - wide(line))),
                             left_in_line.eq(after(lambda x: at_most(x, line)))]
            with m.Else():
                # (limit_first; otherwise the last request: count == left.)
                m.d.sync += [left_line.eq(line_over), line_over.eq(line_over - wide(limit)),
                             line_short.eq(at_most(line_over, limit))]
        with m.Elif(size_take):
            m.d.sync += sized.valid.eq(0)

        # Stage 2: the beats (a multiple of the rows, by a constant per kind).
        with m.If(size_take):
            m.d.sync += [issue.valid.eq(1),
                         issue.last.eq(sized.last), issue.line_end.eq(sized.line_end),
                         issue.spad_addr.eq(sized.spad_addr),
                         issue.final_row.eq(sized.rows - 1), issue.single.eq(sized.rows == 1),
                         issue.beats.eq(select(cmd, {key: _times(sized.rows, beats)
                                                     for key, beats in rb.items()}))]
        with m.Elif(fire):
            m.d.sync += issue.valid.eq(0)

        # Records of the requests in flight, oldest first.
        record_layout = data.StructLayout({
            "store": 1, "target": 2, "spad_addr": 12, "final_row": 13, "single": 1,
            "last": 1, "tag": t.tag_bits})
        # Buffered: the head record comes from a register (responses are registered too,
        # so a response in the cycle after its request still finds its record).
        m.submodules.records = records = fifo.SyncFIFOBuffered(width=record_layout.size,
                                                               depth=p.outstanding)
        record = Signal(record_layout)
        m.d.comb += [record.store.eq(cmd.store), record.target.eq(cmd.target),
                     record.spad_addr.eq(issue.spad_addr), record.final_row.eq(issue.final_row),
                     record.single.eq(issue.single),
                     record.last.eq(issue.last), record.tag.eq(tag),
                     records.w_data.eq(record)]

        # Stage 3: the request.
        byte_addr = Cat(Const(0, t.align_bits), addr)
        m.d.comb += [req.valid.eq(issue.valid & ~wphase & records.w_rdy),
                     req.payload.write.eq(cmd.store), req.payload.addr.eq(byte_addr),
                     req.payload.length.eq(issue.beats - 1), req.payload.tag.eq(tag)]
        with m.If(fire):
            m.d.comb += records.w_en.eq(1)
            m.d.sync += tag.eq(tag + 1)
            with m.If(issue.line_end):
                m.d.sync += [line_addr.eq(line_addr + cmd.stride),
                             addr.eq(line_addr + cmd.stride)]
            with m.Else():
                m.d.sync += addr.eq(addr + issue.beats)
            with m.If(cmd.store):
                m.d.sync += [wphase.eq(1), wleft.eq(issue.beats)]
        with m.If(active & ~setup & ~wphase & ~more & ~sized.valid & ~issue.valid):
            m.d.sync += [active.eq(0), store_active.eq(0)]
        m.d.comb += [self.storing.eq(store_active),
                     # (``done`` is registered: busy until it has left.)
                     self.busy.eq(active | records.r_rdy | self.done)]

        self._store_data(m, cmd, store_active, wphase, wleft)
        self._responses(m, records, record_layout)
        return m

    def _store_data(self, m, cmd, store_active, wphase, wleft):
        """Requantiser beats → one row of C values → the row's data beats. Two row
        registers: ``values`` collects a row while ``held`` sends the one before, so the
        requantiser does not wait while a row's beats leave (it gives a row every C/lanes
        cycles; with one register it was one cycle more per row)."""
        p, e, t = self.params, self.params.engine, self.params.transaction
        width, rb = t.data_width, p.row_beats
        lanes, groups, cols = e.requant_lanes, e.groups, e.array.cols
        values = Signal(data.ArrayLayout(32, cols))
        held = Signal(data.ArrayLayout(32, cols))
        full = Signal()          # values holds a whole row
        held_valid = Signal()    # held holds a row whose beats are not all sent
        group = Signal(range(groups))
        out_beat = Signal(range(max(rb["out"], rb["out32"])))
        move = Signal()
        m.d.comb += [move.eq(full & ~held_valid),
                     # Registers only: a row moves on and the next beat comes in together.
                     self.rq.ready.eq((~full | ~held_valid) & store_active)]
        with m.If(move):
            m.d.sync += [held.eq(values), held_valid.eq(1), full.eq(0)]
        # Cleared in every cycle without a STORE, not as a command is taken: the same for
        # the STORE (one is only taken while idle, and nothing moves here without one), and
        # the clear then waits on a register, not on the queue's dispatch (in the package
        # that path ran from the queue to this register beside the interface, 8.4 ns of
        # routing).
        with m.If(~store_active):
            m.d.sync += [group.eq(0), out_beat.eq(0), full.eq(0), held_valid.eq(0)]
        with m.If(self.rq.valid & self.rq.ready):
            # (An If per group, not word_select: a part select of a non-power-of-two
            # count of groups is a case statement lint finds incomplete.)
            for index in range(groups):
                with m.If(group == index):
                    m.d.sync += [values[index * lanes + lane].eq(self.rq.payload[lane])
                                 for lane in range(lanes)]
            m.d.sync += group.eq(group + 1)
            with m.If(group == groups - 1):
                m.d.sync += [group.eq(0), full.eq(1)]
        packed8 = Cat(*(held[c][:8] for c in range(cols)))
        packed32 = held.as_value()

        def beat_of(bits, count):
            """Beat ``out_beat`` of ``count`` beats of ``bits`` (a mux chain: word_select
            by a signal becomes a multiplier)."""
            bits = Cat(bits, Const(0, count * width - len(bits)))
            chosen = bits[:width]
            for index in range(1, count):
                chosen = Mux(out_beat == index, bits[index * width:(index + 1) * width],
                             chosen)
            return chosen

        beat8, beat32 = beat_of(packed8, rb["out"]), beat_of(packed32, rb["out32"])
        wdata = self.bus.wdata
        m.d.comb += [wdata.valid.eq(wphase & held_valid),
                     wdata.payload.data.eq(Mux(cmd.bypass, beat32, beat8)),
                     wdata.payload.strobe.eq(Const(-1, t.strobe_width)),
                     wdata.payload.last.eq(wleft == 1)]
        row_end = Mux(cmd.bypass, out_beat == rb["out32"] - 1, out_beat == rb["out"] - 1)
        with m.If(wdata.valid & wdata.ready):
            m.d.sync += [wleft.eq(wleft - 1), out_beat.eq(out_beat + 1)]
            with m.If(wleft == 1):
                m.d.sync += wphase.eq(0)
            with m.If(row_end):
                m.d.sync += [out_beat.eq(0), held_valid.eq(0)]

    def _responses(self, m, records, record_layout):
        p, e, t = self.params, self.params.engine, self.params.transaction
        width, rb = t.data_width, p.row_beats
        # Every response beat is registered on arrival, and handled the cycle after.
        m.d.comb += self.bus.response.ready.eq(1)
        response = Signal(data.StructLayout({
            "valid": 1, "payload": self.bus.response.payload.shape()}), name="response_r")
        m.d.sync += [response.valid.eq(self.bus.response.valid),
                     response.payload.eq(self.bus.response.payload)]
        rec = data.View(record_layout, records.r_data)
        beat = Signal()
        failed = Signal()
        matches = Signal()
        m.d.comb += [matches.eq(records.r_rdy & (response.payload.tag == rec.tag)
                                & (response.payload.write == rec.store)),
                     beat.eq(response.valid & matches),
                     failed.eq(response.payload.status != Status.OKAY)]
        with m.If(response.valid & ~matches & (self.unexpected != (1 << UNEXPECTED_BITS) - 1)):
            m.d.sync += self.unexpected.eq(self.unexpected + 1)
        load_beats = max(rb[TARGET_A], rb[TARGET_W], rb[TARGET_QP])
        slots = [Signal(width, name=f"slot{index}") for index in range(load_beats - 1)]
        r_beat = Signal(range(load_beats))
        r_row = Signal(13)
        # Whether row ``r_row`` is the record's final one, from registers: the first row's
        # answer comes with the record (``single``), a later row's was worked out when the
        # row before it ended (``next_final``), so no row compare sits before ``pop``.
        first_row = Signal(init=1)
        next_final = Signal()
        final = Signal()
        m.d.comb += final.eq(Mux(first_row, rec.single, next_final))
        row_failed = Signal()
        cmd_failed = Signal()
        row_end = Signal()
        m.d.comb += row_end.eq(Mux(rec.target == TARGET_A, r_beat == rb[TARGET_A] - 1,
                                   Mux(rec.target == TARGET_W, r_beat == rb[TARGET_W] - 1,
                                       r_beat == rb[TARGET_QP] - 1)))
        pop = Signal()
        with m.If(beat & rec.store):
            m.d.comb += pop.eq(1)
        with m.Elif(beat):
            with m.If(row_end):
                m.d.sync += [r_beat.eq(0), row_failed.eq(0), r_row.eq(r_row + 1),
                             first_row.eq(0),
                             next_final.eq((r_row + 1)[:13] == rec.final_row)]
                with m.If(final):
                    m.d.comb += pop.eq(1)
                    m.d.sync += [r_row.eq(0), first_row.eq(1)]
            with m.Else():
                m.d.sync += [r_beat.eq(r_beat + 1), row_failed.eq(row_failed | failed)]
                for index, slot in enumerate(slots):
                    with m.If(r_beat == index):
                        m.d.sync += slot.eq(response.payload.data)
        m.d.comb += records.r_en.eq(pop)
        with m.If(beat):
            m.d.sync += cmd_failed.eq(cmd_failed | failed)
        # The scratchpad writes leave through registers (no path from the record FIFO and
        # the row counter into the host/DMA write mux and the memories), and ``done`` comes
        # with them, a cycle after the last beat: a command is done once its rows are in.
        m.d.sync += [self.done.eq(pop & rec.last), self.error.eq(cmd_failed | failed)]
        with m.If(pop & rec.last):
            m.d.sync += cmd_failed.eq(0)

        # Scratchpad writes, on the last beat of each row of a read.
        write = Signal()
        m.d.comb += write.eq(beat & ~rec.store & row_end & ~row_failed & ~failed)
        spad_addr = rec.spad_addr + r_row
        for target, port in ((TARGET_A, self.a_wr), (TARGET_W, self.w_wr),
                             (TARGET_QP, self.qp_wr)):
            bits = Cat(*slots[:rb[target] - 1], response.payload.data)
            if target == TARGET_QP:
                for lane in range(e.requant_lanes):
                    base = lane * QP_CHANNEL_BITS
                    entry = port.data[lane]
                    m.d.sync += [entry.bias.eq(bits[base:base + 32]),
                                 entry.multiplier.eq(bits[base + 32:base + 64]),
                                 entry.shift.eq(bits[base + 64:base + 64 + len(entry.shift)])]
            else:
                m.d.sync += port.data.eq(bits[:len(port.data.as_value())])
            m.d.sync += [port.addr.eq(spad_addr), port.en.eq(write & (rec.target == target))]
