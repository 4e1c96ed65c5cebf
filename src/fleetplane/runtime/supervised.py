"""One supervised replica: the `Replica` handle and its run loop (start → probe → exit → back-off).

The handle outlives restarts: state, endpoint, restarts and the last exit describe the replica, not one
process. See `runtime.supervisor` for what happens per start and `runtime.replica` for the contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from fleetplane.runtime import probes, spawn
from fleetplane.runtime.bridge import EgressProxy, GatewayProxy
from fleetplane.runtime.cgroups import Cgroup, CgroupError
from fleetplane.runtime.logs import LogWriter
from fleetplane.runtime.replica import (
    ExitStatus,
    ProbeSpec,
    ReplicaSpec,
    ReplicaState,
    SandboxError,
    StateCallback,
    log_path,
)
from fleetplane.runtime.sandbox import ReplicaPaths, sandbox_for

if TYPE_CHECKING:
    from fleetplane.runtime.supervisor import Supervisor

log = logging.getLogger("fleetplane.runtime.supervisor")
_SOCKET_WAIT = 0.02  # how often to look for the forwarder's sockets while it starts


class ManagedReplica:
    def __init__(self, supervisor: Supervisor, spec: ReplicaSpec, paths: ReplicaPaths) -> None:
        self.spec = spec
        self.paths = paths
        self._sup = supervisor
        self._state = ReplicaState.STARTING
        self._changed = asyncio.Event()
        self._callbacks: list[StateCallback] = []
        self._restarts = 0
        self._last_exit: ExitStatus | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._probe_failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._proxy: GatewayProxy | None = None
        self._egress: EgressProxy | None = None
        self._http: httpx.AsyncClient | None = None  # the probes' client for this start
        self._log: LogWriter | None = None
        self._seen: set[int] = set()  # pids seen in the cgroup before a kill, for the reaper
        self.cgroup: Cgroup | None = None  # the current start's cgroup (tests read its counters)
        self.backoff_delays: list[float] = []  # every back-off wait, in order
        self.finished = False

    # -- the Replica protocol ---------------------------------------------------------------

    @property
    def state(self) -> ReplicaState:
        return self._state

    @property
    def endpoint(self) -> str:
        return str(self.paths.run_dir / "agent.sock")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def last_exit(self) -> ExitStatus | None:
        return self._last_exit

    @property
    def log_path(self) -> Path:
        return log_path(self.spec)

    def on_change(self, callback: StateCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def wait_for(self, states: Collection[ReplicaState], timeout: float | None = None) -> ReplicaState:
        async def wait() -> ReplicaState:
            while self._state not in states:
                await self._changed.wait()
            return self._state

        return await asyncio.wait_for(wait(), timeout)

    async def stop(self, grace: float | None = None) -> None:
        if self.finished:
            return
        self._stopping = True
        self._stop_event.set()
        if self._process is not None and self._process.returncode is None:
            await self._terminate(self.spec.stop_grace if grace is None else grace)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.close_resources()
        self._set_state(ReplicaState.STOPPED)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._sup.prepare, self.paths)
        labels = {"agent": self.spec.agent, "replica": self.spec.replica_id, "revision": self.spec.revision}
        self._log = LogWriter(self.log_path, labels, secrets=self.spec.secrets, clock=self._sup.clock)
        self._proxy = self._sup.gateway_proxy(self.spec, self.paths)
        if self._proxy is not None:
            await self._proxy.start()
        self._egress = self._sup.egress_proxy(self.spec, self.paths)
        if self._egress is not None:
            await self._egress.start()

    def begin(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"replica {self.spec.replica_id}")

    async def close_resources(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._proxy is not None:
            await self._proxy.close()
        if self._egress is not None:
            await self._egress.close()
        if self._log is not None:
            self._log.close()
        await asyncio.to_thread(self._sup.cleanup, self.paths)

    def _set_state(self, state: ReplicaState) -> None:
        old, self._state = self._state, state
        if old == state:
            return
        self._changed.set()
        self._changed = asyncio.Event()
        for callback in list(self._callbacks):
            try:
                callback(self, old, state)
            except Exception:  # a listener's bug must not stop supervision
                log.exception("replica state callback failed")

    async def _run(self) -> None:
        crashes = 0
        backoff = self.spec.backoff
        while not self._stopping:
            started = self._sup.clock.monotonic()
            try:
                status = await self._run_once()
            except (SandboxError, CgroupError, OSError) as exc:
                status = ExitStatus("Exit", code=None, at=self._sup.clock.now(), detail=str(exc))
                log.error("replica %s could not start: %s", self.spec.replica_id, exc)
            except Exception as exc:  # keep supervising: a bug in one start must not orphan the replica
                status = ExitStatus("Exit", code=None, at=self._sup.clock.now(), detail=repr(exc))
                log.exception("replica %s: start failed", self.spec.replica_id)
            if self._stopping:
                break
            self._last_exit = status
            self._set_state(ReplicaState.EXITED)
            if not self._restart_wanted(status):
                self._set_state(ReplicaState.STOPPED)
                return
            if self._sup.clock.monotonic() - started >= backoff.reset_after:
                crashes = 0
            delay = backoff.delay(crashes)
            crashes += 1
            self.backoff_delays.append(delay)
            self._set_state(ReplicaState.BACKOFF)
            sleeper = asyncio.ensure_future(self._sup.clock.sleep(delay))
            stopper = asyncio.ensure_future(self._stop_event.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stopper.cancel()
            if self._stopping:
                break
            self._restarts += 1

    def _restart_wanted(self, status: ExitStatus) -> bool:
        policy = self.spec.restart_policy
        if policy == "Never":
            return False
        if policy == "OnFailure":
            return not (status.reason == "Exit" and status.code == 0)
        return True

    async def _run_once(self) -> ExitStatus:
        for name in ("agent.sock", "control.sock", "exit.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.paths.run_dir / name).unlink()
        self._probe_failure = None
        plan = sandbox_for(self.spec.tier).plan(self.spec, self.paths)
        try:
            cgroup = await asyncio.to_thread(self._sup.new_cgroup, self.spec)
        except BaseException:
            for fd in plan.close_after_spawn:
                os.close(fd)
            raise
        self.cgroup = cgroup
        self._set_state(ReplicaState.STARTING)
        try:
            process = await asyncio.create_subprocess_exec(
                *plan.argv,
                env=plan.env,
                cwd=plan.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=plan.pass_fds,
                start_new_session=True,
                preexec_fn=functools.partial(spawn.child_setup, cgroup.procs_files, plan.rlimits),
            )
        except BaseException:
            await asyncio.to_thread(spawn.dispose, cgroup, set())
            raise
        finally:
            for fd in plan.close_after_spawn:
                os.close(fd)
        self._process = process
        if self._stopping:  # stop() came while this start was being set up
            await self._terminate(0.0)
        assert process.stdout is not None and process.stderr is not None and self._log is not None
        pumps = [
            asyncio.create_task(self._log.pump("stdout", process.stdout)),
            asyncio.create_task(self._log.pump("stderr", process.stderr)),
        ]
        watcher = asyncio.create_task(self._watch(process))
        code = await spawn.wait_exit(process)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        oom_kills = cgroup.oom_kills()
        seen, self._seen = self._seen | cgroup.pids(), set()
        await asyncio.to_thread(spawn.dispose, cgroup, seen)
        await asyncio.wait(pumps, timeout=2.0)  # the pipes close once the whole tree is gone
        return self._classify(code, oom_kills)

    def _classify(self, code: int, oom_kills: int) -> ExitStatus:
        now = self._sup.clock.now()
        reported: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            reported = json.loads((self.paths.run_dir / "exit.json").read_text())
        # a probe failure is the cause only if the agent ended after we asked it to (or never said how
        # it ended): an agent that died on its own fails its probes on the way out too
        if self._probe_failure is not None and (not reported or reported.get("termed")):
            return ExitStatus("ProbeFailed", code=None, signal=None, at=now, detail=self._probe_failure)
        if oom_kills > 0:
            return ExitStatus("OOMKilled", code=137, signal="SIGKILL", at=now, detail=f"oom_kill {oom_kills}")
        if "signal" in reported:
            return ExitStatus("Signal", signal=self._sup.signal_name(reported["signal"]), at=now)
        if "code" in reported:
            return ExitStatus("Exit", code=reported["code"], at=now)
        if code < 0:  # the sandbox itself was killed
            return ExitStatus("Signal", signal=self._sup.signal_name(-code), at=now)
        if code > 128:  # a sandbox that reports its child's death by signal as 128+N
            return ExitStatus("Signal", signal=self._sup.signal_name(code - 128), at=now)
        return ExitStatus("Exit", code=code, at=now)

    async def _terminate(self, grace: float) -> None:
        """SIGTERM the agent (through the forwarder), then kill the whole cgroup after `grace`."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        if not await self._sup.request_term(self.paths):
            # Nobody to ask: the forwarder binds its control socket before it starts the agent, so the
            # agent is not running yet (a start still coming up, a restart after back-off) or the
            # forwarder is gone. No graceful stop to wait for: waiting the grace would only delay it.
            grace = 0.0
        try:
            await asyncio.wait_for(spawn.wait_exit(process), grace)
        except TimeoutError:
            if self.cgroup is not None:
                self._seen |= self.cgroup.pids()  # reaped after the exit: orphans among them are ours
                self._seen |= await asyncio.to_thread(self.cgroup.kill)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)

    # -- probes ---------------------------------------------------------------------------

    async def _check(self, spec: ProbeSpec) -> tuple[bool, str]:
        self._note_pids()
        if self._http is None:
            self._http = probes.endpoint_client(self.paths.run_dir / "agent.sock")
        return await probes.check(
            spec,
            client=self._http,
            control=self.paths.run_dir / "control.sock",
            agent_port=self.spec.port,
        )

    def _note_pids(self) -> None:
        """Remember who lives in the cgroup: a daemon that exits before the final kill (runsc's Sentry
        and Gofer) is a zombie re-parented to us, and only pids seen here are reaped."""
        if self.cgroup is not None:
            self._seen |= self.cgroup.pids()

    async def _until_verdict(self, spec: ProbeSpec) -> tuple[str, str]:
        counter = probes.ProbeCounter(spec)
        await self._sup.clock.sleep(spec.initial_delay)
        while True:
            ok, detail = await self._check(spec)
            verdict = counter.record(ok, detail)
            if verdict is not None:
                return verdict, detail
            await self._sup.clock.sleep(spec.period)

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        control = self.paths.run_dir / "control.sock"
        # the forwarder binds its sockets before it starts the agent; nothing signals that but the file
        while not control.exists():  # noqa: ASYNC110
            await asyncio.sleep(_SOCKET_WAIT)
        self._note_pids()
        p = self.spec.probes
        if p.startup is not None:
            verdict, detail = await self._until_verdict(p.startup)
            if verdict == "fail":
                await self._fail(f"startup probe failed: {detail}")
                return
        tasks = [asyncio.create_task(self._readiness(p.readiness))]
        if p.liveness is not None:
            tasks.append(asyncio.create_task(self._liveness(p.liveness)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _readiness(self, spec: ProbeSpec | None) -> None:
        if spec is None:
            self._set_state(ReplicaState.READY)
            return
        counter = probes.ProbeCounter(spec)
        await self._sup.clock.sleep(spec.initial_delay)
        while True:
            ok, detail = await self._check(spec)
            verdict = counter.record(ok, detail)
            if verdict == "pass":
                self._set_state(ReplicaState.READY)
            elif verdict == "fail":
                self._set_state(ReplicaState.UNREADY)
            await self._sup.clock.sleep(spec.period)

    async def _liveness(self, spec: ProbeSpec) -> None:
        verdict, detail = await self._until_fail(spec)
        if verdict == "fail":
            await self._fail(f"liveness probe failed: {detail}")

    async def _until_fail(self, spec: ProbeSpec) -> tuple[str, str]:
        counter = probes.ProbeCounter(spec)
        await self._sup.clock.sleep(spec.initial_delay)
        while True:
            ok, detail = await self._check(spec)
            if counter.record(ok, detail) == "fail":
                return "fail", detail
            await self._sup.clock.sleep(spec.period)

    async def _fail(self, why: str) -> None:
        log.warning("replica %s: %s; restarting", self.spec.replica_id, why)
        self._probe_failure = why
        self._set_state(ReplicaState.UNREADY)
        await self._terminate(self.spec.stop_grace)
