"""Quotas that change by time of day: which limits are in force at a moment (Europe/Berlin rules across
their boundaries, a rule wrapping past midnight, both DST changes), and the gateway's admission reading
the schedule on an injected clock — the same request admitted after office hours and denied during them,
a weekend `tpm: 0` denying everything, and a dollar budget per calendar day turning over at local midnight.

`clocked_gateway` is a gateway on a real server (uvicorn in this test's own event loop, so the test moves
its `ManualClock` without threads) with the simulator process as its upstream; test_quota_wait.py uses it
too.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from harness import write_fleet

from fleetplane.gateway.app import GatewayRuntime, GatewaySettings
from fleetplane.gateway.quota.schedule import limits_in_force
from fleetplane.manifests.limits import QuotaLimits, Schedule
from fleetplane.manifests.loader import load
from fleetplane.server import build_app
from fleetplane.sim.process import SimProcess
from fleetplane.state.clock import ManualClock
from fleetplane.store.db import Store
from fleetplane.store.desired import apply_desired
from fleetplane.telemetry.tokens import count_openai_chat

BERLIN = ZoneInfo("Europe/Berlin")
ASK = [{"role": "user", "content": "office [[sim output_tokens=5]]"}]
INPUT = count_openai_chat({"messages": ASK})


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """UNIX seconds of a Berlin wall-clock time (not for the hours a DST change skips or repeats)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


# -- the in-process gateway on a ManualClock ------------------------------------------------------------


@dataclass
class ClockedGateway:
    url: str
    keys: dict[str, str]
    clock: ManualClock
    runtime: GatewayRuntime
    client: httpx.AsyncClient

    async def chat(
        self, key: str = "full", *, model: str = "solo", max_tokens: int = 10, **body: Any
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": ASK, "max_tokens": max_tokens, **body},
            headers={"authorization": f"Bearer {self.keys[key]}"},
        )

    async def quotas(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = (await self.client.get("/admin/quotas")).json()["quotas"]
        return {(r["rule"], r["subject"]): r for r in rows}

    async def advance(self, seconds: float) -> None:
        """Move both clocks; sleepers due (waiting requests, sweeps) run before this returns."""
        self.clock.advance(seconds)
        for _ in range(5):
            await asyncio.sleep(0)


@asynccontextmanager
async def clocked_gateway(
    tmp_path: Path, sim_url: str, extra: str, *, start: float, **fleet_values: str
) -> AsyncIterator[ClockedGateway]:
    fleet = write_fleet(tmp_path / "fleet", extra, **fleet_values)
    store = await Store.open(f"sqlite:///{tmp_path / 'clocked.db'}")
    try:
        applied = await apply_desired(store, load(fleet), now=time.time())
        clock = ManualClock(start)
        settings = GatewaySettings(sim_urls={"sim": sim_url, "sim-anthropic": sim_url})
        runtime = GatewayRuntime(store, settings, clock=clock)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(runtime), log_level="warning", access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield ClockedGateway(url, {m.key: m.secret for m in applied.minted}, clock, runtime, client)
        finally:
            server.should_exit = True
            await serving
    finally:
        await store.close()


def quota_doc(name: str, spec: str) -> str:
    return f"apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\nmetadata: {{name: {name}}}\nspec:\n{spec}---\n"


# -- which limits are in force ---------------------------------------------------------------------------

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
BASE = QuotaLimits(tpm=1000, rpm=10)


def schedule(*rules: dict[str, Any], zone: str = "Europe/Berlin") -> Schedule:
    return Schedule.model_validate({"timeZone": zone, "rules": list(rules)})


OFFICE = schedule(
    {"days": WEEKDAYS, "from": "09:00", "to": "18:00", "limits": {"tpm": 20}},
    {"days": ["sat", "sun"], "limits": {"tpm": 0}},
)


def in_force(sched: Schedule, wall: float) -> tuple[int | None, int | None]:
    """(the schedule rule in force, or None for the base limits; the tpm in force)."""
    limits, index = limits_in_force(BASE, sched, wall)
    return index, limits.tpm


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (berlin(2025, 6, 11, 8, 59, 59), (None, 1000)),  # a Wednesday, just before the office opens
        (berlin(2025, 6, 11, 9, 0, 0), (0, 20)),
        (berlin(2025, 6, 11, 17, 59, 59), (0, 20)),
        (berlin(2025, 6, 11, 18, 0, 0), (None, 1000)),  # `to` is exclusive
        (berlin(2025, 6, 13, 23, 59, 59), (None, 1000)),  # Friday night
        (berlin(2025, 6, 14, 0, 0, 0), (1, 0)),  # Saturday
        (berlin(2025, 6, 15, 23, 59, 59), (1, 0)),  # Sunday night
        (berlin(2025, 6, 16, 0, 0, 0), (None, 1000)),  # Monday
        (berlin(2025, 6, 16, 9, 0, 0), (0, 20)),
    ],
)
def test_office_hours_and_weekends_in_berlin(moment: float, expected: tuple[int | None, int]) -> None:
    assert in_force(OFFICE, moment) == expected


