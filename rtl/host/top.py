"""The host bridge behind a UART, for the boards."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..noc.transaction import InitiatorSignature
from .bridge import COUNTERS, HostBridge, HostBridgeParams
from .uart import UartParams, UartRx, UartTx

__all__ = ["UartHostBridge"]

_BRIDGE_COUNTERS = tuple(name for name in COUNTERS if not name.startswith("transport_"))


class UartHostBridge(wiring.Component):
    """:class:`UartRx` + :class:`HostBridge` + :class:`UartTx`.

    The UART's framing errors and overruns are the bridge's transport counters, so the host
    reads them with the bridge's own (``OP_COUNTERS``).

    Parameters
    ----------
    bridge : HostBridgeParams
    uart : UartParams
        Its divisor sets the baud rate (``clock / divisor``). The bridge's ``frame_timeout``
        should cover several byte times (``10 * divisor`` cycles each).

    Members
    -------
    rx : In(1)
        UART pin from the host (idles high).
    tx : Out(1)
        UART pin to the host (idles high).
    bus : Out(InitiatorSignature(bridge.transaction))
    ok : Out(1)
        High while no error has been counted (for an LED).
    """

    def __init__(self, bridge: HostBridgeParams = HostBridgeParams(),
                 uart: UartParams = UartParams()):
        self.bridge_params = bridge
        self.uart_params = uart
        if uart.counter_width != bridge.counter_width:
            raise ValueError(f"UART and bridge counter widths differ ({uart.counter_width} "
                             f"and {bridge.counter_width})")
        frame_bits = 10 * uart.divisor
        if bridge.frame_timeout < 2 * frame_bits:
            raise ValueError(f"Frame timeout {bridge.frame_timeout} is shorter than two "
                             f"UART bytes ({2 * frame_bits} cycles at divisor "
                             f"{uart.divisor})")
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(InitiatorSignature(bridge.transaction)),
            "ok": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UartRx(self.uart_params)
        m.submodules.uart_tx = uart_tx = UartTx(self.uart_params)
        m.submodules.bridge = bridge = HostBridge(self.bridge_params)
        m.d.comb += [
            uart_rx.rx.eq(self.rx),
            self.tx.eq(uart_tx.tx),
            bridge.transport_errors.eq(uart_rx.framing_errors),
            bridge.transport_overruns.eq(uart_rx.overruns),
        ]
        wiring.connect(m, uart_rx.o, bridge.rx)
        wiring.connect(m, bridge.tx, uart_tx.i)
        wiring.connect(m, wiring.flipped(self.bus), bridge.bus)
        errors = [uart_rx.framing_errors, uart_rx.overruns,
                  *(getattr(bridge, name) for name in _BRIDGE_COUNTERS if name != "commands")]
        m.d.comb += self.ok.eq(~_any(errors))
        return m


def _any(values):
    result = values[0] != 0
    for value in values[1:]:
        result = result | (value != 0)
    return result
