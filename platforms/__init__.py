"""FPGA boards and the build flow.

- :mod:`.boards`: the board registry (``BOARDS``; ULX3S ECP5-85F by default, iCEBreaker
  iCE40UP5K) and the only place that names pins.
- :mod:`.top`: a design plus a board's clock and LEDs; top factories.
- :mod:`.toolchain`: the YoWASP Yosys/nextpnr executables Amaranth is pointed at.
- :mod:`.build`: ``build(board, seed=, top=)`` -> bitstream and ``report.json``.

``python -m chipknit.platforms --board NAME`` builds from the shell; see docs/build.md.
"""
