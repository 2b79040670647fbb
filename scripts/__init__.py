"""chipknit: an open chiplet interconnect fabric in Amaranth HDL.

The package is assembled from the repository's folders: ``chipknit.rtl`` (``rtl/``, the
hardware), ``chipknit.tb`` (``tb/``, testbenches, reference models and the simulation
harness), ``chipknit.platforms`` (``platforms/``, boards and the build flow), and this
package itself (``scripts/``: the command line and benchmarks).
"""
