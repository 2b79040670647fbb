"""The NPU command queue's instruction set: encoder, status decoder, range checks.

Pure Python (imports no RTL); the layout here and ``chipknit.rtl.npu.commands`` describe the
same bits, and ``tests/test_npu_commands.py`` checks that they agree. See ``docs/npu.md``
(*Command queue*).

A command is one 64-bit word::

    [3:0]   opcode     CONFIGURE 1, COMPUTE 2, REQUANTISE 3, FENCE 4; anything else is illegal
    [7:4]   flags      bit 4: accumulate (COMPUTE) or bypass (REQUANTISE)
    [63:8]  arguments  per opcode, lowest field first (ARGUMENTS)

A status is one 16-bit word, one per command in command order::

    [3:0]   code       OK 0, ILLEGAL_OPCODE 1, OUT_OF_RANGE 2
    [7:4]   opcode     the command's opcode as it was given
    [15:8]  seq        the command's index since reset, modulo 256
"""

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Opcode", "Status", "ARGUMENTS", "COMMAND_BITS", "STATUS_BITS", "Limits",
           "encode", "configure", "compute", "requantise", "fence", "raw",
           "decode_status", "fields", "expected_status"]

COMMAND_BITS = 64
STATUS_BITS = 16
FLAG_SHIFT, ARG_SHIFT = 4, 8


class Opcode(IntEnum):
    CONFIGURE = 1
    COMPUTE = 2
    REQUANTISE = 3
    FENCE = 4


class Status(IntEnum):
    OK = 0
    ILLEGAL_OPCODE = 1
    OUT_OF_RANGE = 2


# Argument fields per opcode: (name, width, signed), packed from bit 8 upwards.
ARGUMENTS = {
    Opcode.CONFIGURE: (("a_zero_point", 8, True), ("w_zero_point", 8, True),
                       ("out_zero_point", 8, True), ("act_min", 8, True),
                       ("act_max", 8, True)),
    Opcode.COMPUTE: (("m", 12, False), ("k_blocks", 8, False), ("a_base", 12, False),
                     ("w_base", 12, False), ("acc_base", 12, False)),
    Opcode.REQUANTISE: (("m", 12, False), ("acc_base", 12, False), ("qp_base", 12, False)),
    Opcode.FENCE: (),
}
FLAG_NAMES = {Opcode.COMPUTE: "accumulate", Opcode.REQUANTISE: "bypass"}
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
    """Zero points and clamp for the COMPUTE and REQUANTISE commands after it."""
    return encode(Opcode.CONFIGURE, a_zero_point=a_zero_point, w_zero_point=w_zero_point,
                  out_zero_point=out_zero_point, act_min=act_min, act_max=act_max)


def compute(*, m, k_blocks, a_base=0, w_base=0, acc_base=0, accumulate=False) -> int:
    return encode(Opcode.COMPUTE, int(bool(accumulate)), m=m, k_blocks=k_blocks,
                  a_base=a_base, w_base=w_base, acc_base=acc_base)


def requantise(*, m, acc_base=0, qp_base=0, bypass=False) -> int:
    return encode(Opcode.REQUANTISE, int(bool(bypass)), m=m, acc_base=acc_base,
                  qp_base=qp_base)


def fence() -> int:
    return encode(Opcode.FENCE)


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
    """What the range checks compare against: the engine's array and scratchpads."""
    rows: int
    cols: int
    lanes: int
    a_depth: int
    w_depth: int
    acc_depth: int
    qp_depth: int


def expected_status(word: int, limits: Limits) -> Status:
    """The status the command queue gives ``word``, as ``docs/npu.md`` specifies it."""
    opcode, _, v = fields(word)
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
    elif opcode == Opcode.REQUANTISE:
        bad = v["m"] != 0 and (v["acc_base"] + v["m"] > lim.acc_depth
                               or v["qp_base"] + lim.cols // lim.lanes > lim.qp_depth)
    else:
        bad = False
    return Status.OUT_OF_RANGE if bad else Status.OK
