"""Reference model of the NoC ↔ link bridge (imports no RTL).

Flit mapping: a NoC flit ``{head, tail, vc, data}`` travels on link VC ``vc`` as the link flit
``head | tail << 1 | data << 2`` (zero above). Inbound framing rules, per VC (see
``chipknit.rtl.noc.link_bridge``):

- body/tail outside a packet: dropped, ``malformed`` + 1;
- head whose destination is unroutable: the packet dropped, ``unroutable`` + 1;
- head inside an open packet: the open packet's last flit that came (held back until the
  next flit came) goes out marked as the tail, ``truncated`` + 1, then the head starts its
  packet;
- head inside a packet being dropped: the drop ends, ``malformed`` + 1, the head starts;
- peer reset: the open packet's held flit goes out as its tail (``truncated`` + 1), a drop
  ends.

The held flit (the RTL's ``TailGuard``) is the newest flit of a packet, kept until the flit
after it arrives, so the router sees a flit only when the next one (or a cut) is known.

Every flit sent to the router carries the route of its packet's head.
"""

from dataclasses import dataclass, field

from .noc import Flit, NocFormat

__all__ = ["to_link", "from_link", "BridgeModel"]

IDLE, FORWARD, DROP = range(3)


def to_link(fmt: NocFormat, flit_value: int) -> tuple[int, int]:
    """(VC, link flit) of an encoded NoC flit."""
    flit = fmt.decode(flit_value)
    return flit.vc, int(flit.head) | int(flit.tail) << 1 | flit.data << 2


def from_link(fmt: NocFormat, vc: int, link_flit: int) -> int:
    """The encoded NoC flit a link flit on ``vc`` stands for."""
    return fmt.encode(Flit(head=bool(link_flit & 1), tail=bool(link_flit >> 1 & 1), vc=vc,
                           data=link_flit >> 2 & ((1 << fmt.data_width) - 1)))


@dataclass
class BridgeModel:
    """Inbound side of one bridge: link flits in, ``(flit, route)`` per VC out.

    ``route(dest)`` gives the port at the router the bridge feeds, or ``None``.
    """
    fmt: NocFormat
    route: object
    state: list = field(default_factory=list)
    held: list = field(default_factory=list)
    waiting: list = field(default_factory=list)
    out: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    def __post_init__(self):
        vcs = self.fmt.vcs
        self.state = [IDLE] * vcs
        self.held = [0] * vcs
        self.waiting = [None] * vcs
        self.out = [[] for _ in range(vcs)]
        self.counters = {name: [0] * vcs for name in ("malformed", "unroutable", "truncated")}

    def receive(self, vc: int, link_flit: int) -> None:
        """A flit from the link: it waits for the next one if it belongs to a packet."""
        flit = self.fmt.decode(from_link(self.fmt, vc, link_flit))
        waiting = self.waiting[vc]
        self.waiting[vc] = None
        if waiting is not None:
            if flit.head:   # the packet was cut: its last flit that came ends it
                self._cut(vc, waiting)
            else:
                self._frame(vc, waiting)
        if not flit.tail and (flit.head or waiting is not None):
            self.waiting[vc] = flit
        else:
            self._frame(vc, flit)

    def _cut(self, vc: int, waiting: Flit) -> None:
        """A cut packet's held flit goes on as its tail."""
        self._frame(vc, Flit(head=waiting.head, tail=True, vc=vc, data=waiting.data))
        self.counters["truncated"][vc] += 1

    def _frame(self, vc: int, flit: Flit) -> None:
        if flit.head and self.state[vc] == DROP:
            self.counters["malformed"][vc] += 1
            self.state[vc] = IDLE
        value = self.fmt.encode(flit)
        if self.state[vc] == IDLE:
            if not flit.head:
                self.counters["malformed"][vc] += 1
                return
            port = self.route(self.fmt.decode_dest(flit.data))
            if port is None:
                self.counters["unroutable"][vc] += 1
                self.state[vc] = IDLE if flit.tail else DROP
                return
            self.held[vc] = port
            self.out[vc].append((value, port))
            self.state[vc] = IDLE if flit.tail else FORWARD
        elif self.state[vc] == FORWARD:
            self.out[vc].append((value, self.held[vc]))
            if flit.tail:
                self.state[vc] = IDLE
        elif flit.tail:  # DROP
            self.state[vc] = IDLE

    def peer_reset(self) -> None:
        for vc in range(self.fmt.vcs):
            waiting = self.waiting[vc]
            self.waiting[vc] = None
            if waiting is not None:
                self._cut(vc, waiting)
            if self.state[vc] == DROP:
                self.state[vc] = IDLE
