"""A cycle timer whose "limit reached" is a register.

Timeouts are everywhere in the fabric (a host frame that stops, a bus that never answers, a
response that never comes). Comparing a counter against its limit in the cycle that acts on
it puts the comparison on the deciding path; :class:`CycleTimer` decides it a cycle earlier.
"""

from amaranth.hdl import Signal

__all__ = ["CycleTimer"]


class CycleTimer:
    """Counts cycles towards ``limit``. ``expiring``, a register, is high in the cycle the
    count reaches ``limit - 1`` (the cycle to act in), so no comparison of the count is on
    the paths that act on it.

    Call :meth:`restart` or :meth:`step` (at most one per cycle, ``m.d.sync`` statements
    inside whatever ``If`` decides it); with neither the timer holds.
    """

    def __init__(self, m, name: str, limit: int):
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"Timer limit must be a positive integer, not {limit!r}")
        self.m, self.limit = m, limit
        self.count = Signal(range(limit), name=name)
        self.expiring = Signal(init=limit == 1, name=f"{name}_expiring")

    def restart(self):
        self.m.d.sync += [self.count.eq(0), self.expiring.eq(self.limit == 1)]

    def step(self):
        """One more cycle. Past ``limit - 1`` the count wraps to 0 (restart it instead)."""
        self.m.d.sync += [self.count.eq(self.count + 1),
                          self.expiring.eq(self.count == self.limit - 2)]
