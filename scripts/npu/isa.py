"""The NPU command queue's instruction set: encoder, status decoder, range checks, formats.

Pure Python (imports no RTL); the layout here and ``chipknit.rtl.npu.commands`` describe the
same bits, and ``tests/test_npu_commands.py`` checks that they agree. See ``docs/npu.md``
(*Command queue*, *DMA*).

A command is one 64-bit word::

    [3:0]   opcode     CONFIGURE 1, COMPUTE 2, REQUANTISE 3, FENCE 4, LOAD 5, STORE 6,
                       STRIDE 7; anything else is illegal
    [7:4]   flags      COMPUTE: bit 4 accumulate; REQUANTISE, STORE: bit 4 bypass;
                       LOAD: bits 5:4 the scratchpad (A 0, W 1, QP 2); FENCE: bit 4
                       partial (wait only until at most ``computes`` COMPUTEs and
                       ``transfers`` LOAD/STOREs issued before it still run)
    [63:8]  arguments  per opcode, lowest field first (ARGUMENTS)

A status is one 16-bit word, one per command in command order::

    [3:0]   code       OK 0, ILLEGAL_OPCODE 1, OUT_OF_RANGE 2, DMA_ERROR 3
    [7:4]   opcode     the command's opcode as it was given
    [15:8]  seq        the command's index since reset, modulo 256

Remote memory (what LOAD reads and STORE writes) is addressed in *beats* of the network's
``data_width``; one scratchpad row occupies :meth:`Limits.row_beats` beats, little-endian,
the unused high bytes of its last beat ignored (LOAD) or zero (STORE):

- ``A`` row: R int8; ``W`` row: C int8;
- ``QP`` entry: ``lanes`` channels of 12 bytes each, int32 bias, int32 multiplier, int32
  shift (only the low 6 bits are used), lane 0 first;
- a STORE row: C int8 results, or with ``bypass`` C int32 accumulators.

A LOAD or STORE moves its rows in *lines* of ``line_rows`` rows each (from the last STRIDE;
0 means all rows in one line). Rows of a line are consecutive in memory; line ``l`` starts
at ``remote + l * stride`` beats.
"""

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Opcode", "Status", "Target", "ARGUMENTS", "COMMAND_BITS", "STATUS_BITS",
           "QP_CHANNEL_BYTES", "Limits", "encode", "configure", "compute", "requantise",
           "fence", "FENCE_ANY", "load", "store", "stride", "raw", "decode_status", "fields",
           "expected_status", "row_bytes", "pack_rows", "unpack_rows", "qp_entry_bits",
           "qp_entry_bytes"]

COMMAND_BITS = 64
STATUS_BITS = 16
FLAG_SHIFT, ARG_SHIFT = 4, 8
QP_CHANNEL_BYTES = 12
SHIFT_WIDTH = 6


class Opcode(IntEnum):
    CONFIGURE = 1
    COMPUTE = 2
    REQUANTISE = 3
    FENCE = 4
    LOAD = 5
    STORE = 6
    STRIDE = 7


class Status(IntEnum):
    OK = 0
    ILLEGAL_OPCODE = 1
    OUT_OF_RANGE = 2
    DMA_ERROR = 3


class Target(IntEnum):
    """The scratchpad a LOAD writes (its flags bits 1:0)."""
    A = 0
    W = 1
    QP = 2


# Argument fields per opcode: (name, width, signed), packed from bit 8 upwards.
ARGUMENTS = {
    Opcode.CONFIGURE: (("a_zero_point", 8, True), ("w_zero_point", 8, True),
                       ("out_zero_point", 8, True), ("act_min", 8, True),
                       ("act_max", 8, True)),
    Opcode.COMPUTE: (("m", 12, False), ("k_blocks", 8, False), ("a_base", 12, False),
                     ("w_base", 12, False), ("acc_base", 12, False)),
    Opcode.REQUANTISE: (("m", 12, False), ("acc_base", 12, False), ("qp_base", 12, False)),
    Opcode.FENCE: (("computes", 8, False), ("transfers", 8, False)),
    Opcode.LOAD: (("spad_base", 12, False), ("rows", 12, False), ("remote", 32, False)),
    Opcode.STORE: (("m", 12, False), ("acc_base", 12, False), ("qp_base", 12, False),
                   ("remote", 20, False)),
    Opcode.STRIDE: (("line_rows", 12, False), ("stride", 32, False)),
}
FLAG_NAMES = {Opcode.COMPUTE: "accumulate", Opcode.REQUANTISE: "bypass",
              Opcode.STORE: "bypass", Opcode.LOAD: "target", Opcode.FENCE: "partial"}
DEFAULTS = {"act_min": -128, "act_max": 127}


