"""Formal property wrappers of the NPU tile's control: the command queue keeps commands in
order and one status each, and the DMA writes only the scratchpad rows its LOAD names.
Run by :func:`chipknit.tb.formal.check` (see ``tests/test_formal_npu.py``).

As in :mod:`chipknit.tb.properties`, free inputs are top-level ports the solver drives
arbitrarily every cycle (reset included). The network's responses are free too: any tag,
status, data and timing, so the properties hold whatever the network does.
"""

from amaranth.hdl import Assert, Assume, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.transaction import TransactionParams
from chipknit.rtl.npu.array import ArrayParams
from chipknit.rtl.npu.commands import CommandQueue, QueueParams, command_layout
from chipknit.rtl.npu.dma import TARGET_A, TARGET_QP, TARGET_W, Dma, DmaParams, dma_command_layout
from chipknit.rtl.npu.engine import EngineParams

__all__ = ["small_queue_params", "QueueOrderProperties", "DmaWriteRangeProperties"]


def small_queue_params() -> QueueParams:
    """A 1×1 array with 2-row scratchpads, a 2-entry FIFO, 2 commands and 2 requests in
    flight, a 1-entry DMA command FIFO, 32-bit beats and bursts of up to 4 beats: every
    path of the queue, small."""
    engine = EngineParams(array=ArrayParams(rows=1, cols=1), a_depth=2, w_depth=2,
                          acc_depth=2, qp_depth=2, requant_lanes=1)
    transaction = TransactionParams(flit=FlitFormat(data_width=32), length_bits=2,
                                    tag_bits=2)
    return QueueParams(engine, depth=2, in_flight=2, transaction=transaction,
                       outstanding=2, dma_queue=1)


def _drive_bus(m, bus, ports):
    """The network side of an initiator port from free inputs."""
    m.d.comb += [bus.request.ready.eq(ports.req_ready), bus.wdata.ready.eq(ports.wdata_ready),
                 bus.response.valid.eq(ports.rsp_valid),
                 bus.response.payload.eq(ports.rsp_payload)]


class QueueOrderProperties(wiring.Component):
    """A :class:`CommandQueue` (small, :func:`small_queue_params`) under any commands, any
    backpressure on ``status`` and ``o``, any network.

    Proves, from reset, to the depth checked:

    - statuses leave in command order, one per command: the k-th status carries sequence
      number k (mod 256) and never comes before its command was taken;
    - it is *that* command's status: for one command the solver picks (``track``), the
      status with its index carries its opcode;
    - none is lost: whenever the queue is idle (``busy`` low) every command taken has had
      its status;
    - no LOAD reaches the DMA that names rows beyond its scratchpad (the range check).
    """

    def __init__(self, params: QueueParams | None = None):
        self.params = params or small_queue_params()
        t = self.params.transaction
        super().__init__({
            "cmd_valid": In(1), "cmd_payload": In(command_layout), "track": In(1),
            "status_ready": In(1), "o_ready": In(1),
            "req_ready": In(1), "wdata_ready": In(1), "rsp_valid": In(1),
            "rsp_payload": In(t.response_layout),
        })

    def elaborate(self, platform):
        m = Module()
        p, e = self.params, self.params.engine
        m.submodules.queue = queue = CommandQueue(p)
        m.d.comb += [queue.cmd.valid.eq(self.cmd_valid), queue.cmd.payload.eq(self.cmd_payload),
                     queue.status.ready.eq(self.status_ready), queue.o.ready.eq(self.o_ready)]
        for port in ("a_wr", "w_wr", "qp_wr"):
            m.d.comb += getattr(queue, port).en.eq(0)
        _drive_bus(m, queue.bus, self)

        taken = Signal(6)
        given = Signal(6)
        accept = queue.cmd.valid & queue.cmd.ready
        leave = queue.status.valid & queue.status.ready
        m.d.sync += [taken.eq(taken + accept), given.eq(given + leave)]
        tracking, tracked, tracked_opcode = Signal(), Signal(6), Signal(4)
        with m.If(accept & self.track & ~tracking):
            m.d.sync += [tracking.eq(1), tracked.eq(taken),
                         tracked_opcode.eq(queue.cmd.payload.opcode)]
        with m.If(leave):
            m.d.comb += [Assert(queue.status.payload.seq == given),
                         Assert(given != taken)]
            with m.If(tracking & (given == tracked)):
                m.d.comb += Assert(queue.status.payload.opcode == tracked_opcode)
        with m.If(~queue.busy):
            m.d.comb += Assert(taken == given)
        m.d.comb += Assume(taken != 63)           # the counters never wrap in the bound

        dma = queue.dma.cmd
        with m.If(dma.valid & dma.ready & ~dma.payload.store):
            depth = {TARGET_A: e.a_depth, TARGET_W: e.w_depth, TARGET_QP: e.qp_depth}
            m.d.comb += Assert(dma.payload.target != 3)
            for target, rows in depth.items():
                with m.If(dma.payload.target == target):
                    m.d.comb += Assert(dma.payload.spad_base + dma.payload.rows <= rows)
        return m