def test_a_rule_replaces_only_the_limits_it_names_and_the_first_match_wins() -> None:
    overlapping = schedule(
        {"from": "09:00", "to": "18:00", "limits": {"tpm": 20}},
        {"from": "00:00", "to": "24:00", "limits": {"tpm": 5, "rpm": 1}},
    )
    limits, index = limits_in_force(BASE, overlapping, berlin(2025, 6, 11, 12))
    assert (index, limits.tpm, limits.rpm) == (0, 20, 10)
    limits, index = limits_in_force(BASE, overlapping, berlin(2025, 6, 11, 20))
    assert (index, limits.tpm, limits.rpm) == (1, 5, 1)
    assert limits_in_force(BASE, None, berlin(2025, 6, 11, 12)) == (BASE, None)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (berlin(2025, 6, 13, 21, 59, 59), None),  # Friday, before the night rule starts
        (berlin(2025, 6, 13, 22, 0, 0), 0),
        (berlin(2025, 6, 14, 0, 0, 0), 0),  # past midnight: Saturday, but Friday's night
        (berlin(2025, 6, 14, 5, 59, 59), 0),
        (berlin(2025, 6, 14, 6, 0, 0), None),
        (berlin(2025, 6, 14, 22, 0, 0), None),  # Saturday night is not a Friday night
        (berlin(2025, 6, 12, 23, 0, 0), None),  # nor is Thursday's
        (berlin(2025, 6, 13, 3, 0, 0), None),  # Friday 03:00 belongs to Thursday night
    ],
)
def test_a_rule_wrapping_past_midnight_covers_the_next_morning(moment: float, expected: int | None) -> None:
    night = schedule({"days": ["fri"], "from": "22:00", "to": "06:00", "limits": {"tpm": 50}})
    assert in_force(night, moment)[0] == expected


def _minutes_in_force(sched: Schedule, start: float, hours: int) -> int:
    return sum(in_force(sched, start + 60 * i)[0] is not None for i in range(hours * 60))


