"""Host side of the host bridge: one Python API for the simulation and the boards.

- :mod:`.protocol`: frames, CRC, response parser (pure Python).
- :mod:`.host`: :class:`Host` (blocking) and :class:`AsyncHost` (awaited), with errors as
  exceptions carrying the status.
- :mod:`.transport`: :class:`SerialTransport` (pyserial) and the transport interfaces.
- :mod:`.sim`: transports a cocotb test drives (the bridge's byte streams, or UART pins).
- :mod:`.scripts`: scripts that run unchanged on both (``python -m chipknit.host``).

See docs/host.md.
"""

from .host import (
    AsyncHost,
    Host,
    HostError,
    NakError,
    ResponseTimeout,
    TransactionError,
    package_options,
    run,
)
from .transport import AsyncTransport, LoopbackTransport, SerialTransport, Transport

__all__ = ["Host", "AsyncHost", "HostError", "TransactionError", "NakError",
           "ResponseTimeout", "run", "package_options", "Transport", "AsyncTransport",
           "SerialTransport", "LoopbackTransport"]
