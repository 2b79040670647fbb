"""The host API: read, write and read counters over the host bridge.

:class:`Host` blocks (pyserial, scripts); :class:`AsyncHost` is awaited (cocotb, asyncio).
Both share :class:`HostCore`, which builds the frames, matches responses to commands by tag
and turns error statuses into exceptions, so the two behave the same; only the waiting
differs. A script written once against :class:`AsyncHost` runs in simulation
(``await script(AsyncHost(sim_transport))``) and on a board
(``run(script, SerialTransport(port))``), see :func:`run`.

Errors:

- :class:`TransactionError` — the network answered with an error status (``.status``:
  ``DECODE_ERROR``, ``TARGET_ERROR``, ``TIMEOUT``), or the bridge gave up waiting for the
  network (``BUS_TIMEOUT``). The command may have executed; not retried.
- :class:`NakError` — the bridge refused the frame (bad CRC, op, length, address) ``retries``
  times in a row. A NAKed command was not executed, so a NAK is always retried.
- :class:`ResponseTimeout` — no response came (a lost or truncated frame). Reads are retried;
  a write is retried only with ``retry_writes=True`` (it may have executed).
"""

import asyncio
import time
from collections.abc import Mapping

from .protocol import (
    COUNTER_BYTES,
    COUNTERS,
    OP_COUNTERS,
    OP_READ,
    OP_WRITE,
    OP_WRITE_MASKED,
    STATUS_NAMES,
    STATUS_OKAY,
    Response,
    ResponseParser,
    encode_command,
)

__all__ = ["HostError", "TransactionError", "NakError", "ResponseTimeout", "HostCore",
           "Host", "AsyncHost", "run", "package_options"]


class HostError(Exception):
    """Something the host could not do; ``status`` is the response's status byte (or None)."""

    def __init__(self, message: str, status: int | None = None, addr: int | None = None):
        super().__init__(message)
        self.status = status
        self.addr = addr

    @property
    def status_name(self) -> str | None:
        return None if self.status is None else STATUS_NAMES.get(self.status,
                                                                  f"0x{self.status:02x}")


class TransactionError(HostError):
    """The network (or the bridge's bus watchdog) answered with an error status."""


class NakError(HostError):
    """The bridge refused the command frame every time it was sent."""


class ResponseTimeout(HostError):
    """No response frame came in time."""


