"""Shared pytest options for the regression.

``--seed N`` runs every cocotb testbench with seed N; ``--seed random`` draws a fresh one per
test (printed on failure with the command that reproduces it). By default each test gets a
fixed seed derived from its name, so the default run is repeatable.

Tests marked ``heavy(seconds)`` (the longest of the default run: the package's cold
Verilator builds; ``seconds`` as measured warm) are collected first, longest first, so that
``scripts/test`` (xdist, ``--dist worksteal``) starts them at once and the other worker takes
the many short tests meanwhile.
"""

import random
import zlib

import pytest


def pytest_addoption(parser):
    parser.addoption("--seed", default=None,
                     help="cocotb random seed for every testbench: an integer or 'random'")


@pytest.fixture
def seed(request) -> int:
    option = request.config.getoption("--seed")
    if option == "random":
        return random.SystemRandom().randrange(1 << 31)
    if option is not None:
        return int(option)
    return zlib.crc32(request.node.nodeid.encode()) & 0x7FFFFFFF


def _heavy_seconds(item) -> float:
    marker = item.get_closest_marker("heavy")
    return marker.args[0] if marker and marker.args else (1.0 if marker else 0.0)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -_heavy_seconds(item))
