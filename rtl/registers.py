"""A bank of memory-mapped registers behind the network's transaction protocol.

Blocks expose their counters and controls as plain signals; a :class:`RegisterBank` makes
them readable (and the controls writable) from anywhere on the fabric, as a *target* of
:mod:`~chipknit.rtl.noc.transaction`. Register ``i`` sits at byte address
``i * beat_bytes`` and is one beat wide (narrower registers read as zero-extended,
wider ones are refused at elaboration).

Behaviour (the reference model is ``chipknit.tb.models.registers``):

- a read of ``length + 1`` beats from register ``i`` returns registers ``i .. i + length``,
  sampled one per cycle into the bank's read register (the cycle of each register's
  ``reads`` strobe); if any of them does not exist, or the address
  is not beat aligned, every beat carries ``TARGET_ERROR`` and ``data`` 0;
- a write of ``length + 1`` beats to register ``i`` writes the control registers among
  ``i .. i + length``, honouring the byte strobes, and answers ``OKAY``; a write that
  touches a missing or read-only register, or is unaligned, changes nothing and answers
  ``TARGET_ERROR`` (all of its data beats are still consumed);
- ``errors`` counts refused requests (saturating).

One request is served at a time: reads stream one beat per cycle (the first two cycles
after the request: the read multiplexer ends at a register of its own, then the response
register), writes take one data beat per cycle, and the response of a write follows its
last beat by two cycles.
"""

import enum as py_enum
import re
from dataclasses import dataclass

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from .credit import SaturatingCounter
from .noc.transaction import Status, TargetSignature, TransactionParams

__all__ = ["Access", "Register", "RegisterBank"]

_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")


class Access(py_enum.Enum):
    #: Read-only: the bank reads a status signal the block drives.
    READ = "r"
    #: Read-write: the bank holds a control register the block reads.
    READ_WRITE = "rw"


@dataclass(frozen=True)
class Register:
    """One register of a bank.

    Parameters
    ----------
    name : str
        Field name in the bank's ``status`` or ``control`` member (lower case, an
        identifier).
    width : int
        Bits, at most one beat.
    access : Access
        ``READ`` (a status the block drives) or ``READ_WRITE`` (a control the bank holds).
    reset : int
        Reset value of a control register.
    description : str
        What it is, for the generated register map.
    """
    name: str
    width: int
    access: Access = Access.READ
    reset: int = 0
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"Register name must be a lower-case identifier, "
                             f"not {self.name!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool) or self.width < 1:
            raise ValueError(f"Register {self.name!r}: width must be a positive integer, "
                             f"not {self.width!r}")
        if not isinstance(self.access, Access):
            raise TypeError(f"Register {self.name!r}: access must be an Access, "
                            f"not {self.access!r}")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"Register {self.name!r}: reset value {self.reset} does not fit "
                             f"{self.width} bits")


class _State(enum.Enum, shape=2):
    IDLE = 0
    READ = 1
    WRITE = 2
    RESPOND = 3


