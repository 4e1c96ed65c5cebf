"""Under `fleetplane up` (its own process): with FLEETPLANE_ONLINE_EVALS set, the server's lifespan starts the
online evaluator; traffic gets cheap and judge scores after the fact, and the review API serves the queue."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "e2e"))

from fleet_procs import Replicas, auth, write_fleet

from fleetplane.sim.process import SimProcess

JUDGE = """
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: judge}
spec:
  family: sim-llama
  contextWindow: 32000
  price: {input: 3.0, output: 15.0}
  deployments: [{provider: upstream, model: sim-medium}]
"""
ONLINE = """
interval: 0.2s
cheap:
  - {type: length, min: 10, unit: words, dimension: quality}
judge: {type: llm-rubric, judge: judge, dimension: quality, rubric: "Answers the question."}
rules:
  - {name: bot, rate: 0.0, agent: bot}
"""


def stored(database: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(database)) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    started = Replicas(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def test_up_scores_traffic_online_and_serves_the_review_queue(
    tmp_path: Path, online_sim: SimProcess, replicas: Replicas
) -> None:
    fleet = write_fleet(tmp_path / "fleet", online_sim.base_url, JUDGE)
    config = tmp_path / "online.yaml"
    config.write_text(ONLINE)

    server = replicas.start(
        fleet,
        database_url=f"sqlite:///{tmp_path / 'up.db'}",
        redis_url=None,
        env={
            "FLEETPLANE_ONLINE_EVALS": str(config),
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY",
        },
    )
    for text in ("short [[sim output_tokens=3]]", "long enough [[sim output_tokens=25]]"):
        body = {"model": "solo", "messages": [{"role": "user", "content": text}]}
        assert (
            httpx.post(server.v1 + "/chat/completions", json=body, headers=auth(), timeout=30).status_code
            == 200
        )

    # Rate 0: only the flagged (short) answer goes to the judge, then to the review queue.
    deadline = time.monotonic() + 60
    while True:
        items = httpx.get(server.url + "/admin/evals/review/items", timeout=10).json()["items"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(i["source"], sorted(i["reasons"])) for i in items] == [("flagged", ["low-score", "too-short"])]
    assert "short" in items[0]["subject"]["input"][0]["content"]
    taken = httpx.post(server.url + "/admin/evals/review/next", json={"reviewer": "ana"}, timeout=10).json()
    assert taken["item"]["id"] == items[0]["id"]
    labelled = httpx.post(
        server.url + f"/admin/evals/review/items/{items[0]['id']}/labels",
        json={"reviewer": "ana", "labels": {"quality": 0}},
        timeout=10,
    )
    assert labelled.status_code == 200
    rates = httpx.get(server.url + "/admin/evals/review/agreement", timeout=10).json()["agreement"]
    assert {(r["scorer"], r["items"]) for r in rates} == {("length", 1), ("llm-rubric", 1)}
    # The judge called through the gateway with the key `up` minted for it (no FLEETPLANE_JUDGE_KEY given).
    query = "SELECT key, agent FROM telemetry_spans WHERE prompt_name = 'fleetplane.judge.rubric'"
    deadline = time.monotonic() + 30
    while not (judged := stored(tmp_path / "up.db", query)):
        assert time.monotonic() < deadline, "the judge's span was never stored"
        time.sleep(0.2)
    assert judged == [("fleetplane-judge", "fleetplane-judge")]
