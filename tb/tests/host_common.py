"""What the host bridge testbenches share: design factories and a memory target.

``bridge_top``, ``uart_pair_top`` and ``uart_bridge_top`` build the designs from flat,
JSON-friendly parameters (what ``tb/benches.py`` registers). :class:`MemoryTarget` plays the
network behind the bridge's initiator port: it serves reads and writes from a
:class:`~chipknit.tb.models.host.MemoryModel` in order, with random backpressure on the
request and write-data streams, random response latency and gaps between response beats,
the model's error statuses, and late ("slow") answers past the bridge's bus timeout.
"""

import random
from collections import deque

import cocotb
from amaranth.hdl import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles, Event, RisingEdge

from chipknit.rtl.host.bridge import HostBridge, HostBridgeParams
from chipknit.rtl.host.top import UartHostBridge
from chipknit.rtl.host.uart import UartParams, UartRx, UartTx
from chipknit.rtl.noc.flit import FlitFormat
from chipknit.rtl.noc.transaction import TransactionParams
from chipknit.tb.models.host import BridgeModel, MemoryModel
from chipknit.tb.stream import StreamSink, StreamSource, no_pauses, random_pauses

__all__ = ["bridge_top", "uart_pair_top", "uart_bridge_top", "transaction_params",
           "bridge_params", "UartPair", "MemoryTarget", "bridge_model"]


def transaction_params(data_width=32, addr_width=32, length_bits=8, tag_bits=4):
    return TransactionParams(flit=FlitFormat(data_width=data_width), addr_width=addr_width,
                             length_bits=length_bits, tag_bits=tag_bits)


def bridge_params(data_width=32, addr_width=32, length_bits=8, tag_bits=4, buffer_beats=16,
                  frame_timeout=64, bus_timeout=200, counter_width=16, **_):
    return HostBridgeParams(
        transaction=transaction_params(data_width, addr_width, length_bits, tag_bits),
        buffer_beats=buffer_beats, frame_timeout=frame_timeout, bus_timeout=bus_timeout,
        counter_width=counter_width)


def bridge_top(**params):
    return HostBridge(bridge_params(**params))


class UartPair(wiring.Component):
    """A :class:`UartRx` and a :class:`UartTx` side by side (a test top).

    Members
    -------
    rx : In(1)
    o : Out(stream.Signature(8))
    framing_errors, overruns : Out(counter_width)
    i : In(stream.Signature(8))
    tx : Out(1)
    """

    def __init__(self, params: UartParams):
        self.params = params
        super().__init__({
            "rx": In(1, init=1), "o": Out(stream.Signature(8)),
            "framing_errors": Out(params.counter_width), "overruns": Out(params.counter_width),
            "i": In(stream.Signature(8)), "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UartRx(self.params)
        m.submodules.uart_tx = uart_tx = UartTx(self.params)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx),
                     self.framing_errors.eq(uart_rx.framing_errors),
                     self.overruns.eq(uart_rx.overruns)]
        wiring.connect(m, uart_rx.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.i), uart_tx.i)
        return m


def uart_pair_top(divisor=16, counter_width=16):
    return UartPair(UartParams(divisor=divisor, counter_width=counter_width))


def uart_bridge_top(divisor=16, buffer_beats=16, frame_timeout=1000, bus_timeout=500,
                    counter_width=16, data_width=32):
    return UartHostBridge(
        bridge_params(data_width=data_width, buffer_beats=buffer_beats,
                      frame_timeout=frame_timeout, bus_timeout=bus_timeout,
                      counter_width=counter_width),
        UartParams(divisor=divisor, counter_width=counter_width))


def bridge_model(params: dict, memory: MemoryModel, transport=(0, 0)) -> BridgeModel:
    p = bridge_params(**params)
    return BridgeModel(memory=memory, beat_bytes=p.beat_bytes, buffer_beats=p.buffer_beats,
                       max_read_beats=p.max_read_beats, addr_width=p.transaction.addr_width,
                       counter_width=p.counter_width, transport=transport)


def _fields(layout):
    return {name: (field.offset, Shape.cast(field.shape).width) for name, field in layout}


def _unpack(fields, bits):
    return {name: (bits >> offset) & ((1 << width) - 1)
            for name, (offset, width) in fields.items()}


def _pack(fields, values):
    return sum((values.get(name, 0) & ((1 << width) - 1)) << offset
               for name, (offset, width) in fields.items())


class MemoryTarget:
    """Serves the initiator port ``<prefix>__request/wdata/response`` from ``memory``.

    Requests are taken in order. A write's beats are collected (``last`` is checked), the
    model is applied, and after a random latency of ``latency`` cycles (a range) the
    response beats go out with random gaps. A burst in a ``"slow"`` region of the memory is
    answered only after ``slow_delay`` cycles. ``pause`` is the probability of stalling each
    stream each cycle.
    """

    def __init__(self, dut, prefix, clock, tparams: TransactionParams, memory: MemoryModel,
                 *, latency=(0, 20), pause=0.3, slow_delay=600, rng=None):
        self.clock = clock
        self.memory = memory
        self.latency = latency
        self.slow_delay = slow_delay
        self.rng = rng or random.Random(random.getrandbits(32))
        self.request_fields = _fields(tparams.request_layout)
        self.wdata_fields = _fields(tparams.wdata_layout)
        self.response_fields = _fields(tparams.response_layout)
        self.beat_bytes = tparams.beat_bytes
        pauses = (lambda: random_pauses(pause, self.rng)) if pause else no_pauses
        self.requests, self.wdata = deque(), deque()
        self.arrived = Event()
        self.request_sink = StreamSink(dut, f"{prefix}__request", clock, pauses(),
                                       callback=self._take(self.requests))
        self.wdata_sink = StreamSink(dut, f"{prefix}__wdata", clock, pauses(),
                                     callback=self._take(self.wdata))
        self.response_source = StreamSource(dut, f"{prefix}__response", clock, pauses())
        self.served = []      # (request dict, status) per transaction, for the tests
        self._task = cocotb.start_soon(self._serve())

    def _take(self, queue):
        def callback(bits):
            queue.append(bits)
            self.arrived.set()
        return callback

    async def _next(self, queue):
        while not queue:
            self.arrived.clear()
            await self.arrived.wait()
        return queue.popleft()

    async def _serve(self):
        while True:
            request = _unpack(self.request_fields, await self._next(self.requests))
            beats = request["length"] + 1
            addr = request["addr"]
            if request["write"]:
                data, strobes = [], []
                for index in range(beats):
                    beat = _unpack(self.wdata_fields, await self._next(self.wdata))
                    assert beat["last"] == (index == beats - 1), \
                        f"write beat {index} of {beats} has last={beat['last']}"
                    data.append(beat["data"])
                    strobes.append(beat["strobe"])
                status = self.memory.write(addr, data, strobes)
                words = [0]
            else:
                status, words = self.memory.read(addr, beats)
            self.served.append((request, status))
            delay = self.slow_delay if status == "slow" else self.rng.randint(*self.latency)
            if delay:
                await ClockCycles(self.clock, delay)
            wire_status = 0 if status == "slow" else status
            for index, word in enumerate(words):
                self.response_source.send_nowait(_pack(self.response_fields, {
                    "write": request["write"], "tag": request["tag"], "status": wire_status,
                    "data": word if wire_status == 0 else 0,
                    "last": index == len(words) - 1}))
                if self.rng.random() < 0.3:
                    await ClockCycles(self.clock, self.rng.randint(1, 5))
            await self.response_source.wait()
            await RisingEdge(self.clock)
