"""Fixtures of the sandbox tests: real sandboxes (bwrap, runsc) under a real supervisor and cgroups.

Outside CI a missing bwrap/runsc or cgroup access skips with a message saying how to get it; under
CI=true it fails, so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetplane.runtime.cgroups import CgroupError, detect
from fleetplane.runtime.replica import Backoff, Probes, ReplicaSpec, Resources
from fleetplane.runtime.supervisor import ManagedReplica, Supervisor

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
AGENTS = Path(__file__).parent / "agents"
FAST = Backoff(initial=0.05, maximum=0.4, reset_after=600)


def missing(what: str, how: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {what}; {how}")
    pytest.skip(f"{what}; {how}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def cgroups_ok() -> None:
    if os.geteuid() != 0:
        missing("the sandbox tests need root (cgroups, bwrap as root)", "run them as root")
    try:
        detect()
    except CgroupError as exc:
        missing(f"no usable cgroups: {exc}", "mount the memory, cpu and pids controllers")


@pytest.fixture(scope="session")
def bwrap_ok(cgroups_ok: None) -> None:
    if shutil.which("bwrap") is None:
        missing("bubblewrap is not installed", "apt-get install bubblewrap (scripts/_setup.sh does)")


@pytest.fixture(scope="session")
def runsc_ok(cgroups_ok: None) -> None:
    if shutil.which("runsc") is None:
        missing("gVisor (runsc) is not installed", "apt-get install runsc (scripts/_setup.sh does)")


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    sup = Supervisor(tmp_path / "runtime")
    yield sup
    await sup.close(grace=0.5)


SpecFactory = Callable[..., ReplicaSpec]


@pytest.fixture
def make_spec(tmp_path: Path, request: pytest.FixtureRequest) -> SpecFactory:
    counter = iter(range(1000))

    def make(argv: tuple[str, ...] | None = None, **changes: Any) -> ReplicaSpec:
        name = request.node.name.replace("[", "-").replace("]", "")[:30]
        fields: dict[str, Any] = {
            "agent": "probe",
            "replica_id": f"{name}-{next(counter)}",
            "revision": "rev1",
            "argv": argv or (sys.executable, "/agent/probe_agent.py"),
            "cwd": str(AGENTS),
            "log_dir": tmp_path / "logs",
            "tier": "bwrap",
            "resources": Resources(cpu_millis=500, memory_bytes=96 * 2**20, pids=64, disk_bytes=4 * 2**20),
            "network": "none",
            "probes": Probes(),
            "backoff": FAST,
            "stop_grace": 1.0,
        }
        fields.update(changes)
        return ReplicaSpec(**fields)

    return make


class AgentHttp:
    """Talks to a replica's agent through its endpoint (the host-side unix socket)."""

    @staticmethod
    def client(replica: ManagedReplica, timeout: float = 10.0) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=replica.endpoint)
        return httpx.AsyncClient(transport=transport, base_url="http://agent", timeout=timeout)

    @classmethod
    async def get(cls, replica: ManagedReplica, path: str) -> Any:
        """GET through the endpoint, retrying while the agent is still binding its port."""
        for _ in range(100):
            try:
                async with cls.client(replica) as c:
                    response = await c.get(path)
                return response.json()
            except (httpx.TransportError, ValueError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"the agent never answered {path}")


@pytest.fixture
def http() -> type[AgentHttp]:
    return AgentHttp
