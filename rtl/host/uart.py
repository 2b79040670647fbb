"""8N1 UART receiver and transmitter as byte streams.

One start bit (0), eight data bits LSB first, one stop bit (1); the line idles high. Both
ends run from the ``sync`` clock at ``divisor`` clock cycles per bit, so the baud rate is
``clock / divisor`` (:meth:`UartParams.from_baud` picks the divisor and refuses a rate the
clock cannot make within 1 %).

:class:`UartRx` passes the pin through a two-stage :class:`~amaranth.lib.cdc.FFSynchronizer`
(the pin is asynchronous to the clock), waits for a falling edge, checks the start bit again
half a bit later (a shorter glitch is ignored) and then samples each bit in its middle, one
``divisor`` apart. Sampling mid-bit tolerates a sender whose rate is off by up to about
±4 % over the ten bits of a frame. A stop bit read as 0 is a *framing error*: the byte is
dropped and counted, and the receiver waits for the line to go high again before it looks
for the next start bit (so a break condition counts once, not once per byte time). A byte
that completes while the previous one is still waiting on ``o`` (the consumer stalled for a
whole byte time) is dropped and counted as an *overrun*. Counters saturate.

:class:`UartTx` takes a byte from ``i`` whenever it is idle and shifts it out; ``i.ready``
is high only between frames, so a byte is never cut short.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import cdc, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from ..credit import add_event_counters

__all__ = ["UartParams", "UartRx", "UartTx"]

#: Baud error :meth:`UartParams.from_baud` accepts between the asked and the made rate.
BAUD_TOLERANCE = 0.01


class _RxState(enum.Enum):
    """States of the receiver."""
    IDLE = 0
    START = 1
    DATA = 2
    STOP = 3
    BREAK = 4


@dataclass(frozen=True)
class UartParams:
    """Parameters of a UART.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 4, so that the middle of a bit is well defined).
    counter_width : int
        Width of the saturating error counters.
    """
    divisor: int = 217          # 115200 baud from a 25 MHz clock (ULX3S)
    counter_width: int = 16

    def __post_init__(self):
        if not isinstance(self.divisor, int) or isinstance(self.divisor, bool) \
                or self.divisor < 4:
            raise ValueError(f"Divisor must be an integer of at least 4 clock cycles per "
                             f"bit, not {self.divisor!r}")
        if not isinstance(self.counter_width, int) or isinstance(self.counter_width, bool) \
                or self.counter_width < 1:
            raise ValueError(f"Counter width must be a positive integer, not "
                             f"{self.counter_width!r}")

    @classmethod
    def from_baud(cls, clock_hz: float, baud: float, **kwargs) -> "UartParams":
        """The divisor closest to ``clock_hz / baud``; refuses an error above 1 %."""
        if clock_hz <= 0 or baud <= 0:
            raise ValueError(f"Clock and baud rate must be positive, not {clock_hz!r} and "
                             f"{baud!r}")
        divisor = max(1, round(clock_hz / baud))
        error = abs(clock_hz / divisor - baud) / baud
        if error > BAUD_TOLERANCE:
            raise ValueError(f"A {clock_hz / 1e6:g} MHz clock makes {baud:g} baud only "
                             f"{100 * error:.1f} % off (divisor {divisor}); at most "
                             f"{100 * BAUD_TOLERANCE:g} % is allowed")
        return cls(divisor=divisor, **kwargs)

    def baud(self, clock_hz: float) -> float:
        return clock_hz / self.divisor


def _check(params):
    if not isinstance(params, UartParams):
        raise TypeError(f"UART parameters must be a UartParams, not {params!r}")


class UartRx(wiring.Component):
    """UART receiver: the ``rx`` pin in, received bytes out.

    Parameters
    ----------
    params : UartParams

    Members
    -------
    rx : In(1)
        The pin (asynchronous; idles high). Its reset value is 1, so an undriven input in
        simulation looks idle.
    o : Out(stream.Signature(8))
        Received bytes. ``valid`` stays high until the byte is taken.
    framing_errors : Out(counter_width)
        Frames whose stop bit was 0 (dropped).
    overruns : Out(counter_width)
        Bytes dropped because the previous one had not been taken yet.
    """

    def __init__(self, params: UartParams = UartParams()):
        _check(params)
        self.params = params
        width = params.counter_width
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_errors": Out(width),
            "overruns": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        divisor = self.params.divisor
        count = add_event_counters(m, self, ("framing_errors", "overruns"),
                                   self.params.counter_width)

        line = Signal(init=1)
        m.submodules.sync_rx = cdc.FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(divisor))
        bits = Signal(range(9))
        shift = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        state = Signal(_RxState)
        with m.Switch(state):
            with m.Case(_RxState.IDLE):
                with m.If(~line):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.d.sync += state.eq(_RxState.START)
            with m.Case(_RxState.START):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):          # gone again before mid-bit: a glitch
                    m.d.sync += state.eq(_RxState.IDLE)
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bits.eq(0)]
                    m.d.sync += state.eq(_RxState.DATA)
            with m.Case(_RxState.DATA):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), shift.eq(Cat(shift[1:], line)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.d.sync += state.eq(_RxState.STOP)
            with m.Case(_RxState.STOP):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.comb += count["overruns"].eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                    m.d.sync += state.eq(_RxState.IDLE)
                with m.Else():
                    m.d.comb += count["framing_errors"].eq(1)
                    m.d.sync += state.eq(_RxState.BREAK)
            with m.Case(_RxState.BREAK):
                with m.If(line):
                    m.d.sync += state.eq(_RxState.IDLE)
        return m


class UartTx(wiring.Component):
    """UART transmitter: bytes in, the ``tx`` pin out.

    Parameters
    ----------
    params : UartParams

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The pin, registered; idles high (also in reset).
    """

    def __init__(self, params: UartParams = UartParams()):
        _check(params)
        self.params = params
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        divisor = self.params.divisor
        timer = Signal(range(divisor))
        # The 8 data bits and the stop bit still to send, LSB first.
        frame = Signal(9)
        left = Signal(range(10))

        # Idle once the stop bit has been held for a whole bit time: ``left == 0 and
        # timer == 0``, kept as a register (``ready`` decides the bridge's next byte).
        idle = Signal(init=1)
        m.d.comb += self.i.ready.eq(idle)
        with m.If(timer != 0):
            m.d.sync += [timer.eq(timer - 1), idle.eq((timer == 1) & (left == 0))]
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(frame[0]), frame.eq(frame[1:]), left.eq(left - 1),
                         timer.eq(divisor - 1), idle.eq((divisor == 1) & (left == 1))]
        with m.Elif(self.i.valid):      # the start bit goes out at once
            m.d.sync += [self.tx.eq(0), frame.eq(Cat(self.i.payload, Const(1, 1))),
                         left.eq(9), timer.eq(divisor - 1), idle.eq(0)]
        return m
