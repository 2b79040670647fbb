"""``chipknit bench tiles``: size and speed of the blocks a tile port is made of.

Each block is configured as the default package builds it (``PackageTop(Package.named(
"default"))``), placed alone in :class:`~chipknit.platforms.isolate.IsolatedComponent`
(registered inputs, XOR-folded outputs; the wrapper's XOR tree is included in the LUTs) and
placed and routed on the ULX3S (ECP5-85F) at nextpnr seeds 1 and 2:

- ``initiator``: ``InitiatorInterface`` with the package's address map (5 regions) and
  timeout (8192 cycles), at the host's node;
- ``target``: ``TargetInterface`` (depth 4);
- ``memory``: ``MemoryTile`` as in the package (4096 words of 32 bits);
- ``counters``: the counters ``RegisterBank`` of die 1 (49 registers, the larger die's);
- ``host``: ``UartHostBridge`` at 115200 baud from the ULX3S's 25 MHz oscillator.

The figures are ``luts`` (LUT4 incl. carry cells), ``ffs``, ``brams`` and ``fmax_mhz`` per
seed, the worst Fmax over the seeds, and the critical path's end points and logic levels.
``--quick`` places only the target interface at seed 1 (a smoke test). One block from
Python: ``run(blocks=("initiator",), seeds=(1, 2))``.
"""

from pathlib import Path

TARGET_MHZ = 100
BOARD = "ulx3s"
SEEDS = (1, 2)


def _package():
    from chipknit.rtl.package.config import Package
    from chipknit.rtl.package.top import PackageTop
    top = PackageTop(Package.named("default"))
    top._MustUse__silence = True   # only its configuration is used
    return top


def _initiator(top):
    from chipknit.rtl.noc.interface import (
        AddressMap,
        InitiatorInterface,
        InitiatorParams,
        Node,
        Region,
    )
    host = top.host
    regions = tuple(Region(e.base, e.size, e.node) for e in top.map)
    return InitiatorInterface(InitiatorParams(
        transaction=top.transaction, node=Node(host.x, host.y, host.port, host.die),
        address_map=AddressMap(regions), timeout=top.timeout))


def _target(top):
    from chipknit.rtl.noc.interface import TargetInterface, TargetParams
    return TargetInterface(TargetParams(transaction=top.transaction, depth=top.target_depth))


def _memory(top):
    from chipknit.rtl.tiles.memory import MemoryTile
    return MemoryTile(top.tile_params["memory"])


def _counters(top):
    from chipknit.rtl.registers import RegisterBank
    return RegisterBank(top.transaction, top.registers(1))


def _host(top):
    from chipknit.platforms.boards import get_board
    from chipknit.rtl.host.top import UartHostBridge
    from chipknit.rtl.host.uart import UartParams
    clock = get_board(BOARD).clock_hz
    return UartHostBridge(top.tile_params["host"], UartParams.from_baud(clock, 115200))


def _gateway_router(top):
    """Die 1's router (0, 1) as the package builds it: the default package's NPU tile on
    its one local port, two neighbours and the die link's edge port, registered hops
    (``wire_requests=False``, ``injection_register``)."""
    from dataclasses import replace

    from chipknit.rtl.noc.router import Router
    params = top.package.mesh_params(1).router(0, 1)
    return Router(replace(params, wire_requests=not top.port_slices,
                          injection_register=top.port_slices))


BLOCKS = {
    "initiator": ("InitiatorInterface, default package map, timeout 8192", _initiator),
    "target": ("TargetInterface, depth 4", _target),
    "memory": ("MemoryTile, 4096 x 32 bits", _memory),
    "counters": ("RegisterBank, die 1 counters (49 registers)", _counters),
    "host": ("UartHostBridge, 115200 baud at 25 MHz", _host),
    "router": ("Router, die 1 (0, 1) of the default package, 5 ports", _gateway_router),
}


def measure(block: str, seed: int, progress=print) -> dict:
    """Place and route one block at one seed; its figures."""
    from chipknit.platforms.build import BuildError, build
    from chipknit.platforms.isolate import IsolatedComponent

    description, factory = BLOCKS[block]
    progress(f"placing {block} ({description}) on {BOARD}, seed {seed}")
    try:
        report = build(BOARD, seed=seed, top=IsolatedComponent(factory(_package())),
                       progress=None, name=block,
                       build_dir=Path("build", "bench", f"tiles-{block}-{BOARD}-s{seed}")).report
    except BuildError as error:
        return {"fits": False, "error": str(error).splitlines()[0]}
    path = report["critical_paths"]["sync"]
    figures = {"fits": True, "luts": report["luts"], "ffs": report["ffs"],
               "brams": report["brams"], "fmax_mhz": report["fmax_mhz"]["sync"],
               "logic_levels": path["logic_levels"], "from": path["from"], "to": path["to"]}
    progress(f"  {block} seed {seed}: {figures['luts']} LUT4, {figures['ffs']} FF, "
             f"{figures['brams']} BRAM, {figures['fmax_mhz']} MHz "
             f"({path['logic_levels']} levels, {path['from']} -> {path['to']})")
    return figures


def run(*, quick=False, plot=None, progress=print, blocks=None, seeds=None) -> dict:
    blocks = tuple(blocks or (("target",) if quick else BLOCKS))
    seeds = tuple(seeds or ((1,) if quick else SEEDS))
    unknown = sorted(set(blocks) - set(BLOCKS))
    if unknown:
        raise ValueError(f"Unknown block(s) {', '.join(unknown)}; expected "
                         f"{', '.join(BLOCKS)}")
    figures = {"benchmark": "tiles", "board": BOARD, "seeds": list(seeds),
               "target_mhz": TARGET_MHZ, "blocks": {}}
    for block in blocks:
        runs = {str(seed): measure(block, seed, progress) for seed in seeds}
        placed = [r for r in runs.values() if r["fits"]]
        entry = {"design": BLOCKS[block][0], "runs": runs}
        if placed:
            worst = min(r["fmax_mhz"] for r in placed)
            entry.update(luts=placed[0]["luts"], ffs=placed[0]["ffs"],
                         brams=placed[0]["brams"], worst_fmax_mhz=worst,
                         meets_target=len(placed) == len(runs) and worst >= TARGET_MHZ)
        figures["blocks"][block] = entry
    return figures
