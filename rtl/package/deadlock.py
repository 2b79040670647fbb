"""The channel-dependency graph of a package, and the check that it has no cycle.

Nodes are ``(channel, vc)``: a channel is a link between two routers of one die or a die
link (named by the port that drives it, :data:`.routing.Channel`), and ``vc`` one of its
virtual channels. There is an edge ``(c1, v) → (c2, v)`` when some packet on VC ``v``, from
some router to some destination of the package, takes ``c2`` right after ``c1`` under the
routing function: holding a buffer of ``c1`` it may wait for one of ``c2``. A packet keeps
its VC (VCs are message classes), so the graph is one copy per VC. If it has no cycle,
wormhole routing cannot deadlock (Dally & Seitz); a cycle is a layout that can. Injection
and ejection channels start and end routes, so they cannot close a cycle and are left out.

:func:`check_deadlock_free` runs at package validation (every top is elaborated from a
validated package) and refuses a layout with the cycle in the message.
"""

from . import routing

__all__ = ["channel_dependency_graph", "find_cycle", "check_deadlock_free", "DeadlockError"]


class DeadlockError(ValueError):
    """A package whose channel-dependency graph has a cycle. ``cycle`` lists its nodes."""

    def __init__(self, message, cycle):
        super().__init__(message)
        self.cycle = cycle


def channel_dependency_graph(package) -> dict:
    """``{(channel, vc): {(channel, vc), ...}}`` over all source/destination pairs.

    Every router is a source and every router of every die a destination (the local port
    does not change the channels taken), so every route the package can carry is in it.
    """
    geometries = {d.number: routing.geometry(package, d.number) for d in package.dies}
    routers = [(d.number, x, y) for d in package.dies for y in range(d.rows)
               for x in range(d.columns)]
    edges = {}
    for src in routers:
        for die, x, y in routers:
            channels = routing.route(package, src, (die, x, y, 0), geometries)
            for channel in channels:
                edges.setdefault(channel, set())
            for first, second in zip(channels, channels[1:], strict=False):
                edges[first].add(second)
    return {(channel, vc): {(after, vc) for after in following}
            for channel, following in edges.items() for vc in range(package.noc.vcs)}


def find_cycle(graph: dict) -> list | None:
    """A cycle of ``graph`` (``[n0, n1, ..., n0]``), or ``None``; deterministic (depth first,
    nodes in sorted order)."""
    state = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            node = next(stack[-1], None)
            if node is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(node) == 1:
                return path[path.index(node):] + [node]
            elif node not in state:
                state[node] = 1
                path.append(node)
                stack.append(iter(sorted(graph.get(node, ()))))
    return None


def check_deadlock_free(package) -> None:
    """Raise :class:`DeadlockError`, naming a cycle, if the package's routes can deadlock."""
    cycle = find_cycle(channel_dependency_graph(package))
    if cycle is None:
        return
    vc = cycle[0][1]
    hops = " -> ".join(routing.describe_channel(package, channel) for channel, _ in cycle)
    raise DeadlockError(
        f"Package {package.name!r} can deadlock: its channel-dependency graph has a cycle "
        f"(VC {vc}; every VC has the same one): {hops}. Packets holding each of these "
        f"channels can wait for the next one forever. Place links so that die-level routes "
        f"cannot close a loop (see docs/noc.md, 'Routing across dies')", cycle)
