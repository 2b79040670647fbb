"""A FIFO whose writes stay invisible until committed, and can be taken back.

The link receiver writes each flit of a frame as it arrives, before the frame's CRC has been
checked. At the end of the frame it either commits the first ``keep`` of them (good CRC, in
sequence) or takes them all back (bad CRC, duplicate, out of order). The reader only ever
sees committed entries, so a flit whose frame failed its CRC is never delivered.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..block_ram import collision_free_memory, registered_read

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
        #: Entries in use, committed and tentative (``level + pending``), as a counter.
        self.used = Signal(range(depth + 1))
        #: The registered read pointer and its successor agree (for formal proofs).
        self.pointers_ok = Signal()

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.storage = storage = collision_free_memory(shape=self.width, depth=depth)
        w_port = storage.write_port()
        # A registered read of the entry at the next cycle's read pointer (block RAM): the
        # entry at `rd_ptr` is always on `r.payload`. An entry is written at least a cycle
        # before the settle that commits it, and is read only once committed: a read in the
        # cycle its entry is written is never used, so the RAM may leave it undefined
        # (`collision_free_memory`; writes go to free entries only).

        def advance(pointer, by):
            total = pointer + by
            return Mux(total >= depth, total - depth, total)[:len(pointer)]

        wr_ptr = Signal(range(depth))    # next tentative write
        commit_ptr = Signal(range(depth))  # end of the committed entries
        rd_ptr = Signal(range(depth))
        rd_ptr_after = Signal(range(depth), init=1 % depth)   # advance(rd_ptr, 1), a register

        # Entries in use (committed and tentative), an up/down counter: the room check is a
        # compare of one register, not a sum.
        used = self.used
        write = Signal()
        read = Signal()
        next_rd_ptr = Signal(range(depth))
        r_data = registered_read(m, storage, next_rd_ptr, name="r_data")
        m.d.comb += [
            self.w_rdy.eq(used < depth),
            write.eq(self.w_en & self.w_rdy),
            w_port.addr.eq(wr_ptr),
            w_port.data.eq(self.w_data),
            w_port.en.eq(write),
            next_rd_ptr.eq(Mux(read, rd_ptr_after, rd_ptr)),
            self.pointers_ok.eq((rd_ptr_after == advance(rd_ptr, 1)) & (rd_ptr < depth)),
            self.r.payload.eq(r_data),
            self.r.valid.eq(self.level != 0),
            read.eq(self.r.valid & self.r.ready),
        ]
        m.d.sync += rd_ptr.eq(next_rd_ptr)
        with m.If(read):
            m.d.sync += rd_ptr_after.eq(advance(rd_ptr_after, 1))

        # Every outcome of a settle, with and without a read, is computed from registers
        # before the late `commit` and `read` pick one.
        level_dropped = Signal(range(depth + 1))   # level - 1 (used with a read)
        level_kept = Signal(range(depth + 1))      # level + keep
        level_kept_read = Signal(range(depth + 1))  # level + keep - 1
        m.d.comb += [level_dropped.eq(self.level - 1),
                     level_kept.eq(self.level + self.keep),
                     level_kept_read.eq(self.level + self.keep - 1)]
        level_after_read = Mux(read, level_dropped, self.level)
        with m.If(self.settle):
            new_end = Mux(self.commit, advance(commit_ptr, self.keep), commit_ptr)
            new_level = Mux(self.commit, Mux(read, level_kept_read, level_kept),
                            level_after_read)
            m.d.sync += [
                commit_ptr.eq(new_end),
                wr_ptr.eq(new_end),
                self.pending.eq(0),
                self.level.eq(new_level),
                used.eq(new_level),
            ]
        with m.Else():
            with m.If(write):
                m.d.sync += [wr_ptr.eq(advance(wr_ptr, 1)), self.pending.eq(self.pending + 1)]
            used_up = Signal(range(depth + 1))
            used_down = Signal(range(depth + 1))
            m.d.comb += [used_up.eq(used + 1), used_down.eq(used - 1)]
            m.d.sync += [self.level.eq(level_after_read),
                         used.eq(Mux(write, Mux(read, used, used_up),
                                     Mux(read, used_down, used)))]
        return m
