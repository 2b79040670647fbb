"""Reference model of link training (``rtl/link/training.py``, ``rtl/link/lane_map.py``).

Pure Python, no RTL: what a trainer must conclude from the faults an interposer applies —
the lane map for a usable-lane mask, the deskew delays for a set of wire delays, which
lanes a trainer must find usable, the training-frame bits each lane sends — and the rule a
scoreboard applies across adapter resets.
"""

from dataclasses import dataclass

__all__ = ["NONE", "HALF", "FULL", "LaneMap", "lane_map", "expected_deskew",
           "expected_mask", "TrainingFrame", "prbs_bits", "STATES"]

NONE, HALF, FULL = 0, 1, 2

#: State encoding of ``TrainingState``.
STATES = {"RESET": 0, "DETECT": 1, "TEST": 2, "CONFIG": 3, "ACTIVE": 4, "DRAIN": 5,
          "ERROR": 6}


@dataclass(frozen=True)
class LaneMap:
    mode: int                  #: NONE, HALF or FULL
    select: tuple[int, ...]    #: slot j is carried by lane select[j] (slots in use only)
    rank: tuple[int, ...]      #: lane i carries slot rank[i]; None when idle

    @property
    def slots_in_use(self) -> int:
        return len(self.select)

    @property
    def cycles_per_beat(self) -> int:
        return {FULL: 1, HALF: 2}[self.mode]


def lane_map(mask: int, lanes: int, slots: int) -> LaneMap:
    """The map both ends derive from a usable-lane mask (bit ``i`` = wire ``i``)."""
    usable = [i for i in range(lanes) if mask >> i & 1]
    if len(usable) >= slots:
        mode, used = FULL, slots
    elif len(usable) >= slots // 2:
        mode, used = HALF, slots // 2
    else:
        return LaneMap(NONE, (), (None,) * lanes)
    select = tuple(usable[:used])
    rank = tuple(select.index(i) if i in select else None for i in range(lanes))
    return LaneMap(mode, select, rank)


def expected_deskew(delays: list[int], reverse: bool) -> list[int]:
    """Per *receiver* lane, the delay that lines it up with the latest lane.

    ``delays`` are per wire (as the interposer takes them); wire ``i`` lands on receiver
    lane ``N-1-i`` when reversed.
    """
    n = len(delays)
    at_rx = [delays[n - 1 - j] if reverse else delays[j] for j in range(n)]
    latest = max(at_rx)
    return [latest - d for d in at_rx]


def expected_mask(lanes: int, stuck_mask: int) -> int:
    """Usable lanes (by wire) when the wires in ``stuck_mask`` are stuck and BER is 0."""
    return ((1 << lanes) - 1) & ~stuck_mask


def prbs_bits(count: int, order: int = 7, seed: int = 1) -> list[int]:
    """The training PRBS: Fibonacci LFSR as ``rtl/prbs.py`` (PRBS-7: taps 7, 6)."""
    taps = {7: (7, 6), 9: (9, 5), 15: (15, 14), 23: (23, 18), 31: (31, 28)}[order]
    state = [(seed >> i) & 1 for i in range(order)]
    out = []
    for _ in range(count):
        new = state[taps[0] - 1] ^ state[taps[1] - 1]
        out.append(new)
        state = [new] + state[:-1]
    return out


@dataclass(frozen=True)
class TrainingFrame:
    """Layout of one training frame on one lane (one bit per cycle)."""
    lanes: int
    frame_cycles: int

    @property
    def id_bits(self) -> int:
        return max(1, (self.lanes - 1).bit_length())

    @property
    def field_bits(self) -> int:
        return 4 + self.lanes

    @property
    def prbs_start(self) -> int:
        return 1 + 2 * self.id_bits + 2 * self.field_bits

    def bits(self, lane: int, phase: int, have_peer: int, fresh: int, mask: int
             ) -> tuple[list[int], list[int]]:
        """``(valid, data)`` per cycle of a frame sent on ``lane``."""
        ids = [(lane >> k) & 1 for k in range(self.id_bits)]
        word = phase | have_peer << 2 | fresh << 3 | mask << 4
        fields = [(word >> k) & 1 for k in range(self.field_bits)]
        body = ([0] + ids + [1 - x for x in ids] + fields + [1 - x for x in fields]
                + prbs_bits(self.frame_cycles - self.prbs_start))
        valid = [1] + [0] * (self.frame_cycles - 1)
        return valid, body

    def decode(self, data: list[int]) -> dict | None:
        """Fields of a received frame (``data`` from its marker), or None if they fail
        their complement check."""
        start = 1 + 2 * self.id_bits
        fields = data[start:start + self.field_bits]
        complement = data[start + self.field_bits:start + 2 * self.field_bits]
        if any(a == b for a, b in zip(fields, complement, strict=True)):
            return None
        word = sum(bit << k for k, bit in enumerate(fields))
        return {"lane": sum(bit << k for k, bit in enumerate(data[1:1 + self.id_bits])),
                "phase": word & 3, "have_peer": word >> 2 & 1, "fresh": word >> 3 & 1,
                "mask": word >> 4}
