"""Token buckets, admission and the providers' rate-limit headers, on a hand-moved clock."""

from __future__ import annotations

import pytest

from fleetplane.sim.config import Limits
from fleetplane.sim.ratelimit import Bucket, Denial, ModelLimiter, go_duration, rfc3339
from fleetplane.state.clock import ManualClock


def headers(pairs: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in pairs}


def test_bucket_refills_continuously_up_to_capacity() -> None:
    clock = ManualClock()
    bucket = Bucket(60, clock)
    bucket.take(60)
    assert bucket.remaining() == 0
    clock.advance(10)
    assert bucket.remaining() == 10
    assert bucket.wait_for(15) == pytest.approx(5.0)
    assert bucket.until_full() == pytest.approx(50.0)
    clock.advance(3600)
    assert bucket.remaining() == 60


def test_admission_is_all_or_nothing() -> None:
    clock = ManualClock()
    limiter = ModelLimiter(Limits(rpm=10, tpm=100), clock)
    assert limiter.admit(50, 30) is None
    denial = limiter.admit(10, 20)
    assert denial == Denial("tokens", 100, 30, pytest.approx(6.0))
    assert denial is not None and denial.retry_after == 6
    # The refused request took nothing: 9 requests and 20 tokens remain.
    assert limiter.requests is not None and limiter.requests.remaining() == 9
    assert limiter.tokens is not None and limiter.tokens.remaining() == 20


def test_requests_limit_refuses_with_retry_after() -> None:
    clock = ManualClock()
    limiter = ModelLimiter(Limits(rpm=2), clock)
    assert limiter.admit(1, 1) is None
    assert limiter.admit(1, 1) is None
    denial = limiter.admit(1, 1)
    assert denial is not None
    assert (denial.limit, denial.capacity, denial.requested, denial.retry_after) == ("requests", 2, 1, 30)
    clock.advance(30)
    assert limiter.admit(1, 1) is None


def test_a_request_larger_than_the_bucket_never_fits() -> None:
    limiter = ModelLimiter(Limits(tpm=100), ManualClock())
    denial = limiter.admit(90, 20)
    assert denial is not None and denial.too_large
    assert (denial.limit, denial.requested, denial.retry_after) == ("tokens", 110, 1)


def test_unlimited_models_never_refuse_and_send_no_headers() -> None:
    limiter = ModelLimiter(Limits(), ManualClock())
    assert all(limiter.admit(10**9, 10**9) is None for _ in range(3))
    assert limiter.openai_headers() == []
    assert limiter.anthropic_headers() == []


def test_openai_headers() -> None:
    clock = ManualClock()
    limiter = ModelLimiter(Limits(rpm=60, tpm=600_000), clock)
    limiter.admit(100, 50)
    assert headers(limiter.openai_headers()) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-limit-tokens": "600000",
        "x-ratelimit-remaining-tokens": "599850",
        "x-ratelimit-reset-tokens": "15ms",
    }
    for _ in range(59):
        limiter.admit(0, 0)
    assert headers(limiter.openai_headers())["x-ratelimit-reset-requests"] == "1m0s"


def test_anthropic_headers() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    limiter = ModelLimiter(Limits(rpm=50, input_tpm=1000, output_tpm=300), clock)
    assert limiter.admit(500, 150) is None
    assert headers(limiter.anthropic_headers()) == {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:22Z",
        # The tightest token limit: both are half used; input comes first.
        "anthropic-ratelimit-tokens-limit": "1000",
        "anthropic-ratelimit-tokens-remaining": "500",
        "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:50Z",
        "anthropic-ratelimit-input-tokens-limit": "1000",
        "anthropic-ratelimit-input-tokens-remaining": "500",
        "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:50Z",
        "anthropic-ratelimit-output-tokens-limit": "300",
        "anthropic-ratelimit-output-tokens-remaining": "150",
        "anthropic-ratelimit-output-tokens-reset": "2023-11-14T22:13:50Z",
    }
    denial = limiter.admit(10, 200)
    assert denial is not None and (denial.limit, denial.retry_after) == ("output_tokens", 10)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9985, "59.999s"),
        (59.9994, "1m0s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (90.25, "1m30.25s"),
        (3723, "1h2m3s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_rfc3339_rounds_up_to_the_second() -> None:
    assert rfc3339(1_700_000_000.2) == "2023-11-14T22:13:21Z"
