"""Fixtures for the gateway's tests: one simulator process for the session, a fresh gateway per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import SIM_CONFIG, GatewayUnderTest, start_gateway, write_fleet

from fleetplane.sim.process import SimProcess


@pytest.fixture(scope="session")
def gateway_sim() -> Iterator[SimProcess]:
    with SimProcess(SIM_CONFIG) as process:
        yield process


@pytest.fixture
def sim(gateway_sim: SimProcess) -> Iterator[SimProcess]:
    """The shared simulator with no faults, zeroed stats and full rate-limit buckets."""
    gateway_sim.clear_faults()
    gateway_sim.reset_stats()
    gateway_sim.reset_rate_limits()
    yield gateway_sim
    gateway_sim.clear_faults()


GatewayFactory = Callable[..., GatewayUnderTest]


@pytest.fixture
def make_gateway(tmp_path: Path, sim: SimProcess) -> Iterator[GatewayFactory]:
    started: list[GatewayUnderTest] = []

    def make(
        database_url: str | None = None, *, redis_url: str | None = None, extra: str = "", **fleet: str
    ) -> GatewayUnderTest:
        url = database_url or f"sqlite:///{tmp_path / f'gw{len(started)}.db'}"
        max_body = fleet.pop("max_body", None)
        fleet_dir = write_fleet(tmp_path / f"fleet{len(started)}", extra, **fleet)
        limit = int(max_body) if max_body else None
        gateway = start_gateway(fleet_dir, url, sim.base_url, redis_url=redis_url, max_body=limit)
        started.append(gateway)
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> GatewayUnderTest:
    """A gateway on SQLite with in-process state."""
    return make_gateway()
