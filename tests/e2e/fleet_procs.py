"""Gateway replicas as their own OS processes: `python -m fleetplane.cli up DIR --port P`, as an operator
runs them, sharing one Postgres (keys, applied manifests, the usage ledger) and one Redis (quota counters,
breakers, cooldowns), all calling one simulator process through an `openai-compatible` provider.

One simulator for every replica (rather than a `sim` provider that makes each `up` start its own): the
upstream is then the same server whatever replica calls it, its stats are one set of books to compare
with, a replica killed with SIGKILL takes no upstream down with it, and two cores carry one simulator
instead of three.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from fleetplane.store.keys import new_secret

# Every chat model instant unless a request's directive paces it.
SIM_CONFIG: dict[str, Any] = {
    "seed": 23,
    "instant": True,
    "models": {
        "sim-small": {"output_tokens": {"mean": 20, "stddev": 5, "min": 5, "max": 40}},
        "sim-medium": {"output_tokens": {"mean": 30, "stddev": 5, "min": 5, "max": 60}},
        "sim-large": {"output_tokens": {"mean": 30, "stddev": 5, "min": 5, "max": 60}},
    },
}

# The fleet's one key: its secret comes from the environment, so every replica's `up` applies the same
# key instead of minting a new one.
KEY_ENV = "FP_E2E_KEY"
KEY = new_secret()

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
spec:
  type: openai-compatible
  baseURL: {sim}/v1
  maxConnections: 2000
  timeouts: {read: 60s}
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
kind: Model
metadata: {name: drip}
spec:
  family: sim-gpt
  contextWindow: 32000
  maxOutputTokens: 1000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: upstream, model: sim-medium}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: slow}
spec:
  family: sim-gpt
  contextWindow: 32000
  maxOutputTokens: 1000
  price: {input: 1.0, output: 2.0}
  deployments: [{provider: upstream, model: sim-large}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {name: full}
spec: {team: support, agent: bot, secretRef: {env: FP_E2E_KEY}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quota(name: str, target: str, limits: str, **extra: str) -> str:
    more = "".join(f"  {k}: {v}\n" for k, v in extra.items())
    return (
        "---\napiVersion: fleetplane.dev/v1alpha1\nkind: Quota\n"
        f"metadata: {{name: {name}}}\nspec:\n  target: {target}\n  limits: {limits}\n{more}"
    )


def write_fleet(directory: Path, sim_url: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(FLEET).replace("{sim}", sim_url) + textwrap.dedent(extra)
    (directory / "fleet.yaml").write_text(text)
    return directory


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def quotas(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """`/admin/quotas` as {(rule, subject): {limit name: {limit, used, reserved, resetAfter}}}."""
        response = httpx.get(self.url + "/admin/quotas", timeout=10)
        response.raise_for_status()
        rows = response.json()["quotas"]
        return {(r["rule"], r["subject"]): {lim["name"]: lim for lim in r["limits"]} for r in rows}

    def flush(self) -> None:
        httpx.post(self.url + "/admin/gateway/flush", timeout=15).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no settlement, no flush — a crashed replica."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


class Replicas:
    """Starts replicas one after another (each `up` applies the fleet first) and stops them all."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Replica] = []

    def start(
        self,
        fleet_dir: Path,
        *,
        database_url: str,
        redis_url: str | None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Replica:
        index = len(self.started)
        port = free_port()
        log = self.tmp_path / f"replica{index}.log"
        environment = {
            **os.environ,
            "FLEETPLANE_HOME": str(self.tmp_path / f"home{index}"),
            "FLEETPLANE_DATABASE_URL": database_url,
            KEY_ENV: KEY,
            "COLUMNS": "200",
            **(env or {}),
        }
        environment.pop("FLEETPLANE_REDIS_URL", None)
        if redis_url is not None:
            environment["FLEETPLANE_REDIS_URL"] = redis_url
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "fleetplane.cli", "up", str(fleet_dir), "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
            )
        replica = Replica(process, f"http://127.0.0.1:{port}", log)
        self.started.append(replica)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"replica {index} exited with {process.returncode}:\n{replica.output()}")
            try:
                if httpx.get(replica.url + "/admin/ready", timeout=2).status_code == 200:
                    return replica
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {index} did not become ready:\n{replica.output()}")
            time.sleep(0.1)

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()


def ledger(database_url: str) -> list[dict[str, Any]]:
    """Every usage record in the shared Postgres ledger (flush the replicas first)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(
            conn.execute(
                "SELECT request_id, model, status, stream, input_tokens, output_tokens, cost_usd,"
                " client_disconnected, error_type, usage_source FROM usage_records ORDER BY id"
            )
        )


def tokens(records: list[dict[str, Any]]) -> int:
    return sum(r["input_tokens"] + r["output_tokens"] for r in records)


def dollars(records: list[dict[str, Any]]) -> Decimal:
    return sum((r["cost_usd"] for r in records), Decimal(0))
