"""Fixtures for multi-process scenarios: one simulator process for the session, and gateway replicas
started as `fleetplane up` processes (see `fleet_procs`), stopped — or found already killed — at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fleet_procs import SIM_CONFIG, Replicas

from fleetplane.sim.process import SimProcess


@pytest.fixture(scope="session")
def e2e_sim() -> Iterator[SimProcess]:
    with SimProcess(SIM_CONFIG) as process:
        yield process


@pytest.fixture
def upstream(e2e_sim: SimProcess) -> Iterator[SimProcess]:
    """The shared simulator with no faults and zeroed stats."""
    e2e_sim.clear_faults()
    e2e_sim.reset_stats()
    e2e_sim.reset_rate_limits()
    yield e2e_sim
    e2e_sim.clear_faults()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    started = Replicas(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
