"""Host side of the NPU tile: the numerics' golden model, the instruction set, a
tile-level model that executes programs, and the compiler that tiles GEMMs and 2-D
convolutions into programs (see ``docs/npu.md``, *Host compiler*).

Pure Python and NumPy: nothing here imports the RTL, so the model stays independent of
what it checks.
"""