def encode(opcode: int, flags: int = 0, **values) -> int:
    """A command word; fields not given are 0 (``act_min``/``act_max``: -128/127)."""
    if not 0 <= opcode < 16 or not 0 <= flags < 16:
        raise ValueError(f"Opcode and flags are 4 bits each, not {opcode}, {flags}")
    word = opcode | flags << FLAG_SHIFT
    offset = ARG_SHIFT
    known = ARGUMENTS.get(opcode, ())
    unknown = set(values) - {name for name, _, _ in known}
    if unknown:
        raise ValueError(f"Opcode {opcode} has no fields {sorted(unknown)}")
    for name, width, signed in known:
        value = int(values.get(name, DEFAULTS.get(name, 0)))
        low, high = (-(1 << width - 1), 1 << width - 1) if signed else (0, 1 << width)
        if not low <= value < high:
            raise ValueError(f"{name} = {value} does not fit {width} bits")
        word |= (value & ((1 << width) - 1)) << offset
        offset += width
    return word


def configure(*, a_zero_point=0, w_zero_point=0, out_zero_point=0, act_min=-128,
              act_max=127) -> int:
    """Zero points and clamp for the COMPUTE, REQUANTISE and STORE commands after it."""
    return encode(Opcode.CONFIGURE, a_zero_point=a_zero_point, w_zero_point=w_zero_point,
                  out_zero_point=out_zero_point, act_min=act_min, act_max=act_max)


def compute(*, m, k_blocks, a_base=0, w_base=0, acc_base=0, accumulate=False) -> int:
    return encode(Opcode.COMPUTE, int(bool(accumulate)), m=m, k_blocks=k_blocks,
                  a_base=a_base, w_base=w_base, acc_base=acc_base)


def requantise(*, m, acc_base=0, qp_base=0, bypass=False) -> int:
    return encode(Opcode.REQUANTISE, int(bool(bypass)), m=m, acc_base=acc_base,
                  qp_base=qp_base)


#: A partial FENCE's largest limit (its fields are 8 bits): "do not wait for these".
FENCE_ANY = 255


def fence(*, computes: int | None = None, transfers: int | None = None) -> int:
    """A FENCE. With no arguments it waits for every earlier command to complete and its
    status to leave. With ``computes`` and/or ``transfers`` it is *partial*: it waits only
    until at most ``computes`` earlier COMPUTEs and at most ``transfers`` earlier
    LOAD/STOREs still run (each kind completes in order, so that means all but the last
    ones issued) and every earlier REQUANTISE has completed; a limit not given is not
    waited for."""
    if computes is None and transfers is None:
        return encode(Opcode.FENCE)
    return encode(Opcode.FENCE, 1,
                  computes=FENCE_ANY if computes is None else computes,
                  transfers=FENCE_ANY if transfers is None else transfers)


def load(target: Target, *, spad_base, rows, remote) -> int:
    """Rows ``spad_base ..`` of scratchpad ``target`` from remote beat address ``remote``."""
    return encode(Opcode.LOAD, int(Target(target)), spad_base=spad_base, rows=rows,
                  remote=remote)


def store(*, m, acc_base=0, qp_base=0, remote, bypass=False) -> int:
    """Requantise accumulator rows ``acc_base ..`` (as REQUANTISE) into remote memory."""
    return encode(Opcode.STORE, int(bool(bypass)), m=m, acc_base=acc_base, qp_base=qp_base,
                  remote=remote)


def stride(*, line_rows=0, stride=0) -> int:
    """The 2-D shape of the LOADs and STOREs after it (see the module documentation)."""
    return encode(Opcode.STRIDE, line_rows=line_rows, stride=stride)


def raw(opcode: int, arguments: int = 0, flags: int = 0) -> int:
    """Any word, legal or not (for tests of illegal opcodes)."""
    return (opcode & 15) | (flags & 15) << FLAG_SHIFT | (arguments & ((1 << 56) - 1)) << 8


def fields(word: int) -> tuple[int, int, dict]:
    """``(opcode, flags, {field: value})`` of a command word (no fields if illegal)."""
    opcode, flags = word & 15, (word >> FLAG_SHIFT) & 15
    values, offset = {}, ARG_SHIFT
    for name, width, signed in ARGUMENTS.get(opcode, ()):
        value = (word >> offset) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        values[name] = value
        offset += width
    return opcode, flags, values


def decode_status(word: int) -> tuple[int, int, int]:
    """``(code, opcode, seq)`` of a status word."""
    return word & 15, (word >> 4) & 15, (word >> 8) & 255