def test_the_spring_dst_change_skips_an_hour_and_rules_follow_local_time() -> None:
    # 2025-03-30, the last Sunday of March: 02:00 CET (01:00 UTC) becomes 03:00 CEST.
    assert in_force(OFFICE, utc(2025, 3, 30, 6, 59, 59))[0] == 1  # Sunday: the weekend rule
    weekday = schedule({"from": "09:00", "to": "18:00", "limits": {"tpm": 20}})
    # The office opens at 09:00 local: 08:00 UTC the Sunday before, 07:00 UTC on the day itself.
    assert in_force(weekday, utc(2025, 3, 23, 7, 59, 59))[0] is None
    assert in_force(weekday, utc(2025, 3, 23, 8, 0, 0))[0] == 0
    assert in_force(weekday, utc(2025, 3, 30, 6, 59, 59))[0] is None
    assert in_force(weekday, utc(2025, 3, 30, 7, 0, 0))[0] == 0
    # A rule for the skipped hour is never in force that night.
    skipped = schedule({"days": ["sun"], "from": "02:00", "to": "03:00", "limits": {"tpm": 1}})
    assert _minutes_in_force(skipped, utc(2025, 3, 29, 23), 4) == 0
    # A night rule (Saturday 22:00 to 06:00) lasts 7 real hours across the change instead of 8.
    night = schedule({"days": ["sat"], "from": "22:00", "to": "06:00", "limits": {"tpm": 1}})
    assert _minutes_in_force(night, utc(2025, 3, 29, 18), 14) == 7 * 60
    assert _minutes_in_force(night, utc(2025, 3, 22, 18), 14) == 8 * 60


def test_the_autumn_dst_change_repeats_an_hour_and_rules_cover_it_twice() -> None:
    # 2025-10-26, the last Sunday of October: 03:00 CEST (01:00 UTC) goes back to 02:00 CET.
    repeated = schedule({"days": ["sun"], "from": "02:00", "to": "03:00", "limits": {"tpm": 1}})
    assert in_force(repeated, utc(2025, 10, 25, 23, 59, 59))[0] is None  # 01:59:59 CEST
    assert in_force(repeated, utc(2025, 10, 26, 0, 0, 0))[0] == 0  # 02:00 CEST
    assert in_force(repeated, utc(2025, 10, 26, 1, 0, 0))[0] == 0  # 02:00 CET, the second time
    assert in_force(repeated, utc(2025, 10, 26, 1, 59, 59))[0] == 0
    assert in_force(repeated, utc(2025, 10, 26, 2, 0, 0))[0] is None  # 03:00 CET
    assert _minutes_in_force(repeated, utc(2025, 10, 25, 22), 6) == 2 * 60
    night = schedule({"days": ["sat"], "from": "22:00", "to": "06:00", "limits": {"tpm": 1}})
    assert _minutes_in_force(night, utc(2025, 10, 25, 18), 14) == 9 * 60
    weekday = schedule({"from": "09:00", "to": "18:00", "limits": {"tpm": 20}})
    assert in_force(weekday, utc(2025, 10, 26, 7, 59, 59))[0] is None  # 08:59:59 CET
    assert in_force(weekday, utc(2025, 10, 26, 8, 0, 0))[0] == 0


# -- the gateway's admission on an injected clock -------------------------------------------------------

OFFICE_QUOTA = quota_doc(
    "office",
    """  target: {team: support}
  limits: {tpm: 1000}
  schedule:
    timeZone: Europe/Berlin
    rules:
      - {days: [mon, tue, wed, thu, fri], from: "09:00", to: "18:00", limits: {tpm: 20}}
      - {days: [sat, sun], limits: {tpm: 0}}
""",
)


