"""Fixtures for the simulator's tests: one shared instant simulator process, and helpers to read it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules import the helper modules beside them by name, whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).parent))

from sim_support import TEST_CONFIG

from fleetplane.sim.process import SimProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sim() -> Iterator[SimProcess]:
    with SimProcess(TEST_CONFIG) as process:
        yield process


@pytest.fixture
def fresh_sim(sim: SimProcess) -> Iterator[SimProcess]:
    """The shared simulator with no faults, zeroed stats and full rate-limit buckets, left that way."""
    sim.clear_faults()
    sim.reset_stats()
    sim.reset_rate_limits()
    yield sim
    sim.clear_faults()
