"""Agents from the command line: `fleetplane invoke`, `logs`, `rollout history|undo|status`,
`agents list` and `agent serve` (the declarative runner, started inside a sandbox by the runtime).

Everything but `logs` and `agent serve` asks the running server (its invoke and admin APIs): replicas
live in the server's supervisor. `logs` reads the per-replica JSON-lines files the supervisor writes,
so it works while the server is down too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.table import Column, Table

from fleetplane.cli.admin_client import DEFAULT_SERVER, ServerUnreachable, ServerURL, admin
from fleetplane.cli.common import BAD_INPUT, FAILED, console, fail, format_time
from fleetplane.store.url import home

rollout_app = typer.Typer(
    name="rollout", help="An agent's revisions: history, status, undo.", no_args_is_help=True
)
agents_app = typer.Typer(name="agents", help="The agents the server runs.", no_args_is_help=True)
agent_app = typer.Typer(name="agent", help="Run an agent (used inside its sandbox).", no_args_is_help=True)

Target = Annotated[str, typer.Option("--target", help="local (the server's runtime) or kubernetes.")]
Namespace = Annotated[str, typer.Option(help="Kubernetes namespace (--target kubernetes).")]
Kubeconfig = Annotated[Path | None, typer.Option(help="kubeconfig file (--target kubernetes).")]


def _admin(server: str, method: str, path: str, body: Any = None) -> Any:
    try:
        return admin(server, method, path) if body is None else _post(server, path, body)
    except ServerUnreachable as exc:
        fail(f"{exc}; start it with `fleetplane up`", code=FAILED)


def _post(server: str, path: str, body: Any) -> Any:
    headers = {"content-type": "application/json"}
    token = os.environ.get("FLEETPLANE_ADMIN_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(
            server.rstrip("/") + path, content=orjson.dumps(body), headers=headers, timeout=30
        )
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"no fleetplane server answers at {server} ({exc})") from exc
    return _body(server, path, response)


def _body(server: str, path: str, response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        fail(f"{server}{path} answered {response.status_code} with no JSON", code=FAILED)
    if response.status_code >= 400:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        fail(message or f"{server}{path} answered {response.status_code}", code=FAILED)
    return body


def _check_target(target: str) -> None:
    if target not in ("local", "kubernetes"):
        fail(f"--target {target!r}: expected local or kubernetes", code=BAD_INPUT)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
    app.add_typer(agents_app, name="agents")
    app.add_typer(agent_app, name="agent")

    @app.command()
    def invoke(
        name: Annotated[str, typer.Argument(help="The agent to invoke.")],
        input: Annotated[str | None, typer.Option("--input", "-i", help="The message text.")] = None,
        data: Annotated[str | None, typer.Option(help="A JSON object sent as a data part.")] = None,
        task_id: Annotated[
            str | None, typer.Option("--task-id", help="The task id (default: a new one).")
        ] = None,
        output: Annotated[
            str, typer.Option("--output", "-o", help="text (the answer) or json (the task).")
        ] = "text",
        server: ServerURL = DEFAULT_SERVER,
    ) -> None:
        """Send a message to an agent through the server (load-balanced over its ready replicas)."""
        if output not in ("text", "json"):
            fail(f"--output {output!r}: expected text or json")
        parts: list[dict[str, Any]] = []
        if input is not None:
            parts.append({"kind": "text", "text": input})
        if data is not None:
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                fail(f"--data is not JSON (line {exc.lineno} column {exc.colno})")
            if not isinstance(value, dict):
                fail("--data must be a JSON object")
            parts.append({"kind": "data", "data": value})
        if not parts:
            fail("nothing to send: give --input TEXT and/or --data JSON")
        body: dict[str, Any] = {"message": {"role": "user", "parts": parts}}
        if task_id:
            body["taskId"] = task_id
        path = f"/agents/{name}/invoke"
        try:
            response = httpx.post(
                server.rstrip("/") + path,
                content=orjson.dumps(body),
                timeout=330,
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            fail(
                f"no fleetplane server answers at {server} ({exc}); start it with `fleetplane up`",
                code=FAILED,
            )
        task = _body(server, path, response)
        if output == "json":
            console.print_json(data=task)
            return
        console.print(_answer(task), markup=False, soft_wrap=True)
        replica = response.headers.get("x-fleetplane-replica")
        if replica:
            console.print(
                f"(replica {replica}, revision {response.headers.get('x-fleetplane-revision')})",
                style="dim",
                markup=False,
            )

    @app.command()
    def logs(
        agent: Annotated[str, typer.Argument(help="The agent whose replicas' logs to show.")],
        follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
        replica: Annotated[str | None, typer.Option(help="Only this replica (its id).")] = None,
        tail: Annotated[int, typer.Option(help="Start with the last N lines of each replica.")] = 50,
        log_dir: Annotated[
            Path | None,
            typer.Option(help="The runtime's log directory [default: $FLEETPLANE_HOME/runtime/logs]."),
        ] = None,
    ) -> None:
        """An agent's stdout and stderr, every replica, labelled with replica and revision."""
        if tail < 0:
            fail(f"--tail {tail}: expected 0 or more lines")
        directory = (log_dir or home() / "runtime" / "logs") / agent
        if not directory.is_dir():
            fail(f"no logs for agent {agent!r} in {directory.parent} (has it run on this host?)", code=FAILED)
        files = _log_files(directory, replica)
        if replica is not None and not files:
            known = ", ".join(p.stem for p in _log_files(directory, None)) or "none"
            fail(f"agent {agent!r} has no replica {replica!r} (replicas with logs: {known})", code=FAILED)
        offsets: dict[Path, int] = {}
        records: list[dict[str, Any]] = []
        for path in files:
            lines = path.read_bytes().splitlines()
            records += [r for raw in (lines[len(lines) - tail :] if tail else []) if (r := _record(raw))]
            offsets[path] = path.stat().st_size
        for record in sorted(records, key=lambda r: float(r.get("ts", 0))):  # replicas merged by time
            _print(record)
        while follow:
            time.sleep(0.5)
            for path in _log_files(directory, replica):
                offset = offsets.get(path, 0)
                size = path.stat().st_size
                if size <= offset:
                    continue
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(size - offset)
                complete, _, _ = chunk.rpartition(b"\n")
                for raw in complete.splitlines():
                    if (new := _record(raw)) is not None:
                        _print(new)
                offsets[path] = offset + len(complete) + (1 if complete else 0)


