"""`fleetplane traces list|show` through typer's CliRunner on a SQLite store holding a few traces: tables,
trees, JSON, filters, exit codes, and a one-line error (exit 2) for every bad filter."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from fleetplane.cli import traces
from fleetplane.store.db import Store
from fleetplane.telemetry.records import SpanRecord, event_record, span_record
from fleetplane.telemetry.spanstore import SpanStore
from fleetplane.telemetry.tracequery import SpanNode

T1, T2, T3 = (f"{n:032x}" for n in (0xA1, 0xB2, 0xC3))
Invoke = Callable[..., Result]


def span(
    trace: str,
    span_id: int,
    start: float,
    *,
    parent: int | None = None,
    name: str,
    status: str = "unset",
    **attrs: Any,
) -> SpanRecord:
    return span_record(
        trace_id=trace,
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent else None,
        name=name,
        kind="internal",
        start_ns=int(start * 1e9),
        end_ns=int(start * 1e9) + 250_000_000,
        status_code=status,
        status_message="upstream said no" if status == "error" else None,
        attributes={k.replace("__", "."): v for k, v in attrs.items()},
        events=[],
        links=[],
        resource={},
        scope_name=None,
        scope_version=None,
    )


def chat(tokens_in: int, tokens_out: int, cost: str, model: str = "gpt-4o") -> dict[str, Any]:
    return {
        "gen_ai__operation__name": "chat",
        "gen_ai__request__model": model,
        "gen_ai__usage__input_tokens": tokens_in,
        "gen_ai__usage__output_tokens": tokens_out,
        "fleetplane__cost__usd": cost,
    }


def seed(url: str) -> None:
    now = time.time()
    records = [
        span(
            T1,
            1,
            now - 600,
            name="invoke_agent triage",
            gen_ai__agent__name="triage",
            fleetplane__team="support",
        ),
        span(T1, 2, now - 599, parent=1, name="chat gpt-4o", **chat(100, 10, "0.004")),
        span(
            T1,
            3,
            now - 598,
            parent=1,
            name="chat gpt-4o",
            status="error",
            error__type="rate_limited",
            **chat(200, 20, "0.008"),
        ),
        span(
            T2,
            1,
            now - 300,
            name="chat claude",
            gen_ai__agent__name="billing",
            **chat(50, 5, "0.0001", model="claude"),
        ),
        span(
            T3,
            1,
            now - 2 * 86400,
            name="invoke_agent triage",
            gen_ai__agent__name="triage",
            **chat(7, 7, "0.5"),
        ),
    ]
    content = event_record(
        trace_id=T1,
        span_id=f"{2:016x}",
        time_ns=records[1].start_ns,
        observed_ns=records[1].start_ns,
        event_name="gen_ai.client.inference.operation.details",
        severity_number=9,
        severity_text="INFO",
        body={
            "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}]
        },
        attributes={},
        resource={},
        scope_name=None,
    )

    async def write() -> None:
        store = await Store.open(url)
        try:
            await SpanStore(store).write(records, [content])
        finally:
            await store.close()

    asyncio.run(write())


@pytest.fixture
def cli(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("COLUMNS", "220")
    seed(sqlite_url)
    app = typer.Typer()
    traces.register(app)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, ["traces", *args, "--database-url", sqlite_url])

    return invoke


def test_list_shows_one_row_per_trace_newest_first(cli: Invoke) -> None:
    result = cli("list")

    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if any(t in line for t in (T1, T2, T3))]
    assert [next(t for t in (T1, T2, T3) if t in row) for row in rows] == [T2, T1, T3]
    t1 = rows[1]
    for cell in ("invoke_agent triage", "2.25 s", "3 (1 failed)", "300", "30", "0.012000"):
        assert cell in t1


def test_list_as_json(cli: Invoke) -> None:
    result = cli("list", "--agent", "triage", "-o", "json")

    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [t["trace_id"] for t in listed] == [T1, T3]
    first = listed[0]
    assert {
        k: first[k]
        for k in (
            "root_name",
            "span_count",
            "error_count",
            "error",
            "input_tokens",
            "output_tokens",
            "cost_usd",
        )
    } == {
        "root_name": "invoke_agent triage",
        "span_count": 3,
        "error_count": 1,
        "error": True,
        "input_tokens": 300,
        "output_tokens": 30,
        "cost_usd": "0.0120000000",
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "1h"], [T2, T1]),
        (["--status", "error"], [T1]),
        (["--status", "ok"], [T2, T3]),
        (["--model", "claude"], [T2]),
        (["--team", "support"], [T1]),
        (["--min-cost", "0.01"], [T1, T3]),
        (["--limit", "1"], [T2]),
        (["--agent", "nobody"], []),
    ],
)
def test_list_filters(cli: Invoke, args: list[str], expected: list[str]) -> None:
    result = cli("list", *args, "-o", "json")

    assert result.exit_code == 0, result.output
    assert [t["trace_id"] for t in json.loads(result.stdout)] == expected


def test_list_with_nothing_to_show(cli: Invoke) -> None:
    result = cli("list", "--agent", "nobody")

    assert (result.exit_code, result.stdout) == (0, "no traces match\n")


def test_show_draws_the_tree_with_rollups_and_events(cli: Invoke) -> None:
    result = cli("show", T1.upper())

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"trace {T1}  300 in / 30 out  $0.012000"
    assert lines[1].startswith("└── invoke_agent triage  250.0 ms  300 in / 30 out  $0.012000  agent triage")
    assert lines[2].startswith("    ├── chat gpt-4o  250.0 ms  100 in / 10 out  $0.004000  gpt-4o")
    assert lines[3].startswith("    │   └── • gen_ai.client.inference.operation.details")
    assert lines[3].endswith(
        ' {"gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", ...'
    )  # a preview
    assert (
        lines[4]
        == "    └── chat gpt-4o  250.0 ms  200 in / 20 out  $0.008000  gpt-4o  ✗ rate_limited: upstream said no"
    )


def test_failed_spans_are_red() -> None:
    failed = span(T1, 3, 0.0, name="chat gpt-4o", status="error", error__type="rate_limited")

    assert traces._span_label(SpanNode(failed)).startswith("[red]chat gpt-4o[/]")
    assert traces._span_label(SpanNode(span(T1, 2, 0.0, name="ok"))).startswith("[bold]ok[/]")


def test_show_as_json_nests_children(cli: Invoke) -> None:
    result = cli("show", T1, "-o", "json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["total"] == {"input_tokens": 300, "output_tokens": 30, "cost_usd": "0.0120000000"}
    (root,) = shown["spans"]
    assert (root["name"], root["rolled_up"]["input_tokens"], len(root["children"])) == (
        "invoke_agent triage",
        300,
        2,
    )
    assert root["children"][0]["log_events"][0]["event_name"] == "gen_ai.client.inference.operation.details"
    assert root["children"][1]["status_code"] == "error"


def test_show_an_unknown_trace_fails(cli: Invoke) -> None:
    result = cli("show", "f" * 32)

    assert result.exit_code == 1
    assert result.stderr == f"error: no trace {'f' * 32} is stored\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--status", "failed"], "error: --status 'failed': expected ok or error"),
        (
            ["list", "--since", "lately"],
            "error: --since 'lately': not a duration; expected e.g. 15m, 1h, 7d or a number of seconds",
        ),
        (["list", "--since", "0s"], "error: --since '0s': expected a duration greater than 0"),
        (["list", "--min-cost", "cheap"], "error: --min-cost 'cheap': not a number of US dollars"),
        (["list", "--min-cost", "-1"], "error: --min-cost '-1': expected 0 or more US dollars"),
        (["list", "--min-cost", "NaN"], "error: --min-cost 'NaN': expected 0 or more US dollars"),
        (["list", "--limit", "0"], "error: --limit 0: expected 1 or more"),
        (["list", "-o", "yaml"], "error: unknown output 'yaml'; expected table or json"),
        (["show", "xyz"], "error: 'xyz' is not a trace id: expected 32 hex digits"),
        (["show", T1, "-o", "table"], "error: unknown output 'table'; expected tree or json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: Invoke, args: list[str], message: str) -> None:
    result = cli(*args)

    assert result.exit_code == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""