class DmaWriteRangeProperties(wiring.Component):
    """A :class:`Dma` (small) under any commands the queue lets through (LOADs within their
    scratchpad), any requantiser beats, any network.

    Proves, from reset, to the depth checked: every scratchpad write belongs to the LOAD
    in progress at the time (writes happen in command order, the k-th command's before its
    ``done``) and falls inside its rows ``[spad_base, spad_base + rows)`` of its scratchpad;
    a STORE writes no scratchpad. The command checked is the one the solver picks
    (``track``), so this holds for every command. With ``queue_range_check=False`` the
    commands may run past the end of their scratchpad, and the property must fail (the
    row address wraps).
    """

    def __init__(self, params: DmaParams | None = None, *, queue_range_check: bool = True):
        self.params = params or small_queue_params().dma
        self.queue_range_check = queue_range_check
        t = self.params.transaction
        super().__init__({
            "cmd_valid": In(1), "cmd_payload": In(dma_command_layout(self.params)),
            "track": In(1), "rq_valid": In(1), "rq_payload": In(data.ArrayLayout(
                32, self.params.engine.requant_lanes)),
            "req_ready": In(1), "wdata_ready": In(1), "rsp_valid": In(1),
            "rsp_payload": In(t.response_layout),
        })

    def elaborate(self, platform):
        m = Module()
        e = self.params.engine
        m.submodules.dma = dma = Dma(self.params)
        depth = {TARGET_A: e.a_depth, TARGET_W: e.w_depth, TARGET_QP: e.qp_depth}
        cmd = self.cmd_payload
        # The queue's range check (proved in QueueOrderProperties); it sends no empty
        # transfer (those are no-ops it completes itself).
        m.d.comb += [Assume(cmd.store | (cmd.target != 3)), Assume(cmd.rows != 0)]
        for target, rows in depth.items():
            with m.If(~cmd.store & (cmd.target == target) & self.queue_range_check):
                m.d.comb += Assume(cmd.spad_base + cmd.rows <= rows)
        m.d.comb += [dma.cmd.valid.eq(self.cmd_valid), dma.cmd.payload.eq(cmd),
                     dma.rq.valid.eq(self.rq_valid), dma.rq.payload.eq(self.rq_payload)]
        _drive_bus(m, dma.bus, self)

        taken = Signal(6)
        dones = Signal(6)
        accept = dma.cmd.valid & dma.cmd.ready
        m.d.sync += [taken.eq(taken + accept), dones.eq(dones + dma.done)]
        m.d.comb += Assume(taken != 63)
        tracking, tracked = Signal(), Signal(6)
        picked = Signal.like(dma.cmd.payload)
        with m.If(accept & self.track & ~tracking):
            m.d.sync += [tracking.eq(1), tracked.eq(taken), picked.eq(cmd)]
        ports = {TARGET_A: dma.a_wr, TARGET_W: dma.w_wr, TARGET_QP: dma.qp_wr}
        with m.If(tracking & (dones == tracked)):
            for target, port in ports.items():
                with m.If(port.en):
                    m.d.comb += [Assert(~picked.store), Assert(picked.target == target),
                                 Assert(port.addr >= picked.spad_base),
                                 Assert(port.addr < picked.spad_base + picked.rows)]
        # Nothing is written before any command was taken.
        with m.If(taken == 0):
            m.d.comb += Assert(~(dma.a_wr.en | dma.w_wr.en | dma.qp_wr.en))
        m.d.comb += Assert(dones <= taken)
        return m
