"""The NPU tile: the command queue and its DMA, reachable over the network.

A host (or any initiator) drives the NPU through a small register window on the tile's
*target* port; the NPU fetches and stores operands itself through its DMA on the tile's
*initiator* port. On a router the tile takes two local ports, one per network interface.

Register window (one 32-bit beat each, byte addresses; :data:`NPU_REGISTERS`)

=======  ================  ====  ==========================================================
address  name              bits  meaning
=======  ================  ====  ==========================================================
0x00     ``command_lo``    rw    bits 31..0 of the next command
0x04     ``command_hi``    rw    bits 63..32; writing it issues ``{command_hi, command_lo}``
                                 (a two-beat write to 0x00 issues one command)
0x08     ``status``        r     bit 31: a status record was waiting; bits 15..0: the oldest
                                 status record (``chipknit.rtl.npu.commands.status_layout``).
                                 Reading it with bit 31 set removes that record.
0x0c     ``free``          r     commands the tile can take now without losing one
0x10     ``pending``       r     status records waiting to be read
0x14     ``issued``        r     commands issued since reset
0x18     ``lost``          r     commands written while the tile was full (dropped)
0x1c     ``busy``          r     the queue or the DMA is working
=======  ================  ====  ==========================================================

Outcomes: a command written when ``free`` is 0 is dropped and counted in ``lost`` (the
host driver reads ``free`` first, so this only happens to a host that does not); the
queue's own checks give illegal or out-of-range commands their error status; requests to
addresses past the window get ``TARGET_ERROR``. Results leave only through STORE: the
queue's direct result stream is drained and counted in ``discarded`` (a program for the
tile stores its results).
"""

from dataclasses import dataclass, field

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from ..credit import SaturatingCounter
from ..noc.transaction import InitiatorSignature, TargetSignature
from ..npu.commands import CommandQueue, QueueParams, status_layout
from ..registers import Access, Register, RegisterBank

__all__ = ["NpuTileParams", "NpuTile", "NPU_REGISTERS"]

#: The register window, in address order.
NPU_REGISTERS = (
    Register("command_lo", 32, Access.READ_WRITE, description="bits 31..0 of the next command"),
    Register("command_hi", 32, Access.READ_WRITE,
             description="bits 63..32; writing it issues the command"),
    Register("status", 32, description="bit 31: valid; 15..0: the oldest status (read pops)"),
    Register("free", 16, description="commands the tile can take now"),
    Register("pending", 16, description="status records waiting"),
    Register("issued", 32, description="commands issued since reset"),
    Register("lost", 16, description="commands written while full (dropped)"),
    Register("busy", 1, description="the queue or its DMA is working"),
)


@dataclass(frozen=True)
class NpuTileParams:
    """Parameters of an :class:`NpuTile`.

    Parameters
    ----------
    queue : QueueParams
        The command queue, its engine and its DMA (whose transactions the tile's ports use).
    staging : int
        Commands buffered in front of the queue's own FIFO.
    status_depth : int
        Status records kept for the host to read.
    counter_width : int
        Width of ``discarded`` and of the window's error counter.
    """
    queue: QueueParams = field(default_factory=QueueParams)
    staging: int = 4
    status_depth: int = 8
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.queue, QueueParams):
            raise TypeError(f"Expected QueueParams, not {self.queue!r}")
        for name in ("staging", "status_depth", "counter_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name.replace('_', ' ').capitalize()} must be a positive "
                                 f"integer, not {value!r}")
        if self.queue.transaction.data_width != 32:
            raise ValueError(f"The NPU register window needs 32-bit beats, not "
                             f"{self.queue.transaction.data_width}")


class NpuTile(wiring.Component):
    """The NPU behind two network ports.

    Members
    -------
    control : In(TargetSignature(transaction))
        The register window (see the module docs).
    dma : Out(InitiatorSignature(transaction))
        The DMA's requests to remote memory.
    discarded : Out(counter_width)
        Results that left the queue's direct result stream (drained, not stored).
    window_errors : Out(counter_width)
        Requests to the window refused with ``TARGET_ERROR``.
    """

    def __init__(self, params: NpuTileParams = NpuTileParams()):
        if not isinstance(params, NpuTileParams):
            raise TypeError(f"Expected NpuTileParams, not {params!r}")
        self.params = params
        self.bank = RegisterBank(params.queue.transaction, NPU_REGISTERS,
                                 counter_width=params.counter_width)
        transaction = params.queue.transaction
        super().__init__({
            "control": In(TargetSignature(transaction)),
            "dma": Out(InitiatorSignature(transaction)),
            "discarded": Out(params.counter_width),
            "window_errors": Out(params.counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        m.submodules.bank = bank = self.bank
        m.submodules.queue = queue = CommandQueue(p.queue)
        wiring.connect(m, wiring.flipped(self.control), bank.bus)
        wiring.connect(m, queue.bus, wiring.flipped(self.dma))
        m.d.comb += self.window_errors.eq(bank.errors)

        # The host never writes the scratchpads directly: the DMA does.
        for port in ("a_wr", "w_wr", "qp_wr"):
            m.d.comb += getattr(queue, port).en.eq(0)
        m.submodules.discarded = discarded = SaturatingCounter(p.counter_width, registered=True)
        m.d.comb += [queue.o.ready.eq(1), discarded.inc.eq(queue.o.valid),
                     self.discarded.eq(discarded.count)]

        # Commands: the write of command_hi issues {hi, lo} (the bank holds the new value
        # from the next cycle, so the push is one cycle later).
        m.submodules.staging = staging = fifo.SyncFIFOBuffered(width=64, depth=p.staging)
        issue = Signal()
        m.d.sync += issue.eq(bank.writes.command_hi)
        m.submodules.issued = issued = SaturatingCounter(32)
        m.submodules.lost = lost = SaturatingCounter(16)
        m.d.comb += [
            staging.w_data.eq(Cat(bank.control.command_lo, bank.control.command_hi)),
            staging.w_en.eq(issue),
            issued.inc.eq(issue & staging.w_rdy),
            lost.inc.eq(issue & ~staging.w_rdy),
            queue.cmd.valid.eq(staging.r_rdy),
            queue.cmd.payload.eq(staging.r_data),
            staging.r_en.eq(queue.cmd.ready),
        ]
        # ``free`` counts only the staging FIFO, which is what a write lands in; the write
        # that is still on its way to it (``issue``) is already taken.
        taken = staging.level + issue
        m.d.comb += bank.status.free.eq(Mux(taken >= p.staging, 0, p.staging - taken))

        # Statuses wait in a FIFO until the host reads them; reading ``status`` pops one.
        m.submodules.statuses = statuses = fifo.SyncFIFOBuffered(
            width=status_layout.size, depth=p.status_depth)
        m.d.comb += [
            statuses.w_data.eq(queue.status.payload),
            statuses.w_en.eq(queue.status.valid),
            queue.status.ready.eq(statuses.w_rdy),
            bank.status.status.eq(Cat(statuses.r_data, Signal(31 - status_layout.size),
                                      statuses.r_rdy)),
            statuses.r_en.eq(bank.reads.status),
            bank.status.pending.eq(statuses.level),
            bank.status.issued.eq(issued.count),
            bank.status.lost.eq(lost.count),
            bank.status.busy.eq(queue.busy | staging.r_rdy),
        ]
        return m
