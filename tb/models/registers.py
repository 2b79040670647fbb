"""Reference model of a register bank (``chipknit.rtl.registers``); imports no RTL.

A register is ``(name, width, access, reset)`` with access ``"r"`` (the block drives it) or
``"rw"`` (the bank holds it). Register ``i`` is at byte address ``i * beat_bytes``.
"""

from dataclasses import dataclass

__all__ = ["OKAY", "TARGET_ERROR", "RegisterSpec", "RegisterBankModel"]

OKAY, TARGET_ERROR = 0, 2


@dataclass(frozen=True)
class RegisterSpec:
    name: str
    width: int
    access: str = "r"
    reset: int = 0


class RegisterBankModel:
    """What a register bank answers, given what its status inputs read."""

    def __init__(self, registers, beat_bytes: int = 4):
        self.registers = [RegisterSpec(*r) if not isinstance(r, RegisterSpec) else r
                          for r in registers]
        self.beat_bytes = beat_bytes
        self.reset()

    def reset(self):
        self.control = {r.name: r.reset for r in self.registers if r.access == "rw"}
        self.errors = 0

    def _span(self, addr: int, length: int):
        if addr % self.beat_bytes:
            return None
        first = addr // self.beat_bytes
        last = first + length
        if last >= len(self.registers):
            return None
        return range(first, last + 1)

    def read_ok(self, addr: int, length: int) -> bool:
        ok = self._span(addr, length) is not None
        self.errors += not ok
        return ok

    def read_beat(self, index: int, status: dict) -> int:
        """Register ``index``'s value, reading status registers from ``status``."""
        register = self.registers[index]
        if register.access == "rw":
            return self.control[register.name]
        return status[register.name] & ((1 << register.width) - 1)

    def write(self, addr: int, length: int, beats) -> int:
        """Apply a write of ``beats`` = [(data, strobe), ...]; return its status."""
        span = self._span(addr, length)
        if span is None or any(self.registers[i].access != "rw" for i in span):
            self.errors += 1
            return TARGET_ERROR
        for index, (data, strobe) in zip(span, beats, strict=True):
            register = self.registers[index]
            value = self.control[register.name]
            for byte in range(-(-register.width // 8)):
                if strobe >> byte & 1:
                    mask = 0xFF << (8 * byte)
                    value = (value & ~mask) | (data & mask)
            self.control[register.name] = value & ((1 << register.width) - 1)
        return OKAY
