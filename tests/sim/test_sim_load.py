"""The open-loop load generator: its schedule and percentile arithmetic, the requests it builds, and short
real runs against the simulator process (counts and statuses only; timing goals live in benchmarks/).
"""

from __future__ import annotations

import json
import math

import orjson
import pytest
from typer.testing import CliRunner

from fleetplane.cli.app import _register, app
from fleetplane.sim.load import (
    LoadSpec,
    due,
    endpoint,
    offset,
    percentile,
    plan,
    request_body,
    request_headers,
    run,
    summarize,
)
from fleetplane.sim.process import SimProcess

runner = CliRunner()
_register()


# -- the schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "warmup", "duration", "total", "warm"),
    [
        (200, 5, 30, 7000, 1000),
        (3, 0.5, 1, 5, 2),  # offsets 0, .33, .67, 1.0, 1.33: two fall in the warm-up
        (0.1, 0, 30, 3, 0),  # one every 10 s: 0, 10, 20
        (10, 0.3, 0.7, 10, 3),  # 0.3 * 10 is 3.0000000000000004 in floats: still 3 warm-up requests
        (1000, 0, 0.0001, 1, 0),  # a window shorter than one interval still sends one request
    ],
)
def test_plan_counts_warmup_and_measured_requests(
    rate: float, warmup: float, duration: float, total: int, warm: int
) -> None:
    schedule = plan(rate, warmup, duration)
    assert (schedule.total, schedule.warmup, schedule.measured) == (total, warm, total - warm)


def test_a_warmup_request_is_exactly_one_due_before_the_warmup_ends() -> None:
    for rate, warmup in [(200, 5), (3, 0.5), (7, 1.1), (10, 0.3)]:
        schedule = plan(rate, warmup, 10)
        assert offset(schedule.warmup - 1, rate) < warmup <= offset(schedule.warmup, rate) + 1e-9


@pytest.mark.parametrize("rate", [1, 3, 10, 200, 333.3, 5000])
def test_each_request_becomes_due_exactly_at_its_offset(rate: float) -> None:
    total = plan(rate, 0, 2).total
    for i in range(total):
        assert due(offset(i, rate), rate, total) == i + 1
        assert due(offset(i, rate) - 0.1 / rate, rate, total) == i


def test_due_before_the_start_and_after_the_end() -> None:
    assert due(-0.001, 200, 10) == 0
    assert due(0, 200, 10) == 1
    assert due(3600, 200, 10) == 10


def test_a_late_loop_catches_up_with_every_request_it_missed() -> None:
    # Woken 50 ms late at 200/s, the dispatcher finds ten more requests due at once and sends them all:
    # an open loop never lowers its rate because it, or the server, was slow.
    assert due(0.050, 200, 1000) - due(0.0, 200, 1000) == 10


# -- percentiles -------------------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0, 1, 50, 90, 99, 99.5, 100)] == [1, 1, 50, 90, 99, 100, 100]
    assert percentile([4.0], 50) == percentile([4.0], 99) == 4.0
    # Never an interpolated value: with two observations the median is the lower one.
    assert percentile([1.0, 9.0], 50) == 1.0
    assert percentile([1.0, 9.0], 51) == 9.0
    # 1,000 values: p99 is the 990th, so the ten slowest lie above it.
    thousand = [float(v) for v in range(1000)]
    assert percentile(thousand, 99) == 989.0


def test_percentile_refuses_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_summarize_reports_milliseconds_from_seconds_in_any_order() -> None:
    summary = summarize([0.003, 0.001, 0.002, 0.010])
    assert summary is not None
    assert (summary.count, summary.p50, summary.p90, summary.p99, summary.max) == (4, 2.0, 10.0, 10.0, 10.0)
    assert math.isclose(summary.mean, 4.0)
    assert summarize([]) is None


# -- requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "api", "expected"),
    [
        ("http://h:1", "openai", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1/", "openai", "http://h:1/v1/chat/completions"),
        ("http://h:1/v1/chat/completions", "openai", "http://h:1/v1/chat/completions"),
        ("http://h:1", "anthropic", "http://h:1/v1/messages"),
        ("http://h:1/v1", "anthropic", "http://h:1/v1/messages"),
    ],
)
def test_endpoint(url: str, api: str, expected: str) -> None:
    assert endpoint(url, api) == expected  # type: ignore[arg-type]


def test_bodies_carry_size_directives_model_and_extras() -> None:
    spec = LoadSpec(
        url="http://h",
        model="m",
        stream=True,
        message_chars=50,
        directives=("output_tokens=7", "ttft_ms=0"),
        extra_body={"stream_options": {"include_usage": True}},
    )
    body = orjson.loads(request_body(spec))
    text = body["messages"][0]["content"]
    assert text.endswith(" [[sim output_tokens=7 ttft_ms=0]]")
    assert len(text) == 50 + len(" [[sim output_tokens=7 ttft_ms=0]]")
    assert body["model"] == "m"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "max_tokens" not in body
    assert request_body(spec, 3) != request_body(spec, 4)
    assert orjson.loads(request_body(spec, 3))["messages"][0]["content"].startswith("request 3: ")