def _log_files(directory: Path, replica: str | None) -> list[Path]:
    files = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)
    return [p for p in files if replica is None or p.stem == replica]


def _record(raw: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # a line being written
    return record if isinstance(record, dict) else None


def _print(record: dict[str, Any]) -> None:
    stamp = time.strftime("%H:%M:%S", time.gmtime(float(record.get("ts", 0))))
    label = f"{record.get('replica', '?')} r{str(record.get('revision', '?')).split('-')[0]}"
    style = "red" if record.get("stream") == "stderr" else None
    console.print(f"{stamp} {label} | {record.get('line', '')}", style=style, markup=False, soft_wrap=True)


def _answer(task: dict[str, Any]) -> str:
    texts = [
        part.get("text") or orjson.dumps(part.get("data")).decode()
        for artifact in task.get("artifacts") or []
        for part in artifact.get("parts") or []
    ]
    if texts:
        return "\n".join(t for t in texts if t)
    message = (task.get("status") or {}).get("message") or {}
    return "\n".join(p.get("text", "") for p in message.get("parts") or []) or orjson.dumps(task).decode()


@agents_app.command("list")
def list_agents(server: ServerURL = DEFAULT_SERVER) -> None:
    """Every agent: its revision, rollout status, replicas ready of wanted, requests in flight."""
    agents = _admin(server, "GET", "/admin/agents")["agents"]
    table = Table(
        Column("agent", no_wrap=True), "revision", "status", "ready", "in flight", "restarts", "message"
    )
    for agent in agents:
        restarts = sum(r["restarts"] for r in agent["replicas"])
        table.add_row(
            agent["name"],
            str(agent["revision"]),
            agent["status"],
            f"{agent['ready']}/{agent['desired']}",
            str(agent["in_flight"]),
            str(restarts),
            agent["message"],
        )
    console.print(table)


@agents_app.command("show")
def show_agent(
    name: Annotated[str, typer.Argument(help="The agent.")],
    server: ServerURL = DEFAULT_SERVER,
) -> None:
    """One agent's replicas: revision, state, restarts, pid, requests in flight, last exit."""
    agent = _admin(server, "GET", f"/admin/agents/{name}")
    console.print(
        f"agent {name}: revision {agent['revision']} {agent['status']}: {agent['message']}",
        markup=False,
        soft_wrap=True,
    )
    table = Table("revision", "state", "restarts", "pid", "in flight", "served", "last exit")
    table.columns.insert(0, Column("replica", no_wrap=True))
    for r in agent["replicas"]:
        last = r["last_exit"]
        exit_text = (
            "-"
            if last is None
            else " ".join(str(v) for v in (last["reason"], last["signal"] or last["code"]) if v)
        )
        state = r["state"] + (" (warm)" if r["warm"] else "")
        table.add_row(
            r["id"],
            str(r["revision"]),
            state,
            str(r["restarts"]),
            str(r["pid"] or "-"),
            str(r["in_flight"]),
            str(r["served"]),
            exit_text,
        )
    console.print(table)


@rollout_app.command("history")
def history(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    target: Target = "local",
    namespace: Namespace = "fleetplane",
    kubeconfig: Kubeconfig = None,
    server: ServerURL = DEFAULT_SERVER,
) -> None:
    """The agent's revisions, oldest first; the last one is what runs."""
    _check_target(target)
    if target == "kubernetes":
        from fleetplane.cli.render import rollout_history_kubernetes_command

        rollout_history_kubernetes_command(agent, namespace=namespace, kubeconfig=kubeconfig)
        return
    rollout = _admin(server, "GET", f"/admin/agents/{agent}/rollout")
    table = Table("revision", "digest", "cause", "applied", "")
    for entry in rollout["history"]:
        current = "current" if entry["revision"] == rollout["revision"] else ""
        table.add_row(
            str(entry["revision"]),
            entry["digest"][:12],
            entry["cause"],
            format_time(entry["updated_at"]),
            current,
        )
    console.print(table)
    if rollout["drift"]:
        console.print(
            f"drift: the applied spec of {agent} is not what runs (undone); apply a new spec to roll forward",
            style="yellow",
            markup=False,
        )


@rollout_app.command("status")
def status(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Wait until the rollout completes or fails.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --watch waits at most.")] = 600.0,
    server: ServerURL = DEFAULT_SERVER,
) -> None:
    """Whether the newest revision runs: complete, progressing (and why), blocked (by its gate), failed."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        rollout = _admin(server, "GET", f"/admin/agents/{agent}/rollout")
        line = f"agent {agent}: revision {rollout['revision']} {rollout['status']}: {rollout['message']}"
        if line != last:
            console.print(line, markup=False, soft_wrap=True)
            last = line
        if rollout["status"] in ("complete", "scaled-to-zero"):
            return
        if rollout["status"] in ("failed", "blocked"):  # blocked: its rollout gate refused the revision
            raise typer.Exit(FAILED)
        if not watch:
            return
        if time.monotonic() > deadline:
            fail(f"agent {agent}: the rollout did not complete in {timeout:g}s", code=FAILED)
        time.sleep(0.5)


@rollout_app.command("undo")
def undo(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    to_revision: Annotated[
        str | None,
        typer.Option("--to-revision", help="Roll back to this revision (default: the previous one)."),
    ] = None,
    target: Target = "local",
    namespace: Namespace = "fleetplane",
    kubeconfig: Kubeconfig = None,
    server: ServerURL = DEFAULT_SERVER,
) -> None:
    """Run the previous revision again (or --to-revision N), through the same rolling update."""
    _check_target(target)
    if target == "kubernetes":
        from fleetplane.cli.render import rollout_undo_kubernetes_command

        rollout_undo_kubernetes_command(
            agent, namespace=namespace, kubeconfig=kubeconfig, to_revision=to_revision
        )
        return
    body: dict[str, Any] = {}
    if to_revision is not None:
        if not to_revision.isdigit() or int(to_revision) < 1:
            fail(f"--to-revision {to_revision!r}: expected a revision number (`fleetplane rollout history`)")
        body["to"] = int(to_revision)
    result = _admin(server, "POST", f"/admin/agents/{agent}/rollout/undo", body)
    console.print(result["message"], markup=False, soft_wrap=True)


@agent_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port [default: $PORT, else 8080].")] = None,
) -> None:
    """Serve a declarative agent (its spec in $FLEETPLANE_AGENT_SPEC): the invoke API and /healthz."""
    import uvicorn

    from fleetplane.runtime.runner.app import build_app
    from fleetplane.runtime.runner.config import RunnerConfigError, from_env

    try:
        config = from_env()
    except RunnerConfigError as exc:
        fail(str(exc))
    uvicorn.run(build_app(config), host=host, port=port or config.port, log_level="warning", access_log=False)
