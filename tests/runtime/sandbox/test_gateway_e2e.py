"""End to end through the real gateway: an agent in a bwrap sandbox calls `fleetplane up` with the
official openai SDK, knowing only the injected placeholder key and base URL; the call is served by the
simulator and charged in the usage ledger to the agent's own virtual key."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaState
from fleetplane.sim.process import SimProcess
from fleetplane.store.keys import new_secret

pytestmark = [pytest.mark.usefixtures("bwrap_ok")]

FLEET = """
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: upstream}
spec: {type: openai-compatible, baseURL: "{sim}/v1"}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: solo}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: upstream, model: sim-small}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: probe-key}
spec: {team: support, agent: probe, secretRef: {env: FP_SANDBOX_KEY}}
"""


@pytest.fixture
def gateway(tmp_path: Path, postgres_url: str) -> Iterator[tuple[str, str]]:
    key = new_secret()
    with SimProcess({"seed": 5, "instant": True, "models": {"sim-small": {}}}) as sim:
        fleet = tmp_path / "fleet"
        fleet.mkdir()
        (fleet / "fleet.yaml").write_text(textwrap.dedent(FLEET).replace("{sim}", sim.base_url))
        port = _free_port()
        env = {
            **os.environ,
            "FLEETPLANE_HOME": str(tmp_path / "home"),
            "FLEETPLANE_DATABASE_URL": postgres_url,
            "FP_SANDBOX_KEY": key,
        }
        env.pop("FLEETPLANE_REDIS_URL", None)
        log = (tmp_path / "up.log").open("wb")
        up = subprocess.Popen(
            [sys.executable, "-m", "fleetplane.cli", "up", str(fleet), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, up, tmp_path / "up.log")
            yield url, key
        finally:
            up.terminate()
            up.wait(timeout=30)
            log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"fleetplane up exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/admin/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"fleetplane up never became ready:\n{log.read_text()[-3000:]}")


def _ledger(database_url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(
            conn.execute("SELECT key_id, team, agent, model, status, output_tokens FROM usage_records")
        )


@pytest.mark.anyio
async def test_a_sandboxed_agent_is_charged_to_its_own_virtual_key(
    supervisor: Any, make_spec: Any, http: Any, gateway: tuple[str, str], postgres_url: str
) -> None:
    url, key = gateway
    ready = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.1, timeout=1.0, failure_threshold=1))
    spec = make_spec(network="gateway", gateway_url=url, virtual_key=key, probes=ready)
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    answer = await http.get(replica, "/chat?model=solo")
    assert answer["id"] and answer["content"]
    streamed = await http.get(replica, "/chat?model=solo&stream=1")  # SSE passes through the bridge
    assert streamed["chunks"] > 2 and streamed["content"]
    async with httpx.AsyncClient() as client:
        flushed = await client.post(url + "/admin/gateway/flush", timeout=15)
    assert flushed.status_code == 200
    records = _ledger(postgres_url)
    assert len(records) == 2  # the plain call and the streamed one
    for record in records:
        row = (record["team"], record["agent"], record["model"], record["status"])
        assert row == ("support", "probe", "solo", 200)
        assert record["key_id"] and record["output_tokens"] > 0
    assert records[0]["key_id"] == records[1]["key_id"]
    env = await http.get(replica, "/env")
    assert key not in env.values()
