"""A team limit shared by three gateway replicas — three `fleetplane up` processes on one Redis — holds
exactly: 200 concurrent requests spread round-robin over the replicas never get more tokens admitted than
the limit (LiteLLM #18730: 663 tokens through a 100 TPM limit; #40291 and others: limits multiplied by
the number of replicas). The one-replica, in-process case is tests/gateway/test_quota.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fleet_procs import Replica, Replicas, auth, ledger, quota, tokens, write_fleet

from fleetplane.sim.process import SimProcess
from fleetplane.telemetry.tokens import count_openai_chat

ASK = [{"role": "user", "content": "share [[sim output_tokens=5]]"}]
INPUT = count_openai_chat({"messages": ASK})
MAX_TOKENS = 10
LIMIT = 1000


async def _burst(replicas: list[Replica], count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:

        async def one(i: int) -> int:
            target = replicas[i % len(replicas)]  # round-robin, as a load balancer would
            response = await client.post(
                target.v1 + "/chat/completions",
                json={"model": "solo", "messages": ASK, "max_tokens": MAX_TOKENS},
                headers=auth(),
            )
            return response.status_code

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_three_replicas_never_admit_more_than_a_team_limit(
    tmp_path: Path, upstream: SimProcess, postgres_url: str, redis_url: str, replicas: Replicas
) -> None:
    fleet = write_fleet(
        tmp_path / "fleet",
        upstream.base_url,
        quota("team-tpm", "{team: support}", f"{{tpm: {LIMIT}}}", reservation="strict"),
    )
    gateways = [replicas.start(fleet, database_url=postgres_url, redis_url=redis_url) for _ in range(3)]

    statuses = asyncio.run(_burst(gateways, 200))

    assert set(statuses) <= {200, 429}, statuses
    for gateway in gateways:
        gateway.flush()
    records = ledger(postgres_url)
    assert len(records) == 200
    served = [r for r in records if r["status"] == 200]
    refused = [r for r in records if r["status"] == 429]
    assert (len(served), len(refused)) == (statuses.count(200), statuses.count(429))
    admitted = tokens(served)
    print(
        f"\n3 replicas: admitted {len(served)} of 200 requests; {admitted} tokens against a limit of "
        f"{LIMIT} (overshoot ratio {admitted / LIMIT:.3f})"
    )
    assert admitted <= LIMIT
    # Each was admitted on its strict bound (INPUT + max_tokens) and settled to its real usage.
    assert admitted == len(served) * (INPUT + 5)
    assert tokens(refused) == 0
    # The shared counter is the ledger, exactly, whichever replica asks; nothing is left reserved.
    for gateway in gateways:
        counters = gateway.quotas()[("Quota/team-tpm", "team=support")]["tpm"]
        assert (counters["used"], counters["reserved"]) == (admitted, 0)
    # The upstream saw exactly the admitted requests: a refusal never reached it.
    assert upstream.stats()["models"]["sim-small"]["requests_total"] == len(served)
