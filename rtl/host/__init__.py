"""Host bridge: a UART and a transport-independent byte protocol onto the network
(see docs/host.md).

- :mod:`.uart`: :class:`UartRx` / :class:`UartTx`, 8N1 byte streams at a fixed divisor.
- :mod:`.bridge`: :class:`HostBridge`, command frames in, transactions out, response frames
  back.
- :mod:`.top`: :class:`UartHostBridge`, the two wired together for the boards.
"""
