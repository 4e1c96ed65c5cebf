"""Fixtures for the evals tests: the gateway harness of tests/gateway (a real gateway on real HTTP, the
simulator as its own process)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "gateway"))

from harness import SIM_CONFIG

from fleetplane.sim.process import SimProcess


@pytest.fixture(scope="session")
def evals_sim() -> Iterator[SimProcess]:
    with SimProcess(SIM_CONFIG) as process:
        yield process
