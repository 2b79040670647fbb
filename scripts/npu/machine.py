"""A model of the whole NPU tile at the level of its instruction set.

:class:`TileModel` executes command words as ``docs/npu.md`` specifies them: the scratchpads,
the accumulators, CONFIGURE/STRIDE state, COMPUTE/REQUANTISE/STORE through the numerics of
:mod:`chipknit.npu.model`, LOAD/STORE against a :class:`RemoteMemory`, and the status of
each command (:func:`chipknit.npu.isa.expected_status`, or DMA_ERROR when a transfer touched
a faulty address). It is the golden backend of :func:`chipknit.npu.compiler.run`, and it
checks the compiler's tiling independently of the RTL.
"""

from dataclasses import dataclass, field

import numpy as np

from . import isa
from .isa import Limits, Opcode, Status, Target
from .model import gemm_int32, requantize, wrap_int32

__all__ = ["RemoteMemory", "TileModel", "transfer_chunks", "hazards"]


@dataclass
class RemoteMemory:
    """Remote memory as the DMA sees it: beats of ``beat_bytes``, sparse, zero where never
    written. ``faults`` are beat ranges ``(start, stop)``: a request that touches one fails
    as a whole (a read returns error beats, a write writes nothing)."""
    beat_bytes: int = 4
    beats: dict[int, bytes] = field(default_factory=dict)
    faults: list[tuple[int, int]] = field(default_factory=list)

    def write(self, beat: int, blob: bytes) -> None:
        size = self.beat_bytes
        if len(blob) % size:
            blob = blob + bytes(size - len(blob) % size)
        for index in range(len(blob) // size):
            self.beats[beat + index] = bytes(blob[index * size:(index + 1) * size])

    def read(self, beat: int, count: int) -> bytes:
        zero = bytes(self.beat_bytes)
        return b"".join(self.beats.get(beat + index, zero) for index in range(count))

    def faulty(self, beat: int, count: int) -> bool:
        return any(start < beat + count and beat < stop for start, stop in self.faults)


def transfer_chunks(limits: Limits, target, rows: int, remote: int, line_rows: int,
                    stride: int):
    """The requests a LOAD/STORE of ``rows`` rows issues, in order, as
    ``(first_row, row_count, remote_beat)``: lines of ``line_rows`` rows (0: one line),
    each split into bursts of at most ``max_beats`` beats of whole rows."""
    row_beats = limits.row_beats(target)
    per_request = max(limits.max_beats // row_beats, 1)
    line = line_rows or rows
    chunks, row = [], 0
    while row < rows:
        line_index, in_line = divmod(row, line)
        count = min(line - in_line, per_request, rows - row)
        start = remote + line_index * stride + in_line * row_beats
        chunks.append((row, count, start % (1 << 32)))
        row += count
    return chunks


class TileModel:
    """Executes NPU programs (see the module documentation).

    Parameters
    ----------
    limits : Limits
    memory : RemoteMemory, optional
    """

    def __init__(self, limits: Limits, memory: RemoteMemory | None = None):
        self.limits = lim = limits
        self.memory = memory or RemoteMemory(limits.beat_bytes)
        self.a = np.zeros((lim.a_depth, lim.rows), dtype=np.int64)
        self.w = np.zeros((lim.w_depth, lim.cols), dtype=np.int64)
        self.qp = np.zeros((lim.qp_depth, lim.lanes, 3), dtype=np.int64)
        self.acc = np.zeros((lim.acc_depth, lim.cols), dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """What a reset clears: configuration and sequence numbers (not the scratchpads)."""
        self.config = {"a_zero_point": 0, "w_zero_point": 0, "out_zero_point": 0,
                       "act_min": -128, "act_max": 127}
        self.line_rows, self.stride = 0, 0
        self.seq = 0
        self.beats: list[list[int]] = []
        self.statuses: list[tuple[int, int, int]] = []

    def preload(self, images: dict[str, dict[int, np.ndarray]]) -> None:
        """Host writes through the scratchpad write ports: ``{"a"|"w"|"qp": {row: values}}``."""
        for name, rows in images.items():
            pad = getattr(self, name)
            for address, values in rows.items():
                pad[address] = values

    def run(self, words) -> list[tuple[int, int, int]]:
        return [self.execute(word) for word in words]

    def execute(self, word: int) -> tuple[int, int, int]:
        """Execute one command; returns and records its status ``(code, opcode, seq)``."""
        code = isa.expected_status(word, self.limits)
        opcode, flags, v = isa.fields(word)
        if code == Status.OK:
            code = self._execute(opcode, flags, v)
        status = (int(code), opcode, self.seq % 256)
        self.seq += 1
        self.statuses.append(status)
        return status

    def _execute(self, opcode, flags, v) -> Status:
        lim = self.limits
        if opcode == Opcode.CONFIGURE:
            self.config = dict(v)
        elif opcode == Opcode.STRIDE:
            self.line_rows, self.stride = v["line_rows"], v["stride"]
        elif opcode == Opcode.COMPUTE and v["m"] and v["k_blocks"]:
            m, rows = v["m"], lim.rows
            acc_rows = (v["acc_base"] + np.arange(m)) % lim.acc_depth
            total = np.zeros((m, lim.cols), dtype=np.int64)
            for kb in range(v["k_blocks"]):
                a = self.a[(v["a_base"] + kb * m + np.arange(m)) % lim.a_depth]
                w = self.w[(v["w_base"] + kb * rows + np.arange(rows)) % lim.w_depth]
                total += gemm_int32(a, w, self.config["a_zero_point"],
                                    self.config["w_zero_point"])
            previous = self.acc[acc_rows] if flags & 1 else 0
            self.acc[acc_rows] = wrap_int32(previous + total)
        elif opcode == Opcode.REQUANTISE and v["m"]:
            for row in self._requantise(v, flags & 1):
                for group in range(lim.groups):
                    self.beats.append([int(x) for x in
                                       row[group * lim.lanes:(group + 1) * lim.lanes]])
        elif opcode == Opcode.STORE and v["m"]:
            target = "out32" if flags & 1 else "out"
            blob = isa.pack_rows(lim, target, self._requantise(v, flags & 1))
            size = isa.row_bytes(lim, target)
            error = False
            for first, count, remote in transfer_chunks(lim, target, v["m"], v["remote"],
                                                        self.line_rows, self.stride):
                if self.memory.faulty(remote, count * lim.row_beats(target)):
                    error = True
                else:
                    self.memory.write(remote, blob[first * size:(first + count) * size])
            return Status.DMA_ERROR if error else Status.OK
        elif opcode == Opcode.LOAD and v["rows"]:
            return self._load(Target(flags & 3), v)
        return Status.OK

    def _requantise(self, v, bypass) -> np.ndarray:
        lim = self.limits
        acc = self.acc[(v["acc_base"] + np.arange(v["m"])) % lim.acc_depth]
        if bypass:
            return acc
        qp = self.qp[v["qp_base"]:v["qp_base"] + lim.groups].reshape(lim.cols, 3)
        c = self.config
        return requantize(acc, qp[:, 0], qp[:, 1], qp[:, 2], c["out_zero_point"],
                          c["act_min"], c["act_max"])

    def _load(self, target: Target, v) -> Status:
        lim = self.limits
        pad = {Target.A: self.a, Target.W: self.w, Target.QP: self.qp}[target]
        row_beats, error = lim.row_beats(target), False
        for first, count, remote in transfer_chunks(lim, target, v["rows"], v["remote"],
                                                    self.line_rows, self.stride):
            if self.memory.faulty(remote, count * row_beats):
                error = True
                continue          # rows of a failed request keep their contents
            blob = self.memory.read(remote, count * row_beats)
            size = row_beats * lim.beat_bytes
            for index in range(count):
                row = blob[index * size:(index + 1) * size]
                pad[v["spad_base"] + first + index] = _decode_row(lim, target, row)
        return Status.DMA_ERROR if error else Status.OK


def _decode_row(lim: Limits, target: Target, blob: bytes):
    if target == Target.QP:
        values = [int.from_bytes(blob[4 * i:4 * i + 4], "little", signed=True)
                  for i in range(3 * lim.lanes)]
        channels = np.array(values, dtype=np.int64).reshape(lim.lanes, 3)
        shift = channels[:, 2] & ((1 << isa.SHIFT_WIDTH) - 1)
        channels[:, 2] = np.where(shift >= 1 << (isa.SHIFT_WIDTH - 1),
                                  shift - (1 << isa.SHIFT_WIDTH), shift)
        return channels
    width = lim.rows if target == Target.A else lim.cols
    return np.frombuffer(blob[:width], dtype=np.int8).astype(np.int64)


def _accesses(word: int, limits: Limits):
    """``(kind, reads, writes)`` of a command that runs (OK and not a no-op), else None;
    reads and writes are sets of ``(scratchpad, row)``."""
    lim = limits
    if isa.expected_status(word, lim) != Status.OK:
        return None
    opcode, flags, v = isa.fields(word)

    def rows(space, base, count, depth):
        return {(space, (base + i) % depth) for i in range(count)}
    if opcode == Opcode.COMPUTE and v["m"] and v["k_blocks"]:
        acc = rows("acc", v["acc_base"], v["m"], lim.acc_depth)
        reads = rows("a", v["a_base"], v["k_blocks"] * v["m"], lim.a_depth) | \
            rows("w", v["w_base"], v["k_blocks"] * lim.rows, lim.w_depth)
        return "compute", reads | (acc if flags & 1 else set()), acc
    if opcode in (Opcode.REQUANTISE, Opcode.STORE) and v["m"]:
        reads = rows("acc", v["acc_base"], v["m"], lim.acc_depth) | \
            rows("qp", v["qp_base"], lim.groups, lim.qp_depth)
        return ("requantise" if opcode == Opcode.REQUANTISE else "store"), reads, set()
    if opcode == Opcode.LOAD and v["rows"]:
        target = Target(flags & 3)
        name = {Target.A: "a", Target.W: "w", Target.QP: "qp"}[target]
        return "load", set(), rows(name, v["spad_base"], v["rows"], lim.depth(target))
    return None


def hazards(words, limits: Limits) -> list[tuple[int, int, str]]:
    """Pairs of commands of a program that may run at the same time on the tile and touch
    the same scratchpad rows, one of them writing: ``(earlier, later, what)``.

    This is the command queue's concurrency as ``docs/npu.md`` specifies it: commands are
    dispatched in order and run concurrently unless a FENCE between them holds the later
    one (a full FENCE until everything earlier completed; a partial one until at most its
    ``computes`` COMPUTEs and ``transfers`` LOAD/STOREs issued before it still run, and no
    REQUANTISE). Pairs the hardware orders by itself are not hazards: two COMPUTEs (the
    engine runs them in order, accumulating safely), and two LOAD/STOREs (the DMA runs them
    in order and takes a LOAD only after the STORE before it has sent its data), except a
    LOAD whose rows a later STORE reads (the STORE's requantiser may read them before the
    LOAD's responses arrive)."""
    running = []        # (index, kind, reads, writes) not known complete
    found = []
    for index, word in enumerate(words):
        opcode, flags, v = isa.fields(word)
        if opcode == Opcode.FENCE:
            if not flags & 1:
                running = []
                continue
            computes = [r for r in running if r[1] == "compute"]
            transfers = [r for r in running if r[1] in ("load", "store")]
            keep = computes[len(computes) - v["computes"]:] if v["computes"] else []
            keep += transfers[len(transfers) - v["transfers"]:] if v["transfers"] else []
            running = [r for r in running if r in keep]
            continue
        access = _accesses(word, limits)
        if access is None:
            continue
        kind, reads, writes = access
        dma = ("load", "store")
        for earlier, e_kind, e_reads, e_writes in running:
            if e_kind == kind == "compute" or (e_kind in dma and kind in dma
                                                and not (e_kind == "load" and kind == "store")):
                continue
            clash = (e_writes & (reads | writes)) | (e_reads & writes)
            if clash:
                space, row = min(clash)
                found.append((earlier, index, f"{e_kind} {earlier} and {kind} {index} both "
                                              f"touch {space} row {row}"))
        running.append((index, kind, reads, writes))
    return found
