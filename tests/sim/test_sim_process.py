"""`SimProcess`: start, health, start-up errors, stop without zombies, no orphan when the parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from fleetplane.sim.process import SimProcess, SimStartError


def gone(pid: int) -> bool:
    """True once `pid` is neither running nor a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_start_serve_and_stop_leaves_no_process() -> None:
    sim = SimProcess({"instant": True, "models": {"m": {}}}, seed=3)
    with pytest.raises(RuntimeError):
        _ = sim.port
    sim.start()
    pid = sim.pid
    assert pid is not None and sim.running
    assert sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert httpx.get(sim.url("sim/health")).json()["seed"] == 3
    assert sim.stop() == 0
    assert not sim.running
    assert Path(f"/proc/{pid}").exists() is False
    assert sim.stop() is None


def test_seed_and_model_flags_reach_the_child() -> None:
    with SimProcess(None, seed=99, models=["gpt-4o-sim"], instant=True) as sim:
        health = sim.admin("GET", "/sim/health")
        assert health["seed"] == 99
        assert "gpt-4o-sim" in health["models"] and "sim-large" in health["models"]
        reply = openai.OpenAI(base_url=sim.base_url, api_key="k", max_retries=0).chat.completions.create(
            model="gpt-4o-sim", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content


def test_config_file_path(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("instant: true\nmodels:\n  only-one: {}\n")
    with SimProcess(path) as sim:
        assert sim.admin("GET", "/sim/health")["models"] == ["only-one"]


def test_bad_config_is_a_clear_start_error() -> None:
    with pytest.raises(SimStartError) as caught:
        SimProcess({"models": {"m": {"tps": {"mean": "fast"}}}}).start()
    message = str(caught.value)
    assert "exited with status 2 before it was ready" in message
    assert "models.m.tps.mean: Input should be a valid number" in message
    assert "Traceback" not in message


@pytest.mark.anyio
async def test_async_context_manager() -> None:
    async with SimProcess({"instant": True, "models": {"m": {}}}) as sim:
        async with httpx.AsyncClient() as client:
            assert (await client.get(sim.url("/sim/health"))).status_code == 200
        pid = sim.pid
    assert pid is not None and gone(pid)


def test_child_exits_when_the_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from fleetplane.sim.process import SimProcess
        sim = SimProcess({"instant": True, "models": {"m": {}}}).start()
        print(sim.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not gone(child)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    wait_until(lambda: gone(child), "the orphaned simulator to exit")
