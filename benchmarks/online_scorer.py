"""Online evals: what a scored item costs in the cheap tier and in the judge tier on the same traffic, how
many items per second the online evaluator scores, and what running it does to the gateway's latency.

Three measurements:

1. `fleetplane up` twice on the same fleet and traffic (a simulator upstream, sequential requests with a
   realistic model latency): once without online evals, once with them (cheap scorers on 100% of traffic,
   the judge on a 10% sample and on flagged items). Request latency percentiles side by side.
2. From the second run's store: cost and latency per scored item, per tier (cheap: CPU time priced at
   `CPU_DOLLARS_PER_HOUR`; judge: the gateway's price of its tokens, and the wall time of its calls).
3. In process: N spans with captured content in a SQLite span store, one evaluator poll with the cheap
   scorers only: items per second.

    .venv/bin/python benchmarks/online_scorer.py                  # 300 requests per run, 5,000 items
    .venv/bin/python benchmarks/online_scorer.py --requests 100 --items 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    command_line,
    free_port,
    machine,
    now_utc,
    post_json,
    source,
    spawn,
    stop,
    wait_http,
    write_result,
)

from fleetplane.sim.process import SimProcess
from fleetplane.store.keys import new_secret

SIM = {
    "seed": 3,
    "models": {
        # The traffic: a fast model (~120 ms to first token, 400 tokens/s).
        "sim-fast": {
            "output_tokens": {"mean": 60, "stddev": 20, "min": 5, "max": 150},
            "ttft_ms": {"median": 120, "p95": 250},
            "tps": {"mean": 400, "jitter": 40},
        },
        # The judge: a large model's pace (~500 ms to first token, 80 tokens/s).
        "sim-judge": {"ttft_ms": {"median": 500, "p95": 1200}, "tps": {"mean": 80, "jitter": 10}},
    },
}
FLEET = """
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {{name: acme}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {{name: support}}
spec: {{organization: acme}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {{name: upstream}}
spec: {{type: openai-compatible, baseURL: "{sim}/v1", timeouts: {{read: 60s}}}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {{name: fast}}
spec:
  family: sim-gpt
  contextWindow: 32000
  price: {{input: 0.15, output: 0.60}}
  deployments: [{{provider: upstream, model: sim-fast}}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {{name: judge}}
spec:
  family: sim-claude
  contextWindow: 200000
  price: {{input: 3.00, output: 15.00}}
  deployments: [{{provider: upstream, model: sim-judge}}]
---
apiVersion: fleetplane.dev/v1alpha1
kind: VirtualKey
metadata: {{name: bench}}
spec: {{team: support, agent: bot, secretRef: {{env: FP_BENCH_KEY}}}}
"""
ONLINE = """
interval: 0.5s
cheap:
  - {type: length, min: 10, unit: words, dimension: quality}
  - {type: refusal, dimension: safety}
  - {type: length, max: 400, unit: words, dimension: concise}
judge: {type: llm-rubric, judge: judge, dimension: quality, rubric: "Answers the user's question correctly."}
rules:
  - {name: bot, rate: 0.10, agent: bot}
"""


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "mean": statistics.fmean(ordered)}


def serve_and_send(workdir: Path, sim_url: str, requests: int, online: bool) -> tuple[list[float], Path]:
    fleet = workdir / ("fleet-on" if online else "fleet-off")
    fleet.mkdir(parents=True, exist_ok=True)
    (fleet / "fleet.yaml").write_text(FLEET.format(sim=sim_url))
    key = new_secret()
    database = workdir / f"{fleet.name}.db"
    env = {
        "FP_BENCH_KEY": key,
        "FLEETPLANE_HOME": str(workdir / f"home-{fleet.name}"),
        "FLEETPLANE_DATABASE_URL": f"sqlite:///{database}",
        "FLEETPLANE_JUDGE_KEY": key,
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY",
    }
    if online:
        config = workdir / "online.yaml"
        config.write_text(ONLINE)
        env["FLEETPLANE_ONLINE_EVALS"] = str(config)
    port = free_port()
    log = workdir / f"{fleet.name}.log"
    proc = spawn(
        [sys.executable, "-m", "fleetplane.cli", "up", str(fleet), "--port", str(port)], env=env, log=log
    )
    latencies: list[float] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/admin/ready", proc=proc, log=log)
        headers = {"authorization": f"Bearer {key}"}
        for i in range(requests):
            text = "Hi [[sim output_tokens=4]]" if i % 10 == 0 else f"Question {i}: how do quotas work?"
            body = {"model": "fast", "messages": [{"role": "user", "content": text}]}
            started = time.perf_counter()
            status, _ = post_json(base + "/v1/chat/completions", body, headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"request {i} answered {status}")
        if online:  # let the evaluator catch up before stopping
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and _pending(database, requests):
                time.sleep(0.5)
    finally:
        stop(proc)
    return latencies, database


def _pending(database: Path, requests: int) -> bool:
    with sqlite3.connect(database) as conn:
        taken = conn.execute("SELECT count(*) FROM eval_online_items").fetchone()[0]
        due = conn.execute("SELECT count(*) FROM eval_online_items WHERE judge_status = 'due'").fetchone()[0]
    return bool(taken < requests or due)


def per_tier(database: Path) -> dict[str, dict[str, float]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT CASE WHEN tier = 'judge' THEN 'judge' ELSE 'cheap' END, trace_id, span_id, cost_usd, "
            "latency_ms FROM eval_online_scores"
        ).fetchall()
    items: dict[str, dict[tuple[str, str], list[float]]] = {"cheap": {}, "judge": {}}
    for tier, trace, span, cost, latency in rows:
        entry = items[tier].setdefault((trace, span), [0.0, 0.0])
        entry[0] += cost
        entry[1] += latency  # the cheap scorers of an item run one after another
    out: dict[str, dict[str, float]] = {}
    for tier, by_item in items.items():
        if by_item:
            out[tier] = {
                "items": len(by_item),
                "cost_usd_per_item": statistics.fmean(v[0] for v in by_item.values()),
                "latency_ms_per_item": statistics.fmean(v[1] for v in by_item.values()),
            }
    return out


async def throughput(items: int) -> dict[str, float]:
    from fleetplane.evals.online.config import OnlineConfig
    from fleetplane.evals.online.evaluator import OnlineEvaluator
    from fleetplane.store.db import Store
    from fleetplane.telemetry.records import SpanRecord
    from fleetplane.telemetry.spanstore import SpanStore

    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(f"sqlite:///{tmp}/spans.db")
        spans = SpanStore(store, retention=None)
        now_ns = time.time_ns()
        words = " ".join(["fleet"] * 40)
        records = [
            SpanRecord(
                trace_id=secrets.token_hex(16),
                span_id=secrets.token_hex(8),
                parent_span_id=None,
                name="chat fast",
                kind="client",
                start_ns=now_ns - 10_000_000_000 + i * 1000,
                end_ns=now_ns,
                status_code="unset",
                operation="chat",
                agent="bot",
                request_model="fast",
                attributes={
                    "gen_ai.input.messages": orjson.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": f"question {i}"}]}]
                    ).decode(),
                    "gen_ai.output.messages": orjson.dumps(
                        [{"role": "assistant", "parts": [{"type": "text", "content": words}]}]
                    ).decode(),
                },
            )
            for i in range(items)
        ]
        spans.submit(records)
        await spans.flush()
        config = OnlineConfig.model_validate(
            orjson.loads(
                orjson.dumps(
                    {
                        "rules": [{"name": "bot", "rate": 0.1, "agent": "bot"}],
                        "batch": 1000,
                        "cheap": [
                            {"type": "length", "min": 10, "unit": "words"},
                            {"type": "refusal", "dimension": "safety"},
                            {"type": "length", "max": 400, "unit": "words", "dimension": "concise"},
                        ],
                    }
                )
            )
        )
        evaluator = OnlineEvaluator.from_config(spans, config)
        evaluator.clock = lambda: now_ns / 1e9
        started = time.perf_counter()
        result = await evaluator.poll_once()
        elapsed = time.perf_counter() - started
        await store.close()
    return {"items": result.taken, "seconds": elapsed, "items_per_s": result.taken / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per gateway run")
    parser.add_argument("--items", type=int, default=5000, help="spans for the throughput measurement")
    args = parser.parse_args()
    when = now_utc()
    with tempfile.TemporaryDirectory() as tmp, SimProcess(SIM) as sim:
        workdir = Path(tmp)
        off, _ = serve_and_send(workdir, sim.base_url, args.requests, online=False)
        on, database = serve_and_send(workdir, sim.base_url, args.requests, online=True)
        tiers = per_tier(database)
    rate = asyncio.run(throughput(args.items))
    result: dict[str, Any] = {
        "command": command_line(),
        "date": when.isoformat(),
        "machine": machine(),
        "source": source(),
        "gateway_latency_ms": {"online_evals_off": percentiles(off), "online_evals_on": percentiles(on)},
        "per_item": tiers,
        "throughput": rate,
    }
    if "cheap" in tiers and "judge" in tiers:
        result["cheap_cost_fraction_of_judge"] = (
            tiers["cheap"]["cost_usd_per_item"] / tiers["judge"]["cost_usd_per_item"]
        )
    path = write_result("online_scorer", result, when)
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print(f"written: {path}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
