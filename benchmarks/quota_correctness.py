"""Do quotas hold under a burst? A correctness benchmark (it measures, it asserts nothing).

    .venv/bin/python benchmarks/quota_correctness.py                       # every store, strict + adaptive
    .venv/bin/python benchmarks/quota_correctness.py --stores redis-3 --policies adaptive --requests 600

For each store (in-process, Redis with 1 replica, Redis with 3 replicas sharing one Postgres ledger) and
each reservation policy (strict, adaptive), a fresh gateway fleet with one small tokens-per-minute budget
on the benchmark key takes a burst of concurrent requests: a seeded mix of plain and streamed requests
with skewed output lengths, about 30% of the streams cancelled by their client at a random moment (before
the first token or mid-stream), spread round-robin over the replicas. Once every client is done and the
gateways had time to settle, it reads:

- the quota counters (`GET /admin/quotas`; on Redis also the keys themselves): tokens charged in the
  window, tokens still reserved, open reservations, concurrency places still held;
- the usage ledger (every replica flushed, then the store read directly): tokens recorded for the key.

and prints the overshoot ratio (tokens charged ÷ limit; the ledger's total ÷ limit too), what is left
open (must be 0), and the ledger's total against the counters' total (they should be equal).

Before the burst each replica serves a warm-up through a second key of the same agent, outside the
budget, so `adaptive` reservations have learned a percentile of outputs (per replica, in memory); strict
runs get the same warm-up. The simulator streams at a finite speed so cancellations land mid-stream.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import fleets
from common import command_line, machine, now_utc, result_path, source, write_result
from servers import Gateways, Topology

from fleetplane.sim.process import SimProcess

MODEL = "bench-chat"
WARM_KEY_ENV = "FLEETPLANE_BENCH_WARM_KEY"
RULE, SUBJECT = "Quota/burst", "key=bench"
STORES = {
    "in-process": Topology(replicas=1, shared_state="in-process", database="sqlite"),
    "redis": Topology(replicas=1, shared_state="redis", database="sqlite"),
    "redis-3": Topology(replicas=3, shared_state="redis", database="postgres"),
}
POLICIES = ("strict", "adaptive")
QUOTA_PREFIX = "fleetplane:{quota}:"  # the gateway's Redis quota keys (state/quota/redis_store.py)
SIM_TPS = 400  # simulator decode speed, tokens per second
_FILLER = "an agent asks the model for the next step of a plan and waits for tokens to stream back "


@dataclass(frozen=True)
class Settings:
    requests: int
    tpm: int
    spread: float
    stream_share: float
    cancel_share: float
    max_output: int
    mean_output: int
    warmup: int
    settle: float
    lease: float | None
    recheck: float
    seed: int
    stores: list[str]
    policies: list[str]


@dataclass(frozen=True)
class Planned:
    index: int
    at: float  # seconds after the burst starts
    stream: bool
    output_tokens: int
    cancel_after: float | None  # seconds after sending; None = read to the end


def plan(settings: Settings, rng: random.Random, count: int, spread: float) -> list[Planned]:
    """Who sends what and when: skewed outputs (most short, a few near the maximum), as agents produce."""
    out = []
    for i in range(count):
        stream = rng.random() < settings.stream_share
        tokens = min(settings.max_output, 10 + int(rng.expovariate(1 / settings.mean_output)))
        cancel = None
        if stream and rng.random() < settings.cancel_share:
            # Anywhere from before the first token to about the end of the stream.
            cancel = rng.uniform(0.0, 0.05 + tokens / SIM_TPS)
        out.append(Planned(i, spread * i / count, stream, tokens, cancel))
    return out


def sim_config() -> dict[str, Any]:
    model = {"ttft_ms": {"median": 20, "p95": 60}, "tps": {"mean": SIM_TPS, "jitter": 40}, "chunk_tokens": 1}
    return {"seed": 7, "models": {MODEL: model}}


def body(p: Planned, tag: str) -> dict[str, Any]:
    text = f"{tag} request {p.index}: {_FILLER * 2} [[sim output_tokens={p.output_tokens}]]"
    data: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    if p.stream:
        data["stream"] = True
    return data


async def send(session: aiohttp.ClientSession, url: str, key: str, p: Planned, tag: str) -> str:
    """One request; what became of it: ok, denied (429), cancelled (by us), cut (by the gateway), or an
    error status."""
    headers = {"authorization": f"Bearer {key}"}

    async def exchange() -> str:
        async with session.post(url + "/chat/completions", json=body(p, tag), headers=headers) as response:
            if response.status != 200:
                await response.read()
                return "denied" if response.status == 429 else f"status {response.status}"
            if not p.stream:
                await response.read()
                return "ok"
            tail = b""
            errored = False
            async for chunk in response.content.iter_any():
                errored = errored or b'"error"' in chunk
                tail = (tail + chunk)[-64:]
            if errored:
                return "cut by gateway"
            return "ok" if b"[DONE]" in tail else "truncated"

    if p.cancel_after is None:
        return await exchange()
    try:
        async with asyncio.timeout(p.cancel_after):
            return await exchange()
    except TimeoutError:
        return "cancelled"


async def burst(urls: list[str], key: str, planned: list[Planned], tag: str) -> Counter[str]:
    """Every planned request at its time, round-robin over the replicas; outcomes by kind and mode."""
    outcomes: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def one(p: Planned) -> None:
            await asyncio.sleep(max(0.0, start + p.at - time.perf_counter()))
            try:
                outcome = await send(session, urls[p.index % len(urls)], key, p, tag)
            except aiohttp.ClientError as exc:
                outcome = f"client error {type(exc).__name__}"
            outcomes[f"{'stream' if p.stream else 'plain'} {outcome}"] += 1

        await asyncio.gather(*(one(p) for p in planned))
    return outcomes


async def warm_up(urls: list[str], key: str, planned: list[Planned]) -> Counter[str]:
    """Sequential plain requests to each replica, so each learns what outputs look like."""
    outcomes: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for url in urls:
            for p in planned:
                outcomes[await send(session, url, key, p, "warm-up")] += 1
    return outcomes


# -- reading what is left --------------------------------------------------------------------------------


def quota_counters(gateways: Gateways) -> dict[str, float]:
    """The burst budget's counters as the gateway reports them (any replica: the store is shared)."""
    rows = gateways.admin("/admin/quotas")["quotas"]
    row = next(r for r in rows if r["rule"] == RULE and r["subject"] == SUBJECT)
    limits = {limit["name"]: limit for limit in row["limits"]}
    return {
        "tpm_used": float(limits["tpm"]["used"] or 0),
        "tpm_reserved": float(limits["tpm"]["reserved"] or 0),
        "concurrent_held": float(limits["concurrent"]["used"] or 0),
    }