@dataclass(frozen=True)
class Limits:
    """What the range checks compare against: the engine's array and scratchpads, and the
    network's beat (``beat_bytes``), address width and longest burst (``max_beats``)."""
    rows: int
    cols: int
    lanes: int
    a_depth: int
    w_depth: int
    acc_depth: int
    qp_depth: int
    beat_bytes: int = 4
    addr_width: int = 32
    max_beats: int = 256

    @property
    def groups(self) -> int:
        return self.cols // self.lanes

    def depth(self, target: Target) -> int:
        return {Target.A: self.a_depth, Target.W: self.w_depth,
                Target.QP: self.qp_depth}[Target(target)]

    def row_bits(self, target) -> int:
        """Bits of one remote row: a Target, or ``"out"`` / ``"out32"`` for STORE rows."""
        return {Target.A: 8 * self.rows, Target.W: 8 * self.cols,
                Target.QP: 8 * QP_CHANNEL_BYTES * self.lanes, "out": 8 * self.cols,
                "out32": 32 * self.cols}[target]

    def row_beats(self, target) -> int:
        return -(-self.row_bits(target) // (8 * self.beat_bytes))

    @property
    def remote_beats(self) -> int:
        """Beats the address width reaches."""
        return 1 << (self.addr_width - (self.beat_bytes - 1).bit_length())


def expected_status(word: int, limits: Limits) -> Status:
    """The status the command queue gives ``word`` (before any DMA error), as
    ``docs/npu.md`` specifies it."""
    opcode, flags, v = fields(word)
    if opcode not in set(Opcode):
        return Status.ILLEGAL_OPCODE
    lim = limits
    if opcode == Opcode.CONFIGURE:
        bad = v["act_min"] > v["act_max"]
    elif opcode == Opcode.COMPUTE:
        bad = v["m"] != 0 and v["k_blocks"] != 0 and (
            v["acc_base"] + v["m"] > lim.acc_depth
            or v["a_base"] + v["k_blocks"] * v["m"] > lim.a_depth
            or v["w_base"] + v["k_blocks"] * lim.rows > lim.w_depth)
    elif opcode in (Opcode.REQUANTISE, Opcode.STORE):
        bad = v["m"] != 0 and (v["acc_base"] + v["m"] > lim.acc_depth
                               or v["qp_base"] + lim.groups > lim.qp_depth)
        if opcode == Opcode.STORE:
            bad = bad or (v["m"] != 0 and v["remote"] >= lim.remote_beats)
    elif opcode == Opcode.LOAD:
        target = flags & 3
        bad = v["rows"] != 0 and (target == 3 or v["remote"] >= lim.remote_beats
                                  or v["spad_base"] + v["rows"] > lim.depth(target))
    else:
        bad = False
    return Status.OUT_OF_RANGE if bad else Status.OK


# Row formats ------------------------------------------------------------------------------

def row_bytes(limits: Limits, target) -> int:
    """Bytes of one row in remote memory (whole beats)."""
    return limits.row_beats(target) * limits.beat_bytes


def _le(value: int, size: int) -> bytes:
    return (int(value) & ((1 << 8 * size) - 1)).to_bytes(size, "little")


def pack_rows(limits: Limits, target, rows) -> bytes:
    """Remote bytes of ``rows``: for A/W/"out" a 2-D array of int8, for "out32" of int32,
    for QP a (entries, lanes, 3) array of (bias, multiplier, shift)."""
    size = row_bytes(limits, target)
    out = bytearray()
    for row in rows:
        if target == Target.QP:
            body = b"".join(_le(value, 4) for channel in row for value in channel)
        else:
            width = 4 if target == "out32" else 1
            body = b"".join(_le(value, width) for value in row)
        out += body + bytes(size - len(body))
    return bytes(out)


def unpack_rows(limits: Limits, target, blob: bytes, count: int, width: int) -> list[list[int]]:
    """``count`` rows of ``width`` signed values from remote bytes (A/W/out/out32)."""
    size = row_bytes(limits, target)
    item = 4 if target == "out32" else 1
    return [[int.from_bytes(blob[r * size + i * item: r * size + (i + 1) * item], "little",
                            signed=True) for i in range(width)] for r in range(count)]


def qp_entry_bits(channels) -> int:
    """One QP scratchpad entry as the RTL's ``channel_layout`` array lays it out:
    per lane (lane 0 lowest) bias s32, multiplier s32, shift s6."""
    bits, offset = 0, 0
    for bias, multiplier, shift in channels:
        for value, width in ((bias, 32), (multiplier, 32), (shift, SHIFT_WIDTH)):
            bits |= (int(value) & ((1 << width) - 1)) << offset
            offset += width
    return bits


def qp_entry_bytes(channels) -> bytes:
    return b"".join(_le(value, 4) for channel in channels for value in channel)
