"""Block RAM whose synchronous reads never use a word written in the same cycle.

An ``amaranth.lib.memory`` read port in the sync domain reads the old word when the same
address is written in the same cycle. The iCE40's and ECP5's block RAMs leave that case
undefined, so Yosys emulates it: it delays every write by a cycle and multiplexes the
delayed word in front of the RAM's output, about ``2 · width`` flip-flops and ``width`` LUTs a
memory (for 256 × 18 bits: 46 FFs and 30 LUT4 on the iCE40, where each flip-flop alone costs
a logic cell; 46 FFs and 28 LUT4 on the ECP5).

A block whose reads never *use* a word read in the cycle it was written (a FIFO that reads
only committed entries, a buffer that reads only the bank it does not write, a port whose
read and write enables are exclusive) can say so. :func:`collision_free_memory` marks the memory
``no_rw_check``, and :func:`registered_read` reads it asynchronously into a register of its
own, which Yosys's ``memory_dff`` merges back into the read port with the collision left
undefined: the same block RAM, without the emulation (for the 256 × 18 above: 1 FF and 19
LUT4 on the iCE40, a flag for the register's reset value, which the RAM's output lacks;
nothing on the ECP5; ``tests/test_block_ram.py``). In simulation the two
forms are the same (the old word), so a block that does use a colliding read is not caught
by its testbenches: each user states why its collisions are never read.
"""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib.memory import Memory

__all__ = ["collision_free_memory", "registered_read"]


def collision_free_memory(*, shape, depth: int, init=()) -> Memory:
    """A :class:`~amaranth.lib.memory.Memory` marked ``no_rw_check`` (see the module
    documentation); read it with :func:`registered_read`."""
    return Memory(shape=shape, depth=depth, init=init, attrs={"no_rw_check": 1})


def registered_read(m: Module, memory: Memory, addr, *, enable: Value | int = 1,
                    name: str) -> Signal:
    """A synchronous read of ``memory`` at ``addr``: the word, in the next cycle, of every
    cycle ``enable`` is high (it holds otherwise). An asynchronous read port and a
    reset-less register, so that Yosys merges the register into the block RAM."""
    port = memory.read_port(domain="comb")
    data = Signal(memory.shape, reset_less=True, name=name)
    m.d.comb += port.addr.eq(addr)
    with m.If(enable):
        m.d.sync += data.eq(port.data)
    return data
