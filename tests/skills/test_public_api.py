"""The skills wing as the pipelines wing uses it (`fleetplane.pipelines.skillapi`): its helpers build this
wing's own `SkillRef` and `SkillContext`, and a catalog from its factory resolves, loads and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from skilltools import FIXTURES

from fleetplane.pipelines import skillapi
from fleetplane.skills import SkillCatalog, SkillContext, SkillError, SkillRef, SkillRegistry
from fleetplane.store.db import Store

pytestmark = pytest.mark.anyio


async def test_the_pipelines_wing_gets_our_types(sqlite_url: str, tmp_path: Path) -> None:
    store = await Store.open(sqlite_url)
    try:
        home = tmp_path / "home"
        published = await SkillRegistry(store, home).publish(FIXTURES / "send-refund", actor="ann")
        catalogs = skillapi.default_catalogs(store, str(home))
        catalog = catalogs(False)
        assert isinstance(catalog, SkillCatalog) and catalogs(False) is catalog
        ref = await catalog.resolve("send-refund", "^2", run_id="r1")
        pinned = skillapi.make_ref({"name": ref.name, "version": ref.version, "digest": ref.digest})
        assert isinstance(pinned, SkillRef) and pinned == published.ref
        skill = await catalog.load(pinned)
        contract = skill.contract
        assert (contract.effects.kind, contract.effects.at_most_once, contract.effects.reconcile) == (
            "external",
            True,
            "refunds:find",
        )
        assert (contract.retry.max_attempts, contract.retry.retry_on, contract.timeout) == (
            4,
            ("transient", "timeout"),
            30.0,
        )
        ctx = skillapi.make_context(run_id="r1", step_id="pay", attempt=1, idempotency_key="r1:pay")
        assert isinstance(ctx, SkillContext)
        out = await skill.invoke({"order": "ord-5", "amount": 5}, ctx)
        assert await skill.reconcile({"order": "ord-5", "amount": 5}, ctx) == out
        with pytest.raises(SkillError) as caught:
            await skill.invoke({"order": "x", "amount": 5}, ctx)
        assert skillapi.error_kind(caught.value) == "invalid_input"
        # A catalog for a policy that requires signatures refuses the unsigned skill.
        with pytest.raises(SkillError) as caught:
            await catalogs(True).load(pinned)
        assert caught.value.message == (
            "send-refund@2.1.0 is not signed (no skill.dsse.json) and signing is required"
        )
    finally:
        await store.close()