class HostCore:
    """Frames, tags, chunking and error handling; no I/O.

    Parameters
    ----------
    beat_bytes : int
        Bytes per word (the network's ``data_width / 8``).
    max_read_beats, max_write_beats : int
        Largest command the bridge takes (its ``max_read_beats`` and ``buffer_beats``);
        longer reads and writes are split.
    timeout : float
        Seconds to wait for a response (simulated seconds under cocotb).
    retries : int
        Extra attempts after a NAK or a response timeout.
    resync : float
        Seconds of silence before a retry, so a partial frame the bridge holds times out
        (longer than the bridge's ``frame_timeout``).
    retry_writes : bool
        Retry a write whose response never came (it may have been executed already).
    counter_map : mapping of str to int
        Addresses of further counters (link, NoC) that :meth:`read_counters` reads as one
        word each, by name.
    """

    def __init__(self, *, beat_bytes: int = 4, max_read_beats: int = 256,
                 max_write_beats: int = 64, timeout: float = 1.0, retries: int = 3,
                 resync: float = 0.05, retry_writes: bool = False,
                 counter_map: Mapping[str, int] | None = None):
        if beat_bytes < 1 or max_read_beats < 1 or max_write_beats < 1:
            raise ValueError("Beat bytes and beat limits must be positive")
        self.beat_bytes = beat_bytes
        self.max_read_beats = min(max_read_beats, 256)
        self.max_write_beats = min(max_write_beats, 256)
        self.timeout = timeout
        self.retries = retries
        self.resync = resync
        self.retry_writes = retry_writes
        self.counter_map = dict(counter_map or {})
        self.parser = ResponseParser(beat_bytes=beat_bytes)
        self.next_tag = 0
        #: Host-side statistics: retries made, responses to older commands dropped.
        self.stats = {"retries": 0, "naks": 0, "timeouts": 0, "stale": 0}

    def new_tag(self) -> int:
        tag = self.next_tag
        self.next_tag = (self.next_tag + 1) & 0xFF
        return tag

    def check_address(self, addr: int, words: int) -> None:
        if addr % self.beat_bytes:
            raise ValueError(f"Address {addr:#x} is not aligned to {self.beat_bytes} bytes")
        if words < 0 or addr + words * self.beat_bytes > 1 << 32:
            raise ValueError(f"{words} words at {addr:#x} run past the 32-bit address space")

    def read_commands(self, addr: int, n_words: int):
        """``(op, frame builder, beats, addr)`` per chunk of a read."""
        self.check_address(addr, n_words)
        for start in range(0, n_words, self.max_read_beats):
            beats = min(self.max_read_beats, n_words - start)
            chunk = addr + start * self.beat_bytes
            yield OP_READ, chunk, beats, (lambda tag, chunk=chunk, beats=beats: encode_command(
                OP_READ, tag, chunk, length=beats - 1, beat_bytes=self.beat_bytes))

    def write_commands(self, addr: int, words, strobes=None):
        words = list(words)
        self.check_address(addr, len(words))
        if strobes is not None and len(strobes) != len(words):
            raise ValueError(f"{len(strobes)} strobes for {len(words)} words")
        op = OP_WRITE if strobes is None else OP_WRITE_MASKED
        for start in range(0, len(words), self.max_write_beats):
            part = words[start:start + self.max_write_beats]
            mask = None if strobes is None else list(strobes[start:start + len(part)])
            chunk = addr + start * self.beat_bytes
            yield op, chunk, len(part), (lambda tag, chunk=chunk, part=part, mask=mask:
                                         encode_command(op, tag, chunk, part, strobes=mask,
                                                        beat_bytes=self.beat_bytes))

    def accept(self, response: Response, op: int, tag: int, addr: int) -> Response | None:
        """The response to the command in flight, or None (stale); raises on an error
        status other than a NAK (the caller retries NAKs)."""
        if response.tag != tag or (response.op not in (op, 0xFF)):
            self.stats["stale"] += 1
            return None
        if response.nak:
            return response
        if response.status != STATUS_OKAY:
            raise TransactionError(
                f"{_op_name(op)} at {addr:#010x} failed: {response.status_name}",
                status=response.status, addr=addr)
        return response

    def may_retry_timeout(self, op: int) -> bool:
        return op in (OP_READ, OP_COUNTERS) or self.retry_writes

    def counters(self, response: Response) -> dict[str, int]:
        values = [int.from_bytes(response.payload[i:i + COUNTER_BYTES], "little")
                  for i in range(0, len(response.payload), COUNTER_BYTES)]
        return dict(zip(COUNTERS, values, strict=False))


def _op_name(op: int) -> str:
    return {OP_READ: "read", OP_WRITE: "write", OP_WRITE_MASKED: "masked write",
            OP_COUNTERS: "counter read"}.get(op, f"op {op:#x}")


def _nak_error(op, addr, response, attempts):
    return NakError(f"{_op_name(op)} at {addr:#010x} refused {attempts} times: "
                    f"{response.status_name}", status=response.status, addr=addr)


def _timeout_error(op, addr, seconds, attempts):
    return ResponseTimeout(f"no response to {_op_name(op)} at {addr:#010x} within "
                           f"{seconds:g} s ({attempts} attempts)", addr=addr)