@pytest.mark.anyio
async def test_the_gateway_admits_by_the_schedule_in_force(tmp_path: Path, sim: SimProcess) -> None:
    assert INPUT + 10 > 20  # one request does not fit office hours' tpm
    async with clocked_gateway(tmp_path, sim.base_url, OFFICE_QUOTA, start=berlin(2025, 6, 11, 10)) as gw:
        denied = await gw.chat()  # a Wednesday at 10:00
        assert denied.status_code == 429
        assert denied.headers["x-fleetplane-quota-scope"] == "Quota/office (team=support)"
        assert denied.headers["x-ratelimit-limit-tokens"] == "20"
        assert denied.json()["error"]["message"] == (
            f"Quota exceeded for Quota/office (team=support): the tpm limit is 20; 0 used and 0 reserved "
            f"in its window, this request needs {INPUT + 10}. This request alone is larger than the limit."
        )
        rows = await gw.quotas()
        assert rows[("Quota/office", "team=support")]["schedule"] == "schedule rule 1"

        gw.clock.set(berlin(2025, 6, 11, 18, 1))  # the same request after office hours
        admitted = await gw.chat()
        assert admitted.status_code == 200
        assert admitted.headers["x-ratelimit-limit-tokens"] == "1000"
        rows = await gw.quotas()
        assert rows[("Quota/office", "team=support")]["schedule"] == "base limits"
        assert rows[("Quota/office", "team=support")]["limits"][0]["used"] == INPUT + 5

        gw.clock.set(berlin(2025, 6, 12, 8, 59))  # Thursday, a minute before opening
        assert (await gw.chat()).status_code == 200
        gw.clock.set(berlin(2025, 6, 12, 9, 0))
        assert (await gw.chat()).status_code == 429

        gw.clock.set(berlin(2025, 6, 14, 3, 0))  # Saturday night: tpm 0 denies everything
        for max_tokens in (10, 1):
            weekend = await gw.chat(max_tokens=max_tokens)
            assert weekend.status_code == 429
            assert weekend.headers["x-ratelimit-limit-tokens"] == "0"
        rows = await gw.quotas()
        assert rows[("Quota/office", "team=support")]["schedule"] == "schedule rule 2"
        gw.clock.set(berlin(2025, 6, 16, 0, 0))  # Monday, midnight
        assert (await gw.chat()).status_code == 200
    served = sim.stats()["models"]["sim-small"]["requests_total"]
    assert served == 3  # the denied requests never reached the upstream


def _dollars(input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * 1.0 + output_tokens * 2.0) / 1e6  # solo: $1 / $2 per million


@pytest.mark.anyio
async def test_a_dollar_budget_per_day_turns_over_at_local_midnight(tmp_path: Path, sim: SimProcess) -> None:
    spent = _dollars(INPUT, 5)  # one request as settled
    reserved = _dollars(INPUT, 10)  # one request as reserved (strict: max_tokens)
    budget = spent + reserved + spent / 2  # two fit (the second on its reservation); a third does not
    daily = quota_doc(
        "daily",
        f"  target: {{team: support}}\n  limits: {{usdPerDay: {budget!r}}}\n  timeZone: Europe/Berlin\n",
    )
    async with clocked_gateway(tmp_path, sim.base_url, daily, start=berlin(2025, 6, 11, 23, 50)) as gw:
        assert [(await gw.chat()).status_code for _ in range(2)] == [200, 200]
        refused = await gw.chat()
        assert refused.status_code == 429
        assert refused.headers["x-fleetplane-quota-limit"] == "usd-per-day"
        assert refused.headers["retry-after"] == "600"  # midnight in Berlin, not in UTC
        assert refused.json()["error"]["message"].endswith("Retry in 600s.")
        row = (await gw.quotas())[("Quota/daily", "team=support")]["limits"][0]
        assert row["used"] == pytest.approx(2 * spent) and row["resetAfter"] == 600

        gw.clock.set(berlin(2025, 6, 11, 23, 59, 59))
        assert (await gw.chat()).status_code == 429
        gw.clock.set(berlin(2025, 6, 12, 0, 0, 0))  # a new day
        assert (await gw.chat()).status_code == 200
        row = (await gw.quotas())[("Quota/daily", "team=support")]["limits"][0]
        assert row["used"] == pytest.approx(spent) and row["resetAfter"] == 24 * 3600

        # The day the clocks go back is 25 hours long; it starts at midnight all the same.
        gw.clock.set(berlin(2025, 10, 26, 0, 0, 0))
        assert (await gw.chat()).status_code == 200
        row = (await gw.quotas())[("Quota/daily", "team=support")]["limits"][0]
        assert row["used"] == pytest.approx(spent) and row["resetAfter"] == 25 * 3600