def redis_leftovers(gateways: Gateways) -> dict[str, Any] | None:
    """Straight from Redis: open reservations (the lease index, with their ids) and concurrency places."""
    if gateways.redis is None:
        return None
    client = gateways.redis.client
    held = sum(client.zcard(k) for k in client.scan_iter(match=_glob(QUOTA_PREFIX + "c:") + "*"))
    ids = [i.decode() for i in client.zrange(QUOTA_PREFIX + "leases", 0, -1)]
    return {"open_reservations": len(ids), "concurrency_held": int(held), "open_ids": ids}


def _glob(prefix: str) -> str:
    return "".join(f"[{c}]" if c in "[]{}*?" else c for c in prefix)


def ledger(gateways: Gateways, look_up: list[str]) -> dict[str, Any]:
    """The benchmark key's records, after every replica flushed its queue; in full for the request ids
    of `look_up` (reservation ids "request:attempt" still open)."""
    from sqlalchemy import create_engine, text

    from fleetplane.store.url import sync_url

    for replica in gateways.replicas:
        gateways.admin("/admin/gateway/flush", replica=replica.index, method="POST")
    wanted = {rid.rpartition(":")[0] for rid in look_up}
    engine = create_engine(sync_url(gateways.database_url))
    query = text(
        "SELECT u.request_id, u.status, u.stream, u.client_disconnected, u.error_type, u.input_tokens, "
        "u.output_tokens, u.latency_ms, u.ttft_ms, u.usage_source "
        "FROM usage_records u JOIN virtual_keys k ON k.id = u.key_id WHERE k.name = 'bench'"
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    return {
        "records": len(rows),
        "tokens": sum(r.input_tokens + r.output_tokens for r in rows),
        "by_status": dict(Counter(str(r.status) for r in rows)),
        "client_disconnected": sum(1 for r in rows if r.client_disconnected),
        "of_open_reservations": [dict(r._mapping) for r in rows if r.request_id in wanted],
    }


def settle(gateways: Gateways, seconds: float) -> tuple[dict[str, float], float | None]:
    """Poll until nothing is reserved or held, up to `seconds`; the counters and how long it took."""
    start = time.monotonic()
    while True:
        counters = quota_counters(gateways)
        if counters["tpm_reserved"] == 0 and counters["concurrent_held"] == 0:
            return counters, time.monotonic() - start
        if time.monotonic() - start > seconds:
            return counters, None
        time.sleep(0.1)


# -- one case --------------------------------------------------------------------------------------------


def run_case(
    settings: Settings, store: str, policy: str, sim: SimProcess, workdir: Path, logs: Path
) -> dict[str, Any]:
    rng = random.Random(f"{settings.seed}-{store}-{policy}")
    warm_plan = plan(settings, rng, settings.warmup, 0.0)
    warm_plan = [Planned(p.index, 0.0, False, p.output_tokens, None) for p in warm_plan]
    planned = plan(settings, random.Random(settings.seed), settings.requests, settings.spread)
    warm_key = "sk-warm-" + secrets.token_hex(16)
    fleet = functools.partial(
        fleets.tpm_limited,
        tpm=settings.tpm,
        reservation=policy,
        max_output=settings.max_output,
        warm_key_env=WARM_KEY_ENV,
    )
    params = fleets.FleetParams(upstream_url=sim.base_url + "/v1", model=MODEL)
    topology = STORES[store]
    env = {WARM_KEY_ENV: warm_key}
    if settings.lease is not None:
        env["FLEETPLANE_QUOTA_LEASE"] = f"{settings.lease:g}"
    with Gateways(fleet, params, topology, workdir, env=env, first_key=warm_key) as gw:
        warm = asyncio.run(warm_up(gw.urls, warm_key, warm_plan))
        began = time.monotonic()
        outcomes = asyncio.run(burst(gw.urls, gw.key, planned, f"{store}-{policy}"))
        burst_s = time.monotonic() - began
        counters, settled_in = settle(gw, settings.settle)
        redis = redis_leftovers(gw)
        records = ledger(gw, redis["open_ids"] if redis else [])
        after_flush = quota_counters(gw)
        later = None
        if settings.recheck > 0:
            # Whether what was left open outlives its lease (or is renewed while the gateway lives).
            time.sleep(settings.recheck)
            later = {"counters": quota_counters(gw), "redis": redis_leftovers(gw)}
        saved = gw.save_logs(logs.with_name(f"{logs.name}-{store}-{policy}"))
    elapsed = time.monotonic() - began
    used = after_flush["tpm_used"]
    row = {
        "store": store,
        "policy": policy,
        "topology": topology.describe(),
        "limit": settings.tpm,
        "warm_up": dict(warm),
        "outcomes": dict(sorted(outcomes.items())),
        "burst_seconds": burst_s,
        "settled_in_seconds": settled_in,
        "read_after_seconds": elapsed,
        "counters": counters,
        "counters_after_flush": after_flush,
        "redis": redis,
        "ledger": records,
        "overshoot": used / settings.tpm,
        "ledger_over_limit": records["tokens"] / settings.tpm,
        "ledger_minus_counters": records["tokens"] - used,
        "gateway_logs": [str(p) for p in saved],
        "lease": settings.lease,
        "recheck": None if later is None else {"after_seconds": settings.recheck, **later},
    }
    print_row(row)
    return row


def print_row(row: dict[str, Any]) -> None:
    c, led = row["counters_after_flush"], row["ledger"]
    redis = row["redis"]
    left = f"reserved {c['tpm_reserved']:.0f} tokens, {c['concurrent_held']:.0f} concurrency places"
    if redis is not None:
        left += (
            f" (Redis: {redis['open_reservations']} open reservations, {redis['concurrency_held']} places)"
        )
    print(
        f"  {row['store']:<10} {row['policy']:<8} charged {c['tpm_used']:.0f} / {row['limit']} = "
        f"{row['overshoot']:.3f}; ledger {led['tokens']} ({row['ledger_minus_counters']:+.0f}); "
        f"left: {left}; settled {_settled(row['settled_in_seconds'])}",
        flush=True,
    )
    print(f"             outcomes {row['outcomes']}", flush=True)
    if row["recheck"] is not None:
        again = row["recheck"]["counters"]
        print(
            f"             {row['recheck']['after_seconds']:g} s later (lease {row['lease'] or 'default'}): "
            f"reserved {again['tpm_reserved']:.0f} tokens, {again['concurrent_held']:.0f} concurrency "
            f"places; charged {again['tpm_used']:.0f}, ledger minus counters "
            f"{led['tokens'] - again['tpm_used']:+.0f}",
            flush=True,
        )
    for record in led["of_open_reservations"]:
        print(f"             still open in Redis, its ledger record: {record}", flush=True)


# -- report ----------------------------------------------------------------------------------------------


def _settled(seconds: float | None) -> str:
    return "not within the wait" if seconds is None else f"in {seconds:.1f} s"


def _outcome_cell(outcomes: dict[str, int]) -> str:
    parts = Counter[str]()
    for name, n in outcomes.items():
        mode, _, what = name.partition(" ")
        parts[f"{what} ({mode})" if what != "ok" else f"ok {mode}"] += n
    return ", ".join(f"{k} {v}" for k, v in sorted(parts.items()))


def markdown(data: dict[str, Any]) -> str:
    s, m = data["settings"], data["machine"]
    lines = [
        f"Run {data['date']} with `{data['command']}`",
        f"on {m['cores']} cores, Python {m['python']}, load average at start "
        f"{', '.join(str(x) for x in m['load_average'])}; fleetplane at {data['source'].get('commit', '?')}.",
        f"{s['requests']} requests over {s['spread']:g} s against tpm {s['tpm']}; "
        f"{s['stream_share']:.0%} streamed, {s['cancel_share']:.0%} of streams cancelled by their client; "
        f"outputs 10 + exponential(mean {s['mean_output']}) tokens capped at {s['max_output']} "
        f"(the model's maxOutputTokens); seed {s['seed']}.",
        "",
        "| store | policy | charged ÷ limit (overshoot) | ledger ÷ limit | ledger minus counters (tokens) | "
        "reservations left | concurrency left | tokens still reserved | settled after | outcomes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        c = r["counters_after_flush"]
        redis = r["redis"]
        reservations = str(redis["open_reservations"]) if redis else f"{c['concurrent_held']:.0f}"
        places = f"{c['concurrent_held']:.0f}" + (f" (Redis {redis['concurrency_held']})" if redis else "")
        lines.append(
            f"| {r['store']} | {r['policy']} | {r['overshoot']:.3f} | {r['ledger_over_limit']:.3f} | "
            f"{r['ledger_minus_counters']:+.0f} | {reservations} | {places} | {c['tpm_reserved']:.0f} | "
            f"{_settled(r['settled_in_seconds'])} | {_outcome_cell(r['outcomes'])} |"
        )
    rechecked = [r for r in data["rows"] if r["recheck"] is not None]
    if rechecked:
        lines += [""]
        for r in rechecked:
            again, lease = r["recheck"], r["lease"]
            counters = again["counters"]
            lines.append(
                f"- {r['store']} {r['policy']}: {again['after_seconds']:g} s later (lease "
                f"{f'{lease:g} s' if lease else 'default'}), still reserved "
                f"{counters['tpm_reserved']:.0f} tokens and {counters['concurrent_held']:.0f} "
                f"concurrency places; charged {counters['tpm_used']:.0f} "
                f"(÷ limit {counters['tpm_used'] / r['limit']:.3f}), ledger minus counters "
                f"{r['ledger']['tokens'] - counters['tpm_used']:+.0f}"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--requests", type=int, default=300, help="requests in the burst (default 300)")
    p.add_argument("--tpm", type=int, default=20000, help="the budget's tokens per minute (default 20000)")
    p.add_argument("--spread", type=float, default=2.0, help="seconds the burst is sent over (default 2)")
    p.add_argument("--stream-share", type=float, default=0.5, help="share of streamed requests (default 0.5)")
    p.add_argument("--cancel-share", type=float, default=0.3, help="share of streams cancelled (default 0.3)")
    p.add_argument("--max-output", type=int, default=400, help="the model's maxOutputTokens (default 400)")
    p.add_argument("--mean-output", type=int, default=80, help="mean of the output's tail (default 80)")
    p.add_argument("--warmup", type=int, default=40, help="warm-up requests per replica (default 40)")
    p.add_argument("--settle", type=float, default=10.0, help="longest wait for counters to settle (s)")
    p.add_argument(
        "--lease", type=float, help="FLEETPLANE_QUOTA_LEASE for the gateways (default: theirs, 120 s)"
    )
    p.add_argument("--recheck", type=float, default=0.0, help="read what is left again after this many s")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stores", default=",".join(STORES), help=f"comma-separated: {', '.join(STORES)}")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated: strict, adaptive")
    args = p.parse_args(argv)
    stores = [x for x in args.stores.split(",") if x]
    policies = [x for x in args.policies.split(",") if x]
    unknown = [x for x in stores if x not in STORES] + [x for x in policies if x not in POLICIES]
    if unknown:
        p.error(f"unknown stores/policies {unknown}")
    return Settings(
        requests=args.requests,
        tpm=args.tpm,
        spread=args.spread,
        stream_share=args.stream_share,
        cancel_share=args.cancel_share,
        max_output=args.max_output,
        mean_output=args.mean_output,
        warmup=args.warmup,
        settle=args.settle,
        lease=args.lease,
        recheck=args.recheck,
        seed=args.seed,
        stores=stores,
        policies=policies,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = now_utc()
    data: dict[str, Any] = {
        "benchmark": "quota_correctness",
        "date": started.isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine(),
        "source": source(),
        "settings": settings.__dict__,
        "rows": [],
    }
    with SimProcess(sim_config()) as sim:
        for store in settings.stores:
            for policy in settings.policies:
                with tempfile.TemporaryDirectory(prefix=f"fleetplane-quota-{store}-{policy}-") as tmp:
                    logs = result_path("quota_correctness", started, "log").with_suffix("")
                    data["rows"].append(run_case(settings, store, policy, sim, Path(tmp), logs))
    path = write_result("quota_correctness", data, started)
    snippet = markdown(data)
    path.with_suffix(".md").write_text(snippet)
    print(f"\nJSON: {path}\nmarkdown: {path.with_suffix('.md')}\n")
    print(snippet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