class Host(HostCore):
    """Blocking host over a :class:`~chipknit.host.transport.Transport` (see HostCore for
    the keyword arguments)."""

    def __init__(self, transport, **options):
        super().__init__(**options)
        self.transport = transport

    def _exchange(self, op: int, addr: int, build) -> Response:
        attempts = 0
        while True:
            attempts += 1
            tag = self.new_tag()
            self.transport.write(build(tag))
            response = self._await(op, tag, addr)
            if response is not None and not response.nak:
                return response
            last = response
            if response is None:
                self.stats["timeouts"] += 1
                if not self.may_retry_timeout(op) or attempts > self.retries:
                    raise _timeout_error(op, addr, self.timeout, attempts)
            else:
                self.stats["naks"] += 1
                if attempts > self.retries:
                    raise _nak_error(op, addr, last, attempts)
            self.stats["retries"] += 1
            self.transport.sleep(self.resync)
            self.transport.discard_input()
            self.parser.reset()

    def _await(self, op, tag, addr) -> Response | None:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for response in self.parser.feed(self.transport.read(left)):
                if (accepted := self.accept(response, op, tag, addr)) is not None:
                    return accepted

    def read(self, addr: int, n_words: int) -> list[int]:
        """``n_words`` words from byte address ``addr`` (beat aligned)."""
        words = []
        for op, chunk, _beats, build in self.read_commands(addr, n_words):
            words += self._exchange(op, chunk, build).words(self.beat_bytes)
        return words

    def write(self, addr: int, words, strobes=None) -> None:
        """Write ``words`` from ``addr``; ``strobes`` (one byte mask per word) masks bytes."""
        for op, chunk, _beats, build in self.write_commands(addr, words, strobes):
            self._exchange(op, chunk, build)

    def read_counters(self) -> dict[str, int]:
        """The bridge's counters, then one word per entry of ``counter_map``."""
        response = self._exchange(OP_COUNTERS, 0, lambda tag: encode_command(
            OP_COUNTERS, tag, beat_bytes=self.beat_bytes))
        counters = self.counters(response)
        for name, addr in self.counter_map.items():
            counters[name] = self.read(addr, 1)[0]
        return counters


class AsyncHost(HostCore):
    """The same API awaited, over an :class:`~chipknit.host.transport.AsyncTransport` (or a
    blocking :class:`~chipknit.host.transport.Transport`, called directly)."""

    def __init__(self, transport, **options):
        super().__init__(**options)
        self.transport = transport
        self._blocking = not asyncio.iscoroutinefunction(getattr(transport, "read", None))

    async def _call(self, name, *args):
        result = getattr(self.transport, name)(*args)
        return result if self._blocking else await result

    async def _exchange(self, op: int, addr: int, build) -> Response:
        attempts = 0
        while True:
            attempts += 1
            tag = self.new_tag()
            await self._call("write", build(tag))
            response = await self._await(op, tag, addr)
            if response is not None and not response.nak:
                return response
            if response is None:
                self.stats["timeouts"] += 1
                if not self.may_retry_timeout(op) or attempts > self.retries:
                    raise _timeout_error(op, addr, self.timeout, attempts)
            else:
                self.stats["naks"] += 1
                if attempts > self.retries:
                    raise _nak_error(op, addr, response, attempts)
            self.stats["retries"] += 1
            await self._call("sleep", self.resync)
            self.transport.discard_input()
            self.parser.reset()

    async def _await(self, op, tag, addr) -> Response | None:
        # Time comes from the transport's clock (simulated time under cocotb).
        now = getattr(self.transport, "now", None) or time.monotonic
        deadline = now() + self.timeout
        while (left := deadline - now()) > 0:
            for response in self.parser.feed(await self._call("read", left)):
                if (accepted := self.accept(response, op, tag, addr)) is not None:
                    return accepted
        return None

    async def read(self, addr: int, n_words: int) -> list[int]:
        words = []
        for op, chunk, _beats, build in self.read_commands(addr, n_words):
            words += (await self._exchange(op, chunk, build)).words(self.beat_bytes)
        return words

    async def write(self, addr: int, words, strobes=None) -> None:
        for op, chunk, _beats, build in self.write_commands(addr, words, strobes):
            await self._exchange(op, chunk, build)

    async def read_counters(self) -> dict[str, int]:
        response = await self._exchange(OP_COUNTERS, 0, lambda tag: encode_command(
            OP_COUNTERS, tag, beat_bytes=self.beat_bytes))
        counters = self.counters(response)
        for name, addr in self.counter_map.items():
            counters[name] = (await self.read(addr, 1))[0]
        return counters


def package_options(top) -> dict:
    """The :class:`Host`/:class:`AsyncHost` options that match the host bridge of ``top``
    (a :class:`~chipknit.rtl.package.top.PackageTop`): its beat width, largest read and
    write, and the package's counter map."""
    params = top.tile_params[top.host.name]
    return {"beat_bytes": params.beat_bytes, "max_read_beats": params.max_read_beats,
            "max_write_beats": params.buffer_beats, "counter_map": top.counter_map()}


def run(script, transport, **options):
    """Run ``async def script(host)`` against a blocking transport (a board): the same
    script a cocotb test awaits with an :class:`AsyncHost` on a simulation transport."""
    return asyncio.run(script(AsyncHost(transport, **options)))
