"""Isolation under bwrap, asserted from inside: the agent reaches nothing but the gateway, sees no host
process, cannot write the host filesystem, and reads its secrets as files that are in no env or log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleetplane.runtime.logs import read_records
from fleetplane.runtime.replica import HttpCheck, Probes, ProbeSpec, ReplicaState

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap_ok")]

READY = Probes(readiness=ProbeSpec(HttpCheck("/healthz"), period=0.1, timeout=1.0, failure_threshold=1))


async def test_the_agent_reaches_nothing_but_loopback(supervisor: Any, make_spec: Any, http: Any) -> None:
    replica = await supervisor.start(make_spec(probes=READY))
    assert await replica.wait_for({ReplicaState.READY}, timeout=20) == ReplicaState.READY
    for host, port in (("127.0.0.1", 5432), ("127.0.0.1", 6379), ("1.1.1.1", 443), ("10.0.0.1", 80)):
        result = (await http.get(replica, f"/connect?host={host}&port={port}"))["result"]
        assert result.startswith("refused"), (host, port, result)


async def test_no_host_process_is_visible(supervisor: Any, make_spec: Any, http: Any) -> None:
    replica = await supervisor.start(make_spec(probes=READY))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    pids = (await http.get(replica, "/pids"))["pids"]
    # bwrap's init, the forwarder and the agent: a fresh pid namespace, not the host's processes
    assert pids == [1, 2, 3]
    # and the minimal root: the supervisor's own files are not there to read
    for path in ("/root/.bashrc", "/root/.gitconfig", "/etc/shadow", "/home", "/var/lib/postgresql"):
        assert (await http.get(replica, f"/exists?path={path}"))["exists"] is False, path


async def test_the_host_filesystem_is_read_only(
    supervisor: Any, make_spec: Any, http: Any, tmp_path: Path
) -> None:
    replica = await supervisor.start(make_spec(probes=READY))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    for path in ("/usr/evil", "/agent/evil", "/etc/evil", f"{tmp_path}/evil", "/run/secrets/evil"):
        result = (await http.get(replica, f"/write?path={path}"))["result"]
        assert result.startswith("denied"), (path, result)
    assert (await http.get(replica, "/write?path=/tmp/fine"))["result"] == "written"
    assert not os.path.exists(tmp_path / "evil")  # noqa: ASYNC240
    assert not os.path.exists("/etc/evil")  # noqa: ASYNC240


async def test_secrets_are_files_never_env_or_logs(
    supervisor: Any, make_spec: Any, http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_PASSWORD", "host-secret-value")  # the supervisor's env stays outside
    token = "tok-8f2d1c9a77"
    spec = make_spec(probes=READY, secrets={"api-token": token.encode()}, env={"MODE": "test"})
    replica = await supervisor.start(spec)
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    assert (await http.get(replica, "/secret?name=api-token"))["value"] == token
    env = await http.get(replica, "/env")
    assert env["MODE"] == "test"
    assert env["FLEETPLANE_SECRETS_DIR"] == "/run/secrets"
    assert env["OTEL_SERVICE_NAME"] == "probe"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        f"fleetplane.agent=probe,fleetplane.replica={spec.replica_id},fleetplane.revision=rev1"
    )
    assert not any(token in value for value in env.values())
    assert "HOST_ONLY_PASSWORD" not in env
    await http.get(replica, f"/print?text=leaking+{token}+now")
    await replica.stop(grace=1)
    lines = [r["line"] for r in read_records(replica.log_path)]
    assert "leaking [secret:api-token] now" in lines
    assert not any(token in str(line) for line in lines)
    assert token not in repr(spec)


async def test_no_capabilities_and_a_seccomp_filter(supervisor: Any, make_spec: Any, http: Any) -> None:
    replica = await supervisor.start(make_spec(probes=READY))
    await replica.wait_for({ReplicaState.READY}, timeout=20)
    status = await http.get(replica, "/status")
    assert status == {
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",  # filter mode
    }
