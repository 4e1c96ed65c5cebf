"""A/B on live traffic: two model groups (or two prompt versions) split by a hash, compared on the online
scores once enough pairs arrived.

Split: `assign(test, key)` puts a key (a trace, conversation or user id: what should stick) in arm A when
sha256("ab:<test>:<key>") read as a fraction of 2**64 is below `split`, else in arm B. The hash is salted
with the test's name, so arms are independent of the online judge sample and of other tests. Callers
(agents, pipelines) ask for the arm and send the request to its model or prompt version; the gateway is
not changed, and the online evaluator scores both arms as it scores all traffic.

Pairing: on live traffic each request is answered by one arm only, so a difference of arm means mixes the
arms' quality with the traffic each happened to get. The report therefore pairs answers to the *same
input* (the sha256 of the input messages the evaluator stores): repeated questions, templated requests,
or a replayed slice. Per input, each arm's scores are averaged; the paired difference B - A over those
inputs gets a paired bootstrap interval (seed recorded). Until `min_pairs` inputs have answers from both
arms the report says it is waiting, and shows the unpaired arm means for information only.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from fleetplane.evals.stats import bootstrap_mean, paired_bootstrap
from fleetplane.store.db import Store
from fleetplane.store.evals_online import eval_online_items, eval_online_scores


@dataclass(frozen=True)
class Arm:
    model: str | None = None
    prompt_version: str | None = None

    def __post_init__(self) -> None:
        if (self.model is None) == (self.prompt_version is None):
            raise ValueError("an arm is exactly one of a model group or a prompt version")

    def label(self) -> str:
        return f"model {self.model}" if self.model is not None else f"prompt version {self.prompt_version}"

    def holds(self, model: str | None, prompt_version: str | None) -> bool:
        return model == self.model if self.model is not None else prompt_version == self.prompt_version


@dataclass(frozen=True)
class ABTest:
    name: str
    a: Arm
    b: Arm
    split: float = 0.5  # the share of keys in arm A
    min_pairs: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.split < 1:
            raise ValueError(f"A/B test {self.name!r}: split must be between 0 and 1, got {self.split}")
        if self.a == self.b:
            raise ValueError(f"A/B test {self.name!r}: the two arms are the same")

    def assign(self, key: str) -> str:
        digest = hashlib.sha256(f"ab:{self.name}:{key.lower()}".encode()).digest()
        return "a" if int.from_bytes(digest[:8], "big") / 2**64 < self.split else "b"

    def arm(self, key: str) -> Arm:
        return self.a if self.assign(key) == "a" else self.b


@dataclass(frozen=True)
class DimensionReport:
    dimension: str
    scorer: str
    pairs: int
    a_mean: float | None  # unpaired, all scored answers of the arm
    b_mean: float | None
    a_n: int
    b_n: int
    difference: float | None = None  # paired mean of B - A over inputs answered by both
    low: float | None = None
    high: float | None = None
    ready: bool = False

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def report(store: Store, test: ABTest, *, since: float | None = None) -> dict[str, Any]:
    """Per scorer and dimension: arm means, pairs by input, and the paired difference B - A when ready.
    Answers whose arm does not match the hash split of their trace are counted as misrouted, not used."""
    query = (
        select(
            eval_online_items.c.trace_id,
            eval_online_items.c.model,
            eval_online_items.c.prompt_version,
            eval_online_items.c.input_digest,
            eval_online_scores.c.scorer,
            eval_online_scores.c.dimension,
            eval_online_scores.c.value,
        )
        .join(
            eval_online_scores,
            (eval_online_scores.c.trace_id == eval_online_items.c.trace_id)
            & (eval_online_scores.c.span_id == eval_online_items.c.span_id),
        )
        .where(eval_online_scores.c.tier != "human")
    )
    if since is not None:
        query = query.where(eval_online_items.c.start_ns >= int(since * 1e9))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    misrouted: set[str] = set()
    # (scorer, dimension) -> arm -> input digest -> values
    values: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = defaultdict(lambda: {"a": {}, "b": {}})
    for r in rows:
        arm = (
            "a"
            if test.a.holds(r.model, r.prompt_version)
            else "b"
            if test.b.holds(r.model, r.prompt_version)
            else None
        )
        if arm is None:
            continue
        if test.assign(r.trace_id) != arm:
            misrouted.add(r.trace_id)
            continue
        values[(r.scorer, r.dimension)][arm].setdefault(r.input_digest or f"trace:{r.trace_id}", []).append(
            r.value
        )
    dimensions = [_dimension(test, key, arms) for key, arms in sorted(values.items())]
    return {
        "test": test.name,
        "a": test.a.label(),
        "b": test.b.label(),
        "split": test.split,
        "min_pairs": test.min_pairs,
        "seed": test.seed,
        "misrouted": len(misrouted),
        "dimensions": [d.as_json() for d in dimensions],
    }


def _dimension(
    test: ABTest, key: tuple[str, str], arms: dict[str, dict[str, list[float]]]
) -> DimensionReport:
    scorer, dimension = key
    a_all = [v for vs in arms["a"].values() for v in vs]
    b_all = [v for vs in arms["b"].values() for v in vs]
    shared = sorted(set(arms["a"]) & set(arms["b"]))
    base = DimensionReport(
        dimension,
        scorer,
        len(shared),
        bootstrap_mean(a_all, seed=test.seed).estimate if a_all else None,
        bootstrap_mean(b_all, seed=test.seed).estimate if b_all else None,
        len(a_all),
        len(b_all),
    )
    if len(shared) < test.min_pairs:
        return base
    diffs = [sum(arms["b"][k]) / len(arms["b"][k]) - sum(arms["a"][k]) / len(arms["a"][k]) for k in shared]
    paired = paired_bootstrap(diffs, seed=test.seed)
    return DimensionReport(
        **{
            **base.__dict__,
            "difference": paired.estimate,
            "low": paired.low,
            "high": paired.high,
            "ready": True,
        }
    )
