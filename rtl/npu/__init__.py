"""NPU tile: int8 systolic GEMM, requantisation, scratchpads, commands, DMA (see docs/npu.md)."""