def test_anthropic_requests_need_max_tokens_and_send_the_key_as_x_api_key() -> None:
    spec = LoadSpec(url="http://h", api="anthropic", api_key="k")
    assert orjson.loads(request_body(spec))["max_tokens"] == 1024
    assert request_headers(spec) == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "k",
    }
    assert request_headers(LoadSpec(url="http://h", api_key="k"))["authorization"] == "Bearer k"
    assert "authorization" not in request_headers(LoadSpec(url="http://h"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rate": 0}, "rate must be > 0"),
        ({"duration": 0}, "duration must be > 0"),
        ({"warmup": -1}, "warmup >= 0"),
        ({"connections": 0}, "connections must be >= 1"),
        ({"directives": ("output_tokens 5",)}, "key=value"),
    ],
)
def test_bad_specs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadSpec(url="http://h", **changes)  # type: ignore[arg-type]


def test_the_result_never_shows_the_key() -> None:
    # A run against a closed port: every request fails to connect, and the key stays out of the JSON.
    spec = LoadSpec(url="http://127.0.0.1:9/v1", api_key="sk-secret", rate=20, duration=0.2, warmup=0)
    result = run(spec)
    assert result.errors == {"connection": 4}
    assert "sk-secret" not in json.dumps(result.to_json())


# -- real runs against the simulator -----------------------------------------------------------------


def test_a_plain_run_counts_measured_requests_and_not_the_warmup(fresh_sim: SimProcess) -> None:
    spec = LoadSpec(url=fresh_sim.base_url, model="sim-gpt", rate=100, duration=1, warmup=0.3)
    result = run(spec)
    assert (result.requests, result.ok, result.errors) == (100, 100, {})
    assert result.latency_ms is not None and result.latency_ms.count == 100
    assert result.ttfb_ms is None
    # The simulator saw the warm-up too.
    assert fresh_sim.stats()["models"]["sim-gpt"]["requests"] == {"200": 130}


def test_streams_are_read_to_their_end_and_timed_to_the_first_byte(fresh_sim: SimProcess) -> None:
    for api, model in (("openai", "sim-gpt"), ("anthropic", "sim-claude")):
        spec = LoadSpec(
            url=fresh_sim.base_url + "/v1",
            api=api,  # type: ignore[arg-type]
            model=model,
            stream=True,
            directives=("output_tokens=20",),
            rate=50,
            duration=0.4,
            warmup=0,
        )
        result = run(spec)
        assert (result.requests, result.ok, result.errors) == (20, 20, {})
        assert result.ttfb_ms is not None and result.ttfb_ms.count == 20
    streams = fresh_sim.stats()["total"]["streams"]
    assert (streams["started"], streams["completed"]) == (40, 40)


def test_errors_are_counted_by_status_and_cut_streams_as_truncated(fresh_sim: SimProcess) -> None:
    limited = run(
        LoadSpec(
            url=fresh_sim.base_url,
            model="sim-gpt",
            directives=("status=429",),
            rate=50,
            duration=0.2,
            warmup=0,
        )
    )
    assert (limited.requests, limited.ok, limited.errors) == (10, 0, {"429": 10})
    assert limited.latency_ms is None
    cut = run(
        LoadSpec(
            url=fresh_sim.base_url,
            model="sim-gpt",
            stream=True,
            directives=("truncate_after=2",),
            rate=50,
            duration=0.2,
            warmup=0,
        )
    )
    assert (cut.requests, cut.ok, cut.errors) == (10, 0, {"truncated": 10})


def test_the_command_prints_json_and_refuses_bad_input(fresh_sim: SimProcess) -> None:
    args = ["sim", "load", fresh_sim.base_url, "--model", "sim-gpt", "--rate", "40", "--duration", "0.5"]
    result = runner.invoke(app, [*args, "--warmup", "0", "--api-key", "sk-x", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["requests"], data["ok"], data["errors"]) == (20, 20, {})
    assert data["spec"]["api_key"] == "***"
    failed = runner.invoke(app, [*args, "--warmup", "0", "--directive", "status=503"])
    assert failed.exit_code == 1
    assert "errors 503: 20" in failed.stdout
    bad = runner.invoke(app, [*args, "--extra-body", "[1]"])
    assert bad.exit_code == 2
    assert "error: --extra-body must be a JSON object" in bad.output
    bad = runner.invoke(app, [*args, "--directive", "nokey"])
    assert bad.exit_code == 2
    assert "key=value" in bad.output
