"""Faults opened at run time, directives that fail or break a request, and the stats that record it all."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}


def chat(sim: SimProcess, text: str, model: str = "sim-gpt", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(sim.url("/v1/chat/completions"), json=body)


def message(sim: SimProcess, text: str, model: str = "sim-claude", **extra: Any) -> httpx.Response:
    body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(sim.url("/v1/messages"), json=body, headers=ANTHROPIC_HEADERS)


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    """Wait for an event the simulator records asynchronously (a disconnect it notices)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_health(fresh_sim: SimProcess) -> None:
    health = fresh_sim.admin("GET", "/sim/health")
    assert health["status"] == "ok" and health["seed"] == 7
    assert "sim-gpt" in health["models"]


def test_error_fault_in_each_providers_shape(fresh_sim: SimProcess) -> None:
    fault = fresh_sim.add_fault("error", status=503, retry_after=2)
    assert fault["id"].startswith("flt_") and fault["model"] == "*" and fault["status"] == 503
    response = chat(fresh_sim, "hi")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json() == {
        "error": {
            "message": "The server had an error while processing your request. (sim fault)",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    response = message(fresh_sim, "hi")
    assert response.status_code == 503
    assert response.json()["error"] == {
        "type": "api_error",
        "message": "The server had an error while processing your request. (sim fault)",
    }
    with pytest.raises(openai.InternalServerError) as caught:
        openai.OpenAI(
            base_url=fresh_sim.base_url + "/v1", api_key="k", max_retries=0
        ).chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert fresh_sim.clear_faults(fault["id"]) == 1
    assert chat(fresh_sim, "hi").status_code == 200


def test_fault_for_one_model_with_a_count(fresh_sim: SimProcess) -> None:
    fresh_sim.add_fault("error", model="sim-gpt", status=500, count=2)
    assert chat(fresh_sim, "a", model="sim-claude").status_code == 200
    assert [chat(fresh_sim, "a").status_code for _ in range(3)] == [500, 500, 200]
    assert fresh_sim.admin("GET", "/sim/faults") == {"faults": []}


def test_overloaded_fault(fresh_sim: SimProcess) -> None:
    fresh_sim.add_fault("overloaded", model="sim-claude")
    response = message(fresh_sim, "hi")
    assert response.status_code == 529
    assert response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic.Anthropic(base_url=fresh_sim.base_url, api_key="k", max_retries=0).messages.create(
            model="sim-claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 529
    openai_shape = chat(fresh_sim, "hi", model="sim-claude")
    assert openai_shape.status_code == 503
    assert openai_shape.json()["error"]["type"] == "server_error"


def test_rate_limit_fault_carries_limit_headers(fresh_sim: SimProcess) -> None:
    fresh_sim.add_fault("rate_limit", model="sim-limited")
    response = chat(fresh_sim, "hi", model="sim-limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "2"
    assert response.json()["error"]["type"] == "requests"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(
            base_url=fresh_sim.base_url + "/v1", api_key="k", max_retries=0
        ).chat.completions.create(model="sim-limited", messages=[{"role": "user", "content": "x"}])


def test_status_directive(fresh_sim: SimProcess) -> None:
    response = chat(fresh_sim, "please fail [[sim status=502 retry_after=4]]")
    assert (response.status_code, response.headers["retry-after"]) == (502, "4")
    assert response.json()["error"]["type"] == "server_error"
    limited = chat(fresh_sim, "[[sim status=429]]")
    assert limited.status_code == 429 and "retry-after" not in limited.headers
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    overloaded = message(fresh_sim, "[[sim status=529]]")
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    teapot = message(fresh_sim, "[[sim status=418]]")
    assert teapot.status_code == 418 and teapot.json()["error"]["type"] == "invalid_request_error"


def test_real_rate_limit_over_http(fresh_sim: SimProcess) -> None:
    c = openai.OpenAI(base_url=fresh_sim.base_url + "/v1", api_key="k", max_retries=0)
    first = c.chat.completions.with_raw_response.create(
        model="sim-limited", messages=[{"role": "user", "content": "x"}]
    )
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    c.chat.completions.create(model="sim-limited", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as caught:
        c.chat.completions.create(model="sim-limited", messages=[{"role": "user", "content": "x"}])
    error = caught.value
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(error.response.headers["retry-after"]) <= 30
    assert error.body["type"] == "requests"  # type: ignore[index]
    assert error.body["message"].startswith(  # type: ignore[index]
        "Rate limit reached for sim-limited in organization org-sim on requests per min (RPM): Limit 2, "
        "Requested 1."
    )


def test_bad_fault_specs_are_400(fresh_sim: SimProcess) -> None:
    response = httpx.post(fresh_sim.url("/sim/faults"), json={"mode": "melt"})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "mode: expected one of error, rate_limit, overloaded, hang, truncate, slow, got 'melt'"
        }
    }
    assert httpx.delete(fresh_sim.url("/sim/faults/flt_999")).status_code == 404
    assert httpx.post(fresh_sim.url("/sim/faults"), content=b"{").status_code == 400


def test_stats_count_requests_tokens_and_streams(fresh_sim: SimProcess) -> None:
    ok = chat(fresh_sim, "count [[sim output_tokens=7]]").json()
    chat(fresh_sim, "[[sim status=500]]")
    chat(fresh_sim, "x", model="nope")
    with httpx.stream(
        "POST",
        fresh_sim.url("/v1/chat/completions"),
        json={
            "model": "sim-gpt",
            "stream": True,
            "messages": [{"role": "user", "content": "[[sim output_tokens=5]]"}],
        },
    ) as response:
        response.read()
    stats = fresh_sim.stats()
    gpt = stats["models"]["sim-gpt"]
    assert gpt["requests"] == {"200": 2, "500": 1}
    assert gpt["tokens_out"] == 7 + 5
    streamed_prompt = count_openai_chat(
        {"messages": [{"role": "user", "content": "[[sim output_tokens=5]]"}]}
    )
    assert gpt["tokens_in"] == ok["usage"]["prompt_tokens"] + streamed_prompt
    assert gpt["streams"] == {
        "started": 1,
        "completed": 1,
        "cancelled": 0,
        "truncated": 0,
        "hung": 0,
        "open": 0,
    }
    assert stats["models"]["(unrouted)"]["requests"] == {"404": 1}
    assert stats["total"]["requests_total"] == 4
    fresh_sim.reset_stats()
    assert fresh_sim.stats() == {"models": {}, "total": fresh_sim.stats()["total"]}
    assert fresh_sim.stats()["total"]["requests_total"] == 0


def open_stream(sim: SimProcess, text: str, events: int) -> list[str]:
    """Read `events` server-sent events of a chat stream, then hang up."""
    body = {"model": "sim-gpt", "stream": True, "messages": [{"role": "user", "content": text}]}
    seen: list[str] = []
    with httpx.stream("POST", sim.url("/v1/chat/completions"), json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
            if len(seen) == events:
                break
    return seen


def test_client_leaving_a_slow_stream_is_counted_as_cancelled(fresh_sim: SimProcess) -> None:
    seen = open_stream(fresh_sim, "[[sim output_tokens=2000 tps=50]]", events=3)
    assert len(seen) == 3
    wait_for(lambda: fresh_sim.stats()["models"]["sim-gpt"]["streams"]["cancelled"] == 1, "the cancellation")
    streams = fresh_sim.stats()["models"]["sim-gpt"]["streams"]
    assert streams == {"started": 1, "completed": 0, "cancelled": 1, "truncated": 0, "hung": 0, "open": 0}


def test_hung_stream_keeps_the_connection_until_the_client_leaves(fresh_sim: SimProcess) -> None:
    body = {
        "model": "sim-gpt",
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim hang_after=2]]"}],
    }
    seen: list[str] = []
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST", fresh_sim.url("/v1/chat/completions"), json=body, timeout=httpx.Timeout(10, read=0.5)
        ) as response,
    ):
        for line in response.iter_lines():
            if line:
                seen.append(line)
    assert len(seen) == 3  # the role chunk and two content chunks, then silence
    wait_for(lambda: fresh_sim.stats()["models"]["sim-gpt"]["streams"]["cancelled"] == 1, "the cancellation")
    assert fresh_sim.stats()["models"]["sim-gpt"]["streams"]["hung"] == 1


