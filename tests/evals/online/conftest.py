"""Fixtures for the online evals tests: one simulator process for the module's session, and a real gateway
(uvicorn in a thread, from tests/gateway/harness.py) whose spans and content events land in a span store the
test owns."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "gateway"))

from harness import SIM_CONFIG

from fleetplane.sim.process import SimProcess


@pytest.fixture(scope="session")
def online_sim() -> Iterator[SimProcess]:
    with SimProcess(SIM_CONFIG) as process:
        yield process
