"""Pure pieces: probe thresholds, CrashLoopBackOff timings, log records with labels and redaction."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from fleetplane.runtime.logs import LogWriter, read_records
from fleetplane.runtime.probes import ProbeCounter
from fleetplane.runtime.replica import Backoff, HttpCheck, ProbeSpec
from fleetplane.state.clock import ManualClock


def test_probe_counter_needs_consecutive_results() -> None:
    counter = ProbeCounter(ProbeSpec(HttpCheck(), failure_threshold=3, success_threshold=2))
    assert [counter.record(ok) for ok in (False, False, True, False, False, False)] == [
        None, None, None, None, None, "fail"
    ]  # fmt: skip
    assert [counter.record(ok) for ok in (True, True, True)] == [None, "pass", "pass"]


def test_crash_loop_back_off_defaults_match_kubernetes() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.reset_after == 600
    assert backoff.delay(10_000) == 300


def test_log_records_carry_labels_split_long_lines_and_redact_secrets(tmp_path: Path) -> None:
    clock = ManualClock(start=1000.0)
    path = tmp_path / "a" / "r.jsonl"
    labels = {"agent": "a", "replica": "a-0", "revision": "abc"}
    writer = LogWriter(path, labels, secrets={"key": b"hunter22", "pin": b"12"}, clock=clock)

    async def feed() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"hello\nmy key is hunter22 and pin 12\n" + b"x" * (70 * 1024) + b"\ntail")
        reader.feed_eof()
        await writer.pump("stderr", reader)

    asyncio.run(feed())
    writer.close()
    records = list(read_records(path))
    assert records[0] == {"ts": 1000.0, "stream": "stderr", "line": "hello", **labels}
    assert records[1]["line"] == "my key is [secret:key] and pin 12"  # too short to redact safely
    assert [len(str(r["line"])) for r in records[2:4]] == [64 * 1024, 6 * 1024]
    assert records[-1]["line"] == "tail"
    with path.open("a") as f:
        f.write('{"torn": ')
    assert len(list(read_records(path))) == 5


@pytest.mark.parametrize("missing", ["nowhere.jsonl"])
def test_reading_a_missing_log_yields_nothing(tmp_path: Path, missing: str) -> None:
    assert list(read_records(tmp_path / missing)) == []


@pytest.mark.usefixtures("cgroups_ok")  # root: mknod
def test_gpu_nodes_are_bound_only_when_allocated_and_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetplane.runtime import gpu
    from fleetplane.runtime.sandbox import bwrap

    dev = tmp_path / "dev"  # a 2-GPU host: real character devices, no driver behind them
    dev.mkdir()
    for name, minor in {"nvidia0": 0, "nvidia1": 1, "nvidiactl": 255}.items():
        os.mknod(dev / name, 0o600 | stat.S_IFCHR, os.makedev(195, minor))
    (dev / "nvidia-uvm").write_text("not a device")  # only character devices are bound
    monkeypatch.setenv(gpu.DEV_DIR_ENV, str(dev))
    assert bwrap.gpu_binds(()) == []
    assert bwrap.gpu_binds(("1",)) == [
        "--dev-bind", f"{dev}/nvidia1", "/dev/nvidia1",
        "--dev-bind", f"{dev}/nvidiactl", "/dev/nvidiactl",
    ]  # fmt: skip
    # a MIG instance is reached through its physical GPU's node; two instances on it bind it once
    assert bwrap.gpu_binds(("MIG-0/1g.5gb/0", "MIG-0/1g.5gb/1")) == [
        "--dev-bind", f"{dev}/nvidia0", "/dev/nvidia0",
        "--dev-bind", f"{dev}/nvidiactl", "/dev/nvidiactl",
    ]  # fmt: skip
    assert bwrap.gpu_binds(("7",)) == ["--dev-bind", f"{dev}/nvidiactl", "/dev/nvidiactl"]  # not on this host


def test_a_log_file_is_rotated_once_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "r.jsonl"
    writer = LogWriter(path, {"agent": "a"}, clock=ManualClock(start=0.0), max_bytes=200)
    for n in range(12):
        writer.write("stdout", f"line {n}")
    writer.close()
    current = [r["line"] for r in read_records(path)]
    previous = [r["line"] for r in read_records(path.with_name("r.jsonl.1"))]
    kept = previous + current  # the newest lines, in order; older ones went with the earlier rotation
    assert kept == [f"line {n}" for n in range(12 - len(kept), 12)]
    assert len(previous) > 0 and len(kept) < 12
    assert path.stat().st_size <= 200 and path.with_name("r.jsonl.1").stat().st_size <= 200
    assert not path.with_name("r.jsonl.2").exists()
