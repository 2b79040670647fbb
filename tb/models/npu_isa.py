"""The NPU instruction set: lives in :mod:`chipknit.npu.isa` (the host compiler encodes
with it); re-exported here for the testbenches."""

from chipknit.npu.isa import *  # noqa: F403
from chipknit.npu.isa import __all__  # noqa: F401
