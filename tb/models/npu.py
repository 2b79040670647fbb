"""Reference model of the NPU's numerics: lives in :mod:`chipknit.npu.model` (host code runs
it too); re-exported here for the testbenches."""

from chipknit.npu.model import *  # noqa: F403
from chipknit.npu.model import __all__  # noqa: F401
