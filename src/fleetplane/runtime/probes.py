"""Probes: startup, readiness and liveness checks, http (through the replica's endpoint) or exec
(inside the sandbox, through the forwarder), with Kubernetes' thresholds.

`ProbeCounter` is the threshold logic alone (consecutive successes/failures → pass/fail), so it is
tested without processes; `check` runs one probe once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import httpx

from fleetplane.runtime import bridge
from fleetplane.runtime.replica import ExecCheck, HttpCheck, ProbeSpec

Verdict = Literal["pass", "fail"]


class ProbeCounter:
    """Consecutive results → a verdict once `success_threshold` passes or `failure_threshold` fails."""

    def __init__(self, spec: ProbeSpec) -> None:
        self.spec = spec
        self.successes = 0
        self.failures = 0
        self.last_detail = ""

    def record(self, ok: bool, detail: str = "") -> Verdict | None:
        self.last_detail = detail
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            return "pass" if self.successes >= self.spec.success_threshold else None
        self.successes, self.failures = 0, self.failures + 1
        return "fail" if self.failures >= self.spec.failure_threshold else None


def endpoint_client(endpoint: Path) -> httpx.AsyncClient:
    """One client per replica start, reused by every http probe (a client per probe costs an SSL
    context each time: noticeable CPU with many idle replicas)."""
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(endpoint)), base_url="http://agent")


async def check(
    spec: ProbeSpec, *, client: httpx.AsyncClient, control: Path, agent_port: int
) -> tuple[bool, str]:
    """Run the probe once: (passed, what was seen)."""
    probe = spec.check
    if isinstance(probe, HttpCheck):
        if probe.port not in (None, agent_port):  # another port: asked from inside, by the forwarder
            request = {"op": "http", "port": probe.port, "path": probe.path, "timeout": spec.timeout}
            try:
                reply = await bridge.control(control, request, spec.timeout + 2)
            except (OSError, TimeoutError, ValueError) as exc:
                return False, f"GET :{probe.port}{probe.path}: {exc}"
            status = reply.get("status")
            ok = isinstance(status, int) and 200 <= status < 400
            return (
                ok,
                f"GET :{probe.port}{probe.path}: {status if status is not None else reply.get('output')}",
            )
        try:
            response = await client.get(probe.path, timeout=spec.timeout)
        except httpx.HTTPError as exc:
            return False, f"GET {probe.path}: {type(exc).__name__}"
        ok = 200 <= response.status_code < 400
        return ok, f"GET {probe.path}: {response.status_code}"
    assert isinstance(probe, ExecCheck)
    try:
        code, output = await bridge.exec_in(control, probe.argv, spec.timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        return False, f"exec {probe.argv[0]}: {exc}"
    return code == 0, f"exec {probe.argv[0]}: exit {code}: {output.strip()[-200:]}"