def test_hang_fault_on_a_plain_request(fresh_sim: SimProcess) -> None:
    fresh_sim.add_fault("hang", model="sim-gpt")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            fresh_sim.url("/v1/chat/completions"),
            timeout=httpx.Timeout(10, read=0.3),
            json={"model": "sim-gpt", "messages": [{"role": "user", "content": "x"}]},
        )
    wait_for(
        lambda: fresh_sim.stats()["models"]["sim-gpt"]["requests"].get("499") == 1, "the abandoned request"
    )


def test_truncated_stream_drops_the_connection(fresh_sim: SimProcess) -> None:
    body = {
        "model": "sim-gpt",
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim truncate_after=2]]"}],
    }
    seen: list[str] = []
    url = fresh_sim.url("/v1/chat/completions")
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("POST", url, json=body) as response:
        for line in response.iter_lines():
            if line:
                seen.append(line)
    assert len(seen) == 3 and "data: [DONE]" not in seen
    streams = fresh_sim.stats()["models"]["sim-gpt"]["streams"]
    assert (streams["truncated"], streams["completed"]) == (1, 0)


def test_truncate_fault_on_anthropic_stream_and_plain_request(fresh_sim: SimProcess) -> None:
    fresh_sim.add_fault("truncate", model="sim-claude", after_chunks=1)
    c = anthropic.Anthropic(base_url=fresh_sim.base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        c.messages.create(model="sim-claude", max_tokens=50, messages=[{"role": "user", "content": "x"}])
    events: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST",
            fresh_sim.url("/v1/messages"),
            headers=ANTHROPIC_HEADERS,
            json={
                "model": "sim-claude",
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line)
    assert events == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        "event: content_block_delta",
    ]


def test_slow_fault_still_answers(fresh_sim: SimProcess) -> None:
    fault = fresh_sim.add_fault("slow", latency_ms=20, duration=60)
    assert fault["latency_ms"] == 20 and 0 < fault["expires_in_s"] <= 60
    assert chat(fresh_sim, "x").status_code == 200
    assert fresh_sim.admin("GET", "/sim/faults")["faults"][0]["applied"] == 1


def test_outage_from_the_config() -> None:
    config = {
        "instant": True,
        "models": {"m": {}, "n": {}},
        "outages": [{"model": "m", "start_s": 0, "duration_s": 3600, "status": 503, "retry_after": 9}],
    }
    with SimProcess(config) as sim:
        down = chat(sim, "x", model="m")
        assert (down.status_code, down.headers["retry-after"]) == (503, "9")
        assert chat(sim, "x", model="n").status_code == 200
