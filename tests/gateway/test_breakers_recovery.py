"""Every breaker trigger's way back, through the gateway: open → half-open (after `openFor`) → a probe →
closed after `closeAfter` good probes; and a probe that shows the condition again re-opens the breaker
for twice as long. Cost velocity, context size, context growth, repeats and a deployment's error rate.
(tests/gateway/test_breakers.py trips each trigger and closes the repeats breaker.)

On a `ManualClock` (test_quota_schedule.clocked_gateway): an opening ends when the test moves the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from test_quota_schedule import ClockedGateway, clocked_gateway

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat

pytestmark = pytest.mark.anyio

START = 1_700_000_000.0


def breaker(name: str, spec: str) -> str:
    return (
        f"apiVersion: fleetplane.dev/v1alpha1\nkind: Breaker\nmetadata: {{name: {name}}}\nspec:\n{spec}---\n"
    )


async def ask(gw: ClockedGateway, text: str, *, model: str = "solo", **body: Any) -> httpx.Response:
    messages = body.pop("messages", [{"role": "user", "content": text}])
    return await gw.client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": messages, **body},
        headers={"authorization": f"Bearer {gw.keys['full']}"},
    )


async def state(gw: ClockedGateway, key: str) -> dict[str, Any]:
    rows = (await gw.client.get("/admin/breakers")).json()["breakers"]
    return {row["key"]: row for row in rows}[key]


def _cost(text: str, output_tokens: int) -> float:
    prompt = count_openai_chat({"messages": [{"role": "user", "content": text}]})
    return (prompt * 1.0 + output_tokens * 2.0) / 1e6  # solo: $1 / $2 per million


async def test_cost_velocity_half_opens_closes_after_good_probes_and_reopens_on_a_costly_one(
    tmp_path: Path, sim: SimProcess
) -> None:
    cheap = "cheap [[sim output_tokens=10]]"
    threshold = 2.5 * _cost(cheap, 10)  # the third cheap request in a minute passes it
    spec = (
        f"  target: {{agent: bot}}\n  costVelocity: {{usdPerMinute: {threshold!r}}}\n"
        "  openFor: 10s\n  maxOpenFor: 1m\n  halfOpen: {probes: 1, closeAfter: 2}\n"
    )
    key = "Breaker/spend/agent:bot"
    async with clocked_gateway(tmp_path, sim.base_url, breaker("spend", spec), start=START) as gw:
        # The cost of a request is known when it ends: the third is served, and trips the breaker.
        assert [(await ask(gw, cheap)).status_code for _ in range(3)] == [200, 200, 200]
        refused = await ask(gw, cheap)
        assert refused.status_code == 429
        assert refused.headers["x-fleetplane-breaker-trigger"] == "cost-velocity"
        assert (await state(gw, key))["status"] == "open"

        await gw.advance(10)
        assert (await state(gw, key))["status"] == "half_open"
        assert (await ask(gw, cheap)).status_code == 200  # probe 1: good, not enough to close
        assert (await state(gw, key))["status"] == "half_open"
        assert (await ask(gw, cheap)).status_code == 200  # probe 2: good → closed, windows start over
        assert (await state(gw, key))["status"] == "closed"
        assert [(await ask(gw, cheap)).status_code for _ in range(3)] == [200, 200, 200]

        # Tripped again within maxOpenFor of closing: the loop came back, so it opens for 20 s.
        tripped = await state(gw, key)
        assert (tripped["status"], tripped["retry_after"], tripped["trips"]) == ("open", 20, 2)
        await gw.advance(20)
        costly = "costly [[sim output_tokens=200]]"
        assert _cost(costly, 200) > threshold
        assert (await ask(gw, costly)).status_code == 200  # served; its cost fails the probe
        failed = await state(gw, key)
        assert (failed["status"], failed["retry_after"]) == ("open", 40)
        assert failed["reason"].startswith("cost velocity $")  # the probe's own trip


CONTEXT = breaker(
    "context",
    "  target: {agent: '*'}\n  contextGrowth: {maxInputTokens: 200, maxGrowthPerTurn: 60}\n"
    "  openFor: 10s\n  maxOpenFor: 1m\n  halfOpen: {probes: 1, closeAfter: 1}\n",
)


async def test_context_size_half_opens_and_a_small_request_closes_it(tmp_path: Path, sim: SimProcess) -> None:
    key = "Breaker/context/agent:bot"
    async with clocked_gateway(tmp_path, sim.base_url, CONTEXT, start=START) as gw:
        big = await ask(gw, "word " * 400)
        assert (big.status_code, big.headers["x-fleetplane-breaker-trigger"]) == (429, "context-size")
        assert (await ask(gw, "small")).status_code == 429  # open for the agent, whatever it asks
        await gw.advance(10)
        # A probe that is itself too big fails at once, and the breaker opens for twice as long.
        assert (await ask(gw, "word " * 400)).status_code == 429
        failed = await state(gw, key)
        assert (failed["status"], failed["retry_after"]) == ("open", 20)
        assert failed["reason"].startswith("context size: ") and failed["reason"].endswith(" tokens > 200")
        await gw.advance(20)
        assert (await ask(gw, "small [[sim output_tokens=3]]")).status_code == 200
        assert (await state(gw, key))["status"] == "closed"


async def test_context_growth_half_opens_and_a_modest_turn_closes_it(tmp_path: Path, sim: SimProcess) -> None:
    key = "Breaker/context/agent:bot"
    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]
    async with clocked_gateway(tmp_path, sim.base_url, CONTEXT, start=START) as gw:
        assert (await ask(gw, "", messages=history)).status_code == 200
        history += [{"role": "assistant", "content": "yes " * 40}, {"role": "user", "content": "more " * 40}]
        grown = await ask(gw, "", messages=history)
        assert (grown.status_code, grown.headers["x-fleetplane-breaker-trigger"]) == (429, "context-growth")
        await gw.advance(10)
        # The probe: the same conversation, one short turn longer than the turn that tripped it.
        history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "go on"}]
        assert (await ask(gw, "", messages=history)).status_code == 200
        assert (await state(gw, key))["status"] == "closed"


async def test_repeats_reopen_when_the_probe_repeats_the_loop(tmp_path: Path, sim: SimProcess) -> None:
    key = "Breaker/loop-guard/agent:bot"
    loop = breaker(
        "loop-guard",
        "  target: {agent: '*'}\n  repeats: {count: 3, window: 1m}\n  openFor: 10s\n  maxOpenFor: 1m\n"
        "  halfOpen: {probes: 1, closeAfter: 1}\n",
    )
    again = "again [[sim output_tokens=3]]"
    async with clocked_gateway(tmp_path, sim.base_url, loop, start=START) as gw:
        assert [(await ask(gw, again)).status_code for _ in range(4)] == [200, 200, 200, 429]
        await gw.advance(10)
        assert (await ask(gw, again)).status_code == 429  # the probe is the loop again
        failed = await state(gw, key)
        assert (failed["status"], failed["retry_after"]) == ("open", 20)
        assert failed["reason"] == "the same request 5 times in 1min > 3"
        await gw.advance(20)
        assert (await ask(gw, "something new [[sim output_tokens=3]]")).status_code == 200
        assert (await state(gw, key))["status"] == "closed"


async def test_a_deployment_breaker_is_probed_by_traffic_and_closes(tmp_path: Path, sim: SimProcess) -> None:
    key = "Breaker/upstream/deployment:sim/sim-large"
    upstream = breaker(
        "upstream",
        "  target: {deployment: sim/sim-large}\n  errorRate: {threshold: 0.5, minRequests: 2, window: 1m}\n"
        "  openFor: 10s\n  maxOpenFor: 1m\n  halfOpen: {probes: 1, closeAfter: 1}\n",
    )
    text = "route me [[sim output_tokens=3]]"
    async with clocked_gateway(tmp_path, sim.base_url, upstream, start=START) as gw:
        for _ in range(2):
            sim.add_fault("error", "sim-large", status=500, count=1)
            served = await ask(gw, text, model="chain")
            assert served.headers["x-fleetplane-deployment"] == "sim/sim-medium"
            await gw.advance(31)  # the chain's 30 s cooldown of the failed deployment
        assert (await state(gw, key))["status"] == "half_open"  # opened by the 2nd error, 31 s ago
        # A probe that fails again re-opens it for 20 s; the request falls back all the same.
        sim.add_fault("error", "sim-large", status=500, count=1)
        assert (await ask(gw, text, model="chain")).headers["x-fleetplane-deployment"] == "sim/sim-medium"
        failed = await state(gw, key)
        assert (failed["status"], failed["reason"]) == (
            "open",
            "half-open probe failed; opened for error rate 100% > 50% (2 of 2 in 1min)",
        )
        await gw.advance(31)
        # The next request is the probe; the deployment answers, and the breaker closes.
        probe = await ask(gw, text, model="chain")
        assert probe.headers["x-fleetplane-deployment"] == "sim/sim-large"
        assert (await state(gw, key))["status"] == "closed"


async def test_a_probe_refused_by_a_quota_does_not_reopen_the_deployment_breaker(
    tmp_path: Path, sim: SimProcess
) -> None:
    """Regression: an attempt skipped by another policy (a tenant's spent quota) reported its probe as
    failed, so one tenant over budget re-opened a deployment's breaker, with a doubled opening and a
    cooldown, for everyone — though the deployment was never called."""
    key = "Breaker/upstream/deployment:sim/sim-large"
    extra = breaker(
        "upstream",
        "  target: {deployment: sim/sim-large}\n  errorRate: {threshold: 0.5, minRequests: 1, window: 1m}\n"
        "  openFor: 10s\n  maxOpenFor: 1m\n  halfOpen: {probes: 1, closeAfter: 1}\n",
    ) + (
        "apiVersion: fleetplane.dev/v1alpha1\nkind: Quota\nmetadata: {name: team}\nspec:\n"
        "  target: {team: support}\n  limits: {rpm: 1}\n---\n"
    )
    text = "route me [[sim output_tokens=3]]"
    async with clocked_gateway(tmp_path, sim.base_url, extra, start=START) as gw:
        sim.add_fault("error", "sim-large", status=500, count=1)
        assert (await ask(gw, text, model="chain")).headers["x-fleetplane-deployment"] == "sim/sim-medium"
        assert (await state(gw, key))["status"] == "open"
        # 31 s later the breaker is half-open and the cooldown over, but the team's one request of the
        # minute is spent: the next request takes the probe slot, and the quota skips the attempt.
        await gw.advance(31)
        denied = await ask(gw, text, model="chain")
        assert (
            denied.status_code == 429
            and denied.headers["x-fleetplane-quota-scope"] == "Quota/team (team=support)"
        )
        after = await state(gw, key)
        assert after["status"] == "half_open", after  # not re-opened, no doubled opening
        models = (await gw.client.get("/admin/gateway/config")).json()["models"]
        assert not any("sim/sim-large" in m["cooldowns"] for m in models)
        # The unjudged probe's slot comes back with its lease; then traffic probes and closes it.
        await gw.advance(121)
        probe = await ask(gw, text, model="chain")
        assert probe.headers["x-fleetplane-deployment"] == "sim/sim-large"
        assert (await state(gw, key))["status"] == "closed"


async def test_a_probe_refused_by_another_open_breaker_does_not_reopen_its_own(
    tmp_path: Path, sim: SimProcess
) -> None:
    """Regression: when one breaker refused a request, every other breaker's probe that request held
    was reported failed — an agent's cost breaker re-opened, for twice as long, because its loop guard
    refused a request that never ran and spent nothing."""
    again = "again [[sim output_tokens=10]]"
    threshold = 2.5 * _cost(again, 10)
    extra = breaker(
        "spend",
        f"  target: {{agent: bot}}\n  costVelocity: {{usdPerMinute: {threshold!r}}}\n"
        "  openFor: 10s\n  maxOpenFor: 1m\n  halfOpen: {probes: 1, closeAfter: 1}\n",
    ) + breaker(
        "zz-loop",  # checked after `spend`: rules are applied in name order
        "  target: {agent: '*'}\n  repeats: {count: 3, window: 1m}\n  openFor: 1m\n",
    )
    async with clocked_gateway(tmp_path, sim.base_url, extra, start=START) as gw:
        assert [(await ask(gw, again)).status_code for _ in range(3)] == [200, 200, 200]
        assert (await state(gw, "Breaker/spend/agent:bot"))["status"] == "open"  # the 3rd one's cost
        await gw.advance(10)  # spend half-opens; zz-loop is closed still
        looped = await ask(gw, again)  # spend's probe; the 4th repeat trips zz-loop, which refuses it
        assert looped.status_code == 429 and looped.headers["x-fleetplane-breaker"] == "Breaker/zz-loop"
        spend = await state(gw, "Breaker/spend/agent:bot")
        assert spend["status"] == "closed", spend  # the refused probe spent nothing: not a failure
        assert spend["trips"] == 1