class RegisterBank(wiring.Component):
    """Registers readable and writable over the network.

    Parameters
    ----------
    params : TransactionParams
        The network's transactions; a register is one beat (``data_width`` bits).
    registers : sequence of Register
        In address order: register ``i`` is at byte address ``i * beat_bytes``.
    counter_width : int
        Width of ``errors``.

    Members
    -------
    bus : In(TargetSignature(params))
        Requests in, responses out.
    status : In(StructLayout)
        One field per ``READ`` register, driven by the block.
    control : Out(StructLayout)
        One field per ``READ_WRITE`` register, held by the bank.
    errors : Out(counter_width)
        Requests refused with ``TARGET_ERROR``.
    reads, writes : Out(StructLayout)
        One bit per register: high for the cycle a beat of it is read (its value is sampled
        into the bank's response register, which the beat leaves from) or written (the data
        beat is taken; the register holds the new value from the next cycle). Refused
        requests strobe nothing. A block uses them for side effects: a read that pops a
        FIFO, a write that starts something.
    """

    def __init__(self, params: TransactionParams, registers, *, counter_width: int = 16):
        if not isinstance(params, TransactionParams):
            raise TypeError(f"Transaction parameters must be a TransactionParams, "
                            f"not {params!r}")
        registers = tuple(registers)
        if not registers:
            raise ValueError("A register bank needs at least one register")
        seen = set()
        for register in registers:
            if not isinstance(register, Register):
                raise TypeError(f"Expected a Register, not {register!r}")
            if register.name in seen:
                raise ValueError(f"Register name {register.name!r} is used twice")
            seen.add(register.name)
            if register.width > params.data_width:
                raise ValueError(f"Register {register.name!r} is {register.width} bits, wider "
                                 f"than a {params.data_width}-bit beat")
        if 1 << (params.addr_width - params.align_bits) < len(registers):
            raise ValueError(f"{len(registers)} registers do not fit {params.addr_width} "
                             f"address bits")
        self.params = params
        self.registers = registers
        self.counter_width = counter_width

        def layout(access):
            fields = {r.name: r.width for r in registers if r.access is access}
            return data.StructLayout(fields or {"unused": 1})

        super().__init__({
            "bus": In(TargetSignature(params)),
            "status": In(layout(Access.READ)),
            "control": Out(layout(Access.READ_WRITE), init={
                r.name: r.reset for r in registers if r.access is Access.READ_WRITE}),
            "errors": Out(counter_width),
            "reads": Out(data.StructLayout({r.name: 1 for r in registers})),
            "writes": Out(data.StructLayout({r.name: 1 for r in registers})),
        })

    def address(self, name: str) -> int:
        """Byte address of register ``name``."""
        for index, register in enumerate(self.registers):
            if register.name == name:
                return index * self.params.beat_bytes
        raise KeyError(f"No register {name!r}")

    def register_map(self) -> str:
        """The register map as a Markdown table."""
        lines = ["| address | name | bits | access | reset | description |",
                 "|---|---|---|---|---|---|"]
        for index, r in enumerate(self.registers):
            lines.append(f"| 0x{index * self.params.beat_bytes:04x} | `{r.name}` | {r.width} "
                         f"| {r.access.value} | {r.reset} | {r.description} |")
        return "\n".join(lines)

    def elaborate(self, platform):
        m = Module()
        p, registers = self.params, self.registers
        bus = self.bus
        count = len(registers)
        index_width = max(1, (count - 1).bit_length())

        def value(register):
            group = self.status if register.access is Access.READ else self.control
            return getattr(group, register.name)

        # Padded to every value of ``index`` (a refused read answers 0 anyway), so the read
        # multiplexer is a complete case statement (Verilator's CASEINCOMPLETE otherwise).
        read_values = Array([*(value(r) for r in registers),
                             *(Const(0) for _ in range((1 << index_width) - count))])

        state = Signal(_State)
        index = Signal(index_width)      # the register the next beat reads or writes
        remaining = Signal(p.length_bits)  # beats left after this one
        tag = Signal(p.tag_bits)
        refused = Signal()

        # The event is registered: the decode (an address sum and compare) ends at a
        # flip-flop, and the count, which a package's counters bank reads from across the
        # die, starts from one (it was the default package's critical path at 100 MHz).
        m.submodules.errors = errors = SaturatingCounter(self.counter_width, registered=True)
        m.d.comb += self.errors.eq(errors.count)

        request = bus.request.payload
        word = request.addr[p.align_bits:]
        last_word = word + request.length
        aligned = request.addr[:p.align_bits] == 0 if p.align_bits else Const(1)
        in_range = last_word < count
        # Every register in [word, last_word] must be writable for a write: no read-only
        # register in the span. Only matters in range, where both ends fit the index.
        read_only = [i for i, r in enumerate(registers) if r.access is Access.READ]
        if not read_only:
            all_writable = Const(1)
        elif len(read_only) == count:
            all_writable = Const(0)
        else:
            first_index, last_index = word[:index_width], last_word[:index_width]
            touched = Signal(len(read_only))
            top = (1 << index_width) - 1
            for k, i in enumerate(read_only):
                # first <= i <= last, written without the comparisons that are constant at
                # either end of the index range (lint flags them).
                low = first_index == 0 if i == 0 else Const(1) if i == top \
                    else first_index <= i
                high = last_index == top if i == top else Const(1) if i == 0 \
                    else last_index >= i
                m.d.comb += touched[k].eq(low & high)
            all_writable = ~touched.any()

        # Responses leave from a register (one beat), and a read beat passes a register
        # before it (``sample``): the read multiplexer ends at ``sample``, its enable decided
        # from registers, and nothing after ``sample`` but a move. A beat is sampled, and its
        # ``reads`` strobe raised, as it enters ``sample``.
        out_valid = Signal()
        out = Signal(p.response_layout)
        free = ~out_valid | bus.response.ready
        m.d.comb += [bus.response.valid.eq(out_valid), bus.response.payload.eq(out)]
        with m.If(bus.response.ready):
            m.d.sync += out_valid.eq(0)
        sample_valid = Signal()
        sample = Signal(p.response_layout)
        move = sample_valid & free
        with m.If(move):
            m.d.sync += [out.eq(sample), out_valid.eq(1), sample_valid.eq(0)]

        with m.Switch(state):
            with m.Case(_State.IDLE):
                m.d.comb += bus.request.ready.eq(1)
                with m.If(bus.request.valid):
                    ok = aligned & in_range & Mux(request.write, all_writable, 1)
                    m.d.sync += [
                        index.eq(word), remaining.eq(request.length),
                        tag.eq(request.tag), refused.eq(~ok),
                        state.eq(Mux(request.write, _State.WRITE, _State.READ)),
                    ]
                    m.d.comb += errors.inc.eq(~ok)
            with m.Case(_State.READ):
                with m.If(~sample_valid | move):
                    m.d.sync += [
                        sample_valid.eq(1),
                        sample.write.eq(0), sample.tag.eq(tag),
                        sample.status.eq(Mux(refused, Status.TARGET_ERROR, Status.OKAY)),
                        sample.data.eq(Mux(refused, 0, read_values[index])),
                        sample.last.eq(remaining == 0),
                        index.eq(index + 1), remaining.eq(remaining - 1),
                    ]
                    for i, r in enumerate(registers):
                        m.d.comb += getattr(self.reads, r.name).eq(~refused & (index == i))
                    with m.If(remaining == 0):
                        m.d.sync += state.eq(_State.IDLE)
            with m.Case(_State.WRITE):
                beat = bus.wdata.payload
                m.d.comb += bus.wdata.ready.eq(1)
                with m.If(bus.wdata.valid):
                    for i, r in enumerate(registers):
                        m.d.comb += getattr(self.writes, r.name).eq(~refused & (index == i))
                    with m.If(~refused):
                        for i, r in enumerate(registers):
                            if r.access is not Access.READ_WRITE:
                                continue
                            target = value(r)
                            with m.If(index == i):
                                for byte in range(-(-r.width // 8)):
                                    bits = slice(8 * byte, min(8 * byte + 8, r.width))
                                    with m.If(beat.strobe[byte]):
                                        m.d.sync += target[bits].eq(beat.data[bits])
                    m.d.sync += [index.eq(index + 1), remaining.eq(remaining - 1)]
                    # The length in the request decides the end; ``last`` is advisory.
                    with m.If(remaining == 0):
                        m.d.sync += state.eq(_State.RESPOND)
            with m.Case(_State.RESPOND):
                # After the read beats still on their way (a write's response never passes them).
                with m.If(free & ~sample_valid):
                    m.d.sync += [
                        out_valid.eq(1),
                        out.write.eq(1), out.tag.eq(tag),
                        out.status.eq(Mux(refused, Status.TARGET_ERROR, Status.OKAY)),
                        out.data.eq(0), out.last.eq(1),
                        state.eq(_State.IDLE),
                    ]
        return m
