"""A package split one die per chip, the chips' lanes joined by interposer models: what
boards wired together by their header pins are, in simulation.

:class:`SplitPackage` elaborates one :class:`~chipknit.rtl.package.top.PackageTop` per die
(``dies={n}``), exactly what ``chipknit build --die n`` puts on each board, and joins each
cut link's lanes with an :class:`~chipknit.rtl.link.interposer.Interposer` each way (lane
delay and skew, bit errors, stuck lanes, reversal: all run-time inputs). Each die has its
own reset (``die_reset``), as boards do: a die reset mid-transfer, the link retrains, and
the rest of the package carries on.

It answers the host-side questions as :class:`PackageTop` does (``map``, ``region``,
``tile_params``, ``host``, ``registers``, ``counter_map``), so the same host scripts and
testbenches drive it.
"""

from amaranth.hdl import Module, ResetInserter
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..link.interposer import Interposer, InterposerParams
from ..link.training import TrainingStatus
from .config import Package
from .top import PackageTop

__all__ = ["SplitPackage"]


class SplitPackage(wiring.Component):
    """``package`` as one :class:`PackageTop` per die, cut links through interposers.

    Parameters
    ----------
    package : Package
    max_delay : int
        Largest lane delay the interposers can be set to (cycles).
    seed : int
        Seeds the interposers' error LFSRs (link ``i``: ``seed + 2i`` a → b, ``+ 1`` b → a).
    **options
        Further :class:`PackageTop` arguments (``timeout``, ``link_end``, ...).

    Members
    -------
    host_rx, host_tx, host_framing_errors, host_overruns
        The host bridge's, as on :class:`PackageTop`.
    die_reset : In(dies)
        Bit ``k`` holds the ``k``-th die (config order) in reset.
    link{i}_{ab,ba}_delay, _error_threshold, _stuck_mask, _stuck_value, _reverse : In
        Link ``i``'s interposer controls, a → b and b → a (see ``Interposer``).
    link{i}_{ab,ba}_errors : Out(32)
        Bits each interposer flipped.
    link{i}_{a,b}_training : Out(TrainingStatus)
        Each end's training status.

    Attributes
    ----------
    tops : dict
        Die number → its :class:`PackageTop` (``dies={n}``).
    interposer_params : dict
        ``(link, "ab" | "ba")`` → that interposer's :class:`InterposerParams`.
    """

    def __init__(self, package: Package, *, max_delay: int = 3, seed: int = 1, **options):
        if not isinstance(package, Package):
            raise TypeError(f"Expected a Package, not {package!r}")
        self.package, self.seed = package, seed
        self.dies = [die.number for die in package.dies]
        self.tops = {n: PackageTop(package, dies={n}, **options) for n in self.dies}
        hosts = [top for top in self.tops.values() if top.host is not None]
        self.host = hosts[0].host if hosts else None
        self._host_top = hosts[0] if hosts else None
        first = next(iter(self.tops.values()))
        self.map, self.tile_params = first.map, first.tile_params
        self.interposer_params = {}
        members = {"die_reset": In(len(self.dies))}
        if self._host_top is not None:
            for name in ("host_rx", "host_tx", "host_framing_errors", "host_overruns"):
                members[name] = self._host_top.signature.members[name]
        for index, link in enumerate(package.links):
            end = self.tops[link.a.die].cut[index]
            lanes = end.params.lanes
            for way in ("ab", "ba"):
                ip = self.interposer_params[index, way] = InterposerParams(
                    lanes, max_delay=max_delay, error_bits=32,
                    seed=seed + 2 * index + (way == "ba"))
                members |= {
                    f"link{index}_{way}_delay": In(lanes.lanes * ip.delay_bits),
                    f"link{index}_{way}_error_threshold": In(32),
                    f"link{index}_{way}_stuck_mask": In(lanes.lanes),
                    f"link{index}_{way}_stuck_value": In(lanes.lanes),
                    f"link{index}_{way}_reverse": In(1),
                    f"link{index}_{way}_errors": Out(32),
                }
            for side in "ab":
                members[f"link{index}_{side}_training"] = Out(TrainingStatus(end.params))
        super().__init__(members)

    # ---- what PackageTop answers -----------------------------------------------------------

    def region(self, name: str):
        return next(iter(self.tops.values())).region(name)

    def registers(self, die: int):
        return self.tops[die].registers(die)

    def counter_map(self) -> dict[str, int]:
        result = {}
        for top in self.tops.values():
            result |= top.counter_map()
        return result

    # ---- elaboration -------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        for position, (number, top) in enumerate(self.tops.items()):
            m.submodules[f"die{number}"] = ResetInserter(self.die_reset[position])(top)
        if self._host_top is not None:
            top = self._host_top
            wiring.connect(m, wiring.flipped(self.host_rx), top.host_rx)
            wiring.connect(m, top.host_tx, wiring.flipped(self.host_tx))
            m.d.comb += [top.host_framing_errors.eq(self.host_framing_errors),
                         top.host_overruns.eq(self.host_overruns)]
        for index, link in enumerate(self.package.links):
            ends = {"a": self.tops[link.a.die], "b": self.tops[link.b.die]}
            for way, src, dst in (("ab", "a", "b"), ("ba", "b", "a")):
                wire = m.submodules[f"link{index}_{way}"] = Interposer(
                    self.interposer_params[index, way])
                wiring.connect(m, getattr(ends[src], f"link{index}_lanes_tx"), wire.tx)
                wiring.connect(m, wire.rx, getattr(ends[dst], f"link{index}_lanes_rx"))
                for name in ("delay", "error_threshold", "stuck_mask", "stuck_value",
                             "reverse"):
                    m.d.comb += getattr(wire, name).eq(getattr(self, f"link{index}_{way}_{name}"))
                m.d.comb += getattr(self, f"link{index}_{way}_errors").eq(wire.errors)
            for side, top in ends.items():
                m.d.comb += getattr(top, f"link{index}_restart").eq(0)
                wiring.connect(m, getattr(top, f"link{index}_training"),
                               wiring.flipped(getattr(self, f"link{index}_{side}_training")))
        return m
