"""The servers a gateway benchmark runs against: N `fleetplane up` replicas of one fleet, and what they
share when there are several (a private Redis server, a throwaway Postgres database).

A topology is data (`Topology`): how many replicas, where quotas/breakers/cooldowns live (in-process or
Redis) and where the usage ledger goes (a SQLite file, or a Postgres database every replica writes to).

- Redis is a `redis-server` of our own on a free port, without persistence, started and stopped with the
  run: its CPU (`INFO cpu`) and its command counts (`INFO commandstats`) are then ours alone, not those of
  whatever else uses the machine's shared Redis.
- Postgres is a fresh database created on the server named by `FLEETPLANE_BENCH_POSTGRES_URL` (default
  `postgresql://postgres@127.0.0.1:5432/postgres`, the server the tests use) and dropped afterwards.
- The replicas start one after the other (each applies the same fleet to the store; concurrent applies
  would race for nothing), each with its own `FLEETPLANE_HOME`, and each answers one real request before
  any load, so a wrong fleet fails at once with the gateway's own words.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fleets
import orjson
from common import CpuMeter, free_port, post_json, process_meter, request, spawn, stop, tail, wait_http

POSTGRES_ENV = "FLEETPLANE_BENCH_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Topology:
    replicas: int = 1
    shared_state: Literal["in-process", "redis"] = "in-process"
    database: Literal["sqlite", "postgres"] = "sqlite"

    def describe(self) -> str:
        ledger = "a SQLite file" if self.database == "sqlite" else "one Postgres database"
        return f"{self.replicas} replica(s), state {self.shared_state}, usage ledger on {ledger}"


class RedisServer:
    """A private `redis-server` on a free port, no persistence, for one run."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self._proc: Any = None
        self.client: Any = None

    def __enter__(self) -> RedisServer:
        import redis

        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed; the Redis profiles need one on PATH")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--maxmemory-policy", "noeviction"]
        self._proc = spawn(args, env={}, log=self.log)
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{tail(self.log)}") from None
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self._proc is not None:
            stop(self._proc)

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def cpu_seconds(self) -> float:
        """The server's own user + system CPU (INFO cpu: all its threads)."""
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def command_calls(self) -> dict[str, int]:
        """Calls so far per command (INFO commandstats), e.g. {"evalsha": 12000, "get": 3000}."""
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}

    def round_trip_ms(self, samples: int = 2000) -> dict[str, float]:
        """PING round trips as the gateway's client library sees them (redis-py asyncio, on uvloop)."""
        import redis.asyncio as aioredis
        import uvloop

        async def measure() -> list[float]:
            client = aioredis.Redis(host="127.0.0.1", port=self.port)
            try:
                for _ in range(100):
                    await client.ping()
                times = []
                for _ in range(samples):
                    start = time.perf_counter()
                    await client.ping()
                    times.append((time.perf_counter() - start) * 1000)
                return sorted(times)
            finally:
                await client.aclose()

        times = uvloop.run(measure())
        return {"p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1]}


class PostgresDatabase:
    """A fresh database on the benchmark Postgres server, dropped afterwards."""

    def __init__(self) -> None:
        self.server = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
        self.name = f"fleetplane_bench_{secrets.token_hex(6)}"
        base, _, _ = self.server.rpartition("/")
        self.url = f"{base}/{self.name}"

    def __enter__(self) -> PostgresDatabase:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.OperationalError as exc:
            raise RuntimeError(
                f"Postgres at {self.server} is not reachable ({exc}); set {POSTGRES_ENV} to a server "
                "this benchmark may create databases on"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg
        from psycopg import sql

        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.server, autocommit=True, connect_timeout=5) as conn,
        ):
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            conn.execute(drop)


@dataclass
class Replica:
    index: int
    port: int
    proc: Any
    log: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root + "/v1"


class Gateways:
    """`fleetplane up` on one fleet, `topology.replicas` times, sharing its Redis and its store."""

    def __init__(
        self,
        fleet: fleets.FleetVariant,
        params: fleets.FleetParams,
        topology: Topology,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        first_key: str | None = None,
    ) -> None:
        self.fleet = fleet
        self.params = params
        self.topology = topology
        self.workdir = workdir
        self.env = dict(env or {})
        self.key = "sk-bench-" + secrets.token_hex(16)
        self.first_key = first_key  # the key of the first request to each replica (default: self.key)
        self.replicas: list[Replica] = []
        self.redis: RedisServer | None = None
        self.database_url = ""
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Gateways:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        fleet_dir = self.workdir / "fleet"
        self.fleet(self.params, fleet_dir)
        env = {fleets.KEY_ENV: self.key, **self.env}
        if self.topology.shared_state == "redis":
            self.redis = self._stack.enter_context(RedisServer(self.workdir))
            env["FLEETPLANE_REDIS_URL"] = self.redis.url
            env["FLEETPLANE_REPLICAS"] = str(self.topology.replicas)
        if self.topology.database == "postgres":
            self.database_url = self._stack.enter_context(PostgresDatabase()).url
        else:
            self.database_url = f"sqlite:///{self.workdir / 'fleetplane.db'}"
        env["FLEETPLANE_DATABASE_URL"] = self.database_url
        for index in range(1, self.topology.replicas + 1):
            home = self.workdir / f"home-{index}"
            home.mkdir()
            port = free_port()
            log = self.workdir / f"gateway-{index}.log"
            args = [sys.executable, "-m", "fleetplane.cli", "up", str(fleet_dir), "--port", str(port)]
            proc = spawn(args, env={**env, "FLEETPLANE_HOME": str(home)}, log=log)
            replica = Replica(index, port, proc, log)
            self.replicas.append(replica)
            wait_http(f"{replica.root}/admin/ready", proc=proc, log=log)
            self._first_request(replica)

    def _first_request(self, replica: Replica) -> None:
        body = {
            "model": self.params.model,
            "messages": [{"role": "user", "content": f"hello from the benchmark to replica {replica.index}"}],
        }
        headers = {"authorization": f"Bearer {self.first_key or self.key}"}
        status, reply = post_json(replica.base_url + "/chat/completions", body, headers)
        if status != 200:
            raise RuntimeError(
                f"gateway replica {replica.index} answered {status} to a first request: {reply[:500]!r}\n"
                f"{tail(replica.log)}"
            )

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            stop(replica.proc)
        self._stack.close()

    def save_logs(self, prefix: Path) -> list[Path]:
        """Copy each replica's output (warnings and errors: `up` logs at warning) beside the results."""
        saved = []
        for replica in self.replicas:
            if replica.log.exists() and replica.log.stat().st_size > 0:
                target = prefix.with_name(f"{prefix.name}-gateway-{replica.index}.log")
                shutil.copyfile(replica.log, target)
                saved.append(target)
        return saved

    @property
    def urls(self) -> list[str]:
        return [r.base_url for r in self.replicas]

    def cpu_meters(self) -> dict[str, CpuMeter]:
        """Cumulative CPU seconds of every replica (`gateway-N`) and of the Redis server (`redis`)."""
        meters = {f"gateway-{r.index}": process_meter(r.pid) for r in self.replicas}
        if self.redis is not None:
            meters["redis"] = self.redis.cpu_seconds
        return meters

    def admin(self, path: str, *, replica: int = 1, method: str = "GET") -> Any:
        """An admin API call on one replica (from loopback, so no token is needed), as parsed JSON."""
        status, body = request(self.replicas[replica - 1].root + path, method=method)
        if status != 200:
            raise RuntimeError(f"{method} {path} on replica {replica} answered {status}: {body[:300]!r}")
        return orjson.loads(body)
