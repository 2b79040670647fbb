"""A FIFO whose writes stay invisible until committed, and can be taken back.

The link receiver writes each flit of a frame as it arrives, before the frame's CRC has been
checked. At the end of the frame it either commits the first ``keep`` of them (good CRC, in
sequence) or takes them all back (bad CRC, duplicate, out of order). The reader only ever
sees committed entries, so a flit whose frame failed its CRC is never delivered.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CommitFifo"]


class CommitFifo(wiring.Component):
    """FIFO with tentative writes, committed or rolled back together.

    Parameters
    ----------
    width : int
        Bits per entry.
    depth : int
        Entries, committed and tentative together.
    max_keep : int
        Largest ``keep`` a commit may ask for.

    Members
    -------
    w_data : In(width), w_en : In(1)
        Write a tentative entry (ignored when ``w_rdy`` is low).
    w_rdy : Out(1)
        Room for another tentative entry.
    settle : In(1)
        End of a group of tentative writes: the first ``keep`` of them become readable, the
        rest are dropped. ``keep = 0`` takes every tentative entry back. Must not coincide
        with ``w_en``.
    keep : In(range(max_keep + 1))
        How many tentative entries to commit; must not exceed ``pending`` when ``commit``.
    commit : In(1, init=1)
        At a settle, whether to commit ``keep`` entries (else none). With ``keep`` from a
        register, the pointer arithmetic is done before ``commit`` picks it: a late ``commit``
        (a CRC check) only drives a multiplexer.
    pending : Out(range(depth + 1))
        Tentative entries written since the last settle.
    r : Out(stream.Signature(width))
        Committed entries, in order.
    level : Out(range(depth + 1))
        Committed entries not yet read.
    """

    def __init__(self, width: int, depth: int, max_keep: int):
        if depth < 1 or not 0 <= max_keep <= depth:
            raise ValueError(f"Need depth >= 1 and 0 <= max_keep <= depth, not depth={depth}, "
                             f"max_keep={max_keep}")
        self.width, self.depth, self.max_keep = width, depth, max_keep
        super().__init__({
            "w_data": In(width),
            "w_en": In(1),
            "w_rdy": Out(1),
            "settle": In(1),
            "keep": In(range(max_keep + 1)),
            "commit": In(1, init=1),
            "pending": Out(range(depth + 1)),
            "r": Out(stream.Signature(width)),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.storage = storage = memory.Memory(shape=self.width, depth=depth, init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")

        def advance(pointer, by):
            total = pointer + by
            return Mux(total >= depth, total - depth, total)[:len(pointer)]

        wr_ptr = Signal(range(depth))    # next tentative write
        commit_ptr = Signal(range(depth))  # end of the committed entries
        rd_ptr = Signal(range(depth))

        write = Signal()
        read = Signal()
        m.d.comb += [
            self.w_rdy.eq(self.level + self.pending < depth),
            write.eq(self.w_en & self.w_rdy),
            w_port.addr.eq(wr_ptr),
            w_port.data.eq(self.w_data),
            w_port.en.eq(write),
            r_port.addr.eq(rd_ptr),
            self.r.payload.eq(r_port.data),
            self.r.valid.eq(self.level != 0),
            read.eq(self.r.valid & self.r.ready),
        ]

        with m.If(read):
            m.d.sync += rd_ptr.eq(advance(rd_ptr, 1))

        with m.If(self.settle):
            new_end = Mux(self.commit, advance(commit_ptr, self.keep), commit_ptr)
            m.d.sync += [
                commit_ptr.eq(new_end),
                wr_ptr.eq(new_end),
                self.pending.eq(0),
                self.level.eq(Mux(self.commit, self.level + self.keep - read,
                                  self.level - read)),
            ]
        with m.Else():
            with m.If(write):
                m.d.sync += [wr_ptr.eq(advance(wr_ptr, 1)), self.pending.eq(self.pending + 1)]
            m.d.sync += self.level.eq(self.level - read)
        return m
