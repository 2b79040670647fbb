"""Measures the GEMM engine's MAC utilisation from local scratchpads (``chipknit bench npu``).

For each size S in ``CHIPKNIT_NPU_SIZES`` (JSON list) it loads a random S×S×S quantised layer,
runs it (one compute command per column block, requantised while the next block computes)
and writes to the JSON file named by ``CHIPKNIT_RESULT_FILE``, per size: the cycles from the
first command to the last accumulator written (``compute_cycles``) and to the last result
out (``total_cycles``), the ideal ``S³ / (R·C)``, and whether every result matched the model.
It asserts the results are bit-exact, so a benchmark never reports a wrong computation.
"""

import json
import os
import random

import cocotb
import numpy as np

from chipknit.tb.dut import design_params, reset, start_clock
from chipknit.tb.models.npu import qgemm
from chipknit.tb.tests.npu_driver import EngineDriver, engine_params
from chipknit.tb.tests.npu_engine import random_layer

RESULT_ENV = "CHIPKNIT_RESULT_FILE"
SIZES_ENV = "CHIPKNIT_NPU_SIZES"


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def utilisation(dut):
    params = engine_params(design_params())
    start_clock(dut)
    driver = EngineDriver(dut, params)
    await reset(dut)
    gen = np.random.default_rng(random.getrandbits(32))
    rows, cols = params.array.rows, params.array.cols
    points = []
    for size in json.loads(os.environ.get(SIZES_ENV, "[16]")):
        a, w, bias, multiplier, shift = random_layer(gen, size, size, size)
        await driver.load_gemm(a, w, bias, multiplier, shift, a_zero_point=-7)
        run = await driver.run_gemm(size, size, size, a_zero_point=-7, out_zero_point=3)
        expected = qgemm(a, w, bias, multiplier, shift, a_zero_point=-7, out_zero_point=3)
        exact = bool(np.array_equal(run.result, expected))
        assert exact, f"{size}^3 GEMM differs from the model"
        ideal = size ** 3 / (rows * cols)
        points.append({"m": size, "n": size, "k": size, "ideal_cycles": ideal,
                       "compute_cycles": run.compute_cycles, "total_cycles": run.total_cycles,
                       "mac_utilisation": round(ideal / run.compute_cycles, 4),
                       "end_to_end_utilisation": round(ideal / run.total_cycles, 4),
                       "bit_exact": exact})
        dut._log.info(f"{size}^3: {points[-1]}")
    if RESULT_ENV in os.environ:
        with open(os.environ[RESULT_ENV], "w") as file:
            json.dump({"points": points}, file)
