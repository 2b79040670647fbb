# amaranth: UnusedElaboratable=no
"""The host-side NPU client and the board demo script (``python -m chipknit.host gemm``)
against a model of the package's host view: the memory tile as memory, each NPU window
backed by the golden :class:`~chipknit.npu.machine.TileModel`. The same script runs on the
RTL in ``tb/tests/package_e2e.py`` (``gemm_over_the_link``)."""

import asyncio
from collections import deque

import numpy as np
import pytest

from chipknit.host.npu import (
    WINDOW,
    NpuClient,
    NpuError,
    gemm_demo,
    npu_limits,
    random_quantisation,
)
from chipknit.npu.compiler import compile_gemm
from chipknit.npu.machine import RemoteMemory, TileModel
from chipknit.rtl.package.top import PackageTop
from chipknit.tb.tests.package_common import E2E_PARAMS, e2e_package


class ModelPackageHost:
    """``read``/``write`` of an :class:`~chipknit.host.AsyncHost` on a package's map:
    the memory tile and the NPU windows (``command_lo``/``command_hi``, ``status`` pops,
    ``free``, ``issued``), nothing else. ``stall`` NPUs never answer; ``flip`` corrupts one
    result byte read back from memory above that beat."""

    def __init__(self, top: PackageTop, *, stall=(), flip_above=None, queue=4,
                 restart_after=None):
        self.memory_entry = top.region("memory")
        self.memory = RemoteMemory(4)
        self.queue = queue
        self.npus = {}
        for entry in top.map:
            if entry.kind == "npu":
                self.npus[entry.base] = {
                    "tile": TileModel(npu_limits(top, entry.name), self.memory),
                    "statuses": deque(), "pending": deque(), "low": 0, "issued": 0,
                    "stall": entry.name in stall}
        self.flip_above = flip_above
        self.restart_after = restart_after   # commands, then every NPU restarts (a reset)
        self.written = 0
        self.reads = 0

    def _npu(self, addr):
        for base, npu in self.npus.items():
            if base <= addr < base + 0x1000:
                return npu, addr - base
        return None, None

    def _run(self, npu):
        while npu["pending"] and not npu["stall"]:
            code, opcode, seq = npu["tile"].execute(npu["pending"].popleft())
            npu["statuses"].append(code | opcode << 4 | seq << 8)

    async def write(self, addr, words, strobes=None):
        npu, offset = self._npu(addr)
        if npu is None:
            beat = (addr - self.memory_entry.base) // 4
            self.memory.write(beat, b"".join(w.to_bytes(4, "little") for w in words))
            return
        assert offset == WINDOW["command_lo"] and len(words) == 2, (offset, words)
        assert len(npu["pending"]) < self.queue, "written past free"
        npu["pending"].append(words[0] | words[1] << 32)
        npu["issued"] += 1
        self.written += 1
        if self.written == self.restart_after:   # reset: queue, statuses and count gone
            npu["pending"].clear()
            npu["statuses"].clear()
            npu["issued"] = 0
            npu["stall"] = True
        self._run(npu)

    async def read(self, addr, n_words):
        self.reads += 1
        npu, offset = self._npu(addr)
        if npu is None:
            beat = (addr - self.memory_entry.base) // 4
            blob = bytearray(self.memory.read(beat, n_words))
            if self.flip_above is not None and beat >= self.flip_above:
                blob[0] ^= 0x01
            return [int.from_bytes(blob[i:i + 4], "little") for i in range(0, len(blob), 4)]
        assert n_words == 1
        if offset == WINDOW["status"]:
            return [1 << 31 | npu["statuses"].popleft()] if npu["statuses"] else [0]
        if offset == WINDOW["free"]:
            return [self.queue - len(npu["pending"])]
        if offset == WINDOW["issued"]:
            return [npu["issued"]]
        raise AssertionError(f"read of window offset {offset:#x}")


@pytest.fixture(scope="module")
def top():
    return PackageTop(e2e_package("default", npu=E2E_PARAMS["npu"]))


def test_demo_is_exact_on_the_model(top):
    host = ModelPackageHost(top)
    result = asyncio.run(gemm_demo(host, top, seed=5, log=None))
    assert result["exact"], result
    assert {g["npu"] for g in result["gemms"]} == {"npu0", "npu1"}
    assert len(result["convs"]) == 1 and result["convs"][0]["exact"]
    for name in ("npu0", "npu1"):    # every command the demo counted reached its tile
        npu = host.npus[top.region(name).base]
        assert npu["issued"] == sum(e["commands"] for e in result["gemms"] + result["convs"]
                                    if e["npu"] == name)


def test_demo_reports_a_wrong_result(top):
    # Corrupt what the host reads back from the memory tile's program area.
    host = ModelPackageHost(top, flip_above=1024)
    result = asyncio.run(gemm_demo(host, top, seed=5, conv=False, log=None))
    assert not result["exact"]
    wrong = [g for g in result["gemms"] if not g["exact"]]
    assert wrong and "first_difference" in wrong[0]


def test_a_tile_that_never_answers_is_an_error_not_a_hang(top):
    host = ModelPackageHost(top, stall=("npu0",))
    window = top.region("npu0")
    client = NpuClient(host, "npu0", window.base, top.region("memory").base, max_polls=5)
    gen = np.random.default_rng(1)
    a, w = gen.integers(-128, 128, (3, 5)), gen.integers(-128, 128, (5, 2))
    program = compile_gemm(a, w, random_quantisation(gen, 2), npu_limits(top, "npu0"),
                           memory_base=1024)
    assert len(program.commands) > host.queue   # so the queue fills
    with pytest.raises(NpuError, match="npu0: the command queue stayed full for 5 polls"):
        asyncio.run(client.run(program))
    # A short program fits the queue, and then waits for statuses that never come.
    program = compile_gemm(a[:1, :1], w[:1, :1], random_quantisation(gen, 1),
                           npu_limits(top, "npu0"), memory_base=1024)
    host = ModelPackageHost(top, stall=("npu0",), queue=len(program.commands))
    client = NpuClient(host, "npu0", window.base, top.region("memory").base, max_polls=5)
    with pytest.raises(NpuError, match="npu0: 0 statuses for"):
        asyncio.run(client.run(program))


def test_a_tile_restarted_under_a_program_is_found_at_once(top):
    """The tile's die is reset after some of the program's commands: its ``issued`` count
    falls, and the driver says so at the first poll that finds no status, not after
    ``max_polls``."""
    window = top.region("npu0")
    gen = np.random.default_rng(2)
    a, w = gen.integers(-128, 128, (3, 5)), gen.integers(-128, 128, (5, 2))
    program = compile_gemm(a, w, random_quantisation(gen, 2), npu_limits(top, "npu0"),
                           memory_base=1024)
    host = ModelPackageHost(top, queue=len(program.commands), restart_after=3)
    client = NpuClient(host, "npu0", window.base, top.region("memory").base, max_polls=1000)
    after = len(program.commands) - 3      # written to the fresh tile
    with pytest.raises(NpuError, match=rf"npu0: the tile restarted under the program "
                                       rf"\({after} commands issued since its reset, "
                                       rf"{len(program.commands)} expected\)"):
        asyncio.run(client.execute(program))
    assert host.reads < 20, f"{host.reads} reads before the restart was noticed"
