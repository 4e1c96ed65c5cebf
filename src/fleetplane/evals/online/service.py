"""What the server composes from the evals wing: the review and feedback API, and — when an online evals
file is configured (`FLEETPLANE_ONLINE_EVALS`) and telemetry stores spans — the online evaluator, started
and stopped with the server. Judges call the server's own gateway (or `FLEETPLANE_GATEWAY_URL`) with the
virtual key in `FLEETPLANE_JUDGE_KEY`."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from fleetplane.evals.judges.client import GATEWAY_ENV, JudgeClient
from fleetplane.evals.judges.family import FamilyError, ModelCatalog, check_family
from fleetplane.evals.online.config import ENV, ConfigError, OnlineConfig, load_config
from fleetplane.evals.online.evaluator import OnlineEvaluator
from fleetplane.evals.review.api import review_routes
from fleetplane.evals.scoring import ScorerError
from fleetplane.store.db import Store

log = logging.getLogger("fleetplane.evals")


@dataclass
class EvalsService:
    store: Store
    config: OnlineConfig | None = None
    spans: Any = None  # telemetry's SpanStore, when telemetry is on
    telemetry: Any = None
    gateway_url: str = "http://127.0.0.1:8700"
    environ: Mapping[str, str] | None = None
    evaluator: OnlineEvaluator | None = None
    _client: JudgeClient | None = None

    @classmethod
    def create(
        cls,
        store: Store,
        *,
        spans: Any = None,
        telemetry: Any = None,
        gateway_url: str = "http://127.0.0.1:8700",
        catalog: ModelCatalog | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EvalsService:
        """Reads the online evals file named by the environment and builds its scorers now, so a bad file,
        scorer or judge (a same-family judge among them) stops startup with one line (`ConfigError`).
        `catalog`: the fleet's Model manifests (judge families and prices)."""
        env = os.environ if environ is None else environ
        path = env.get(ENV, "").strip()
        config = load_config(path) if path else None
        service = cls(store, config, spans, telemetry, gateway_url, env)
        if config is not None and spans is not None:
            client = JudgeClient.from_env(catalog or ModelCatalog(), {GATEWAY_ENV: gateway_url, **env})
            try:
                service.evaluator = OnlineEvaluator.from_config(
                    spans, config, judge_params={"client": client}, telemetry=telemetry
                )
                check_rule_judges(config, client.catalog)
            except ScorerError as exc:
                raise ConfigError(f"{path}: {exc}") from None
            service._client = client
        return service

    def routes(self) -> list[Route]:
        return review_routes(self.store)

    async def start(self) -> None:
        if self.config is not None and self.evaluator is None:
            log.warning("online evals are configured but telemetry is off: nothing to score")
        if self.evaluator is not None:
            await self.evaluator.start()

    async def stop(self) -> None:
        if self.evaluator is not None:
            await self.evaluator.stop()
        if self._client is not None:
            await self._client.aclose()


def check_rule_judges(config: OnlineConfig, catalog: ModelCatalog) -> None:
    """A rule that names a model must not be judged by that model's family (unless the judge allows it):
    refused at startup rather than item by item."""
    if config.judge is None:
        return
    params = config.judge.params
    raw = params.get("judges") or params.get("judge")
    judges = [raw] if isinstance(raw, str) else list(raw or [])
    allow = bool(params.get("allowSameFamily") or params.get("allow_same_family"))
    for rule in config.rules:
        if rule.model is None:
            continue
        for judge in judges:
            try:
                check_family(str(judge), rule.model, catalog, allow_same_family=allow)
            except FamilyError as exc:
                raise FamilyError(f"rule {rule.name!r}: {exc}") from None


JUDGE_KEY_NAME = "fleetplane-judge"


async def mint_judge_key(store: Store, teams: list[tuple[str, str]], now: float) -> str | None:
    """A fresh secret for the judges' own virtual key (`fleetplane-judge`, agent `fleetplane-judge`, in the
    first team) when none is configured: `fleetplane up` calls this before serving, so judge calls are
    authenticated, charged and traced like everyone's. `teams`: (team, organization) pairs."""
    return await mint_own_key(store, JUDGE_KEY_NAME, teams, now)


async def mint_own_key(store: Store, name: str, teams: list[tuple[str, str]], now: float) -> str | None:
    """A fresh secret for the evals wing's own virtual key `name` (also its agent), in the first team; the
    previous start's secret stops working. None when the fleet has no team to charge."""
    from fleetplane.store.keys import KeyRepository, NewKey, new_secret

    if not teams:
        return None
    team, organization = sorted(teams)[0]
    keys = KeyRepository(store)
    if await keys.get(name) is not None:
        await keys.delete(name)
    secret = new_secret()
    made = NewKey(name=name, organization=organization, team=team, agent=name, source="up")
    await keys.create(made, secret=secret, now=now)
    return secret
