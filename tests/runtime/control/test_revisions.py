"""Agent revisions on SQLite and Postgres: content addressing, numbering, history limit, undo."""

from __future__ import annotations

import pytest

from fleetplane.runtime.revisions import RevisionError, RevisionStore, spec_digest
from fleetplane.store.db import Store

pytestmark = pytest.mark.anyio


def doc(version: int, label: str = "a") -> dict[str, object]:
    return {
        "kind": "Agent",
        "metadata": {"name": "bot", "labels": {"l": label}},
        "spec": {"env": {"V": str(version)}},
    }


async def test_revisions_on_both_stores(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        revisions = RevisionStore(store, history_limit=3)
        first = await revisions.adopt("bot", "m1", doc(1), "/fleet", now=1.0)
        assert first is not None and (first.number, first.cause, first.base_dir) == (1, "apply", "/fleet")
        assert first.digest == spec_digest(doc(1, label="other"))  # labels make no new revision
        assert await revisions.adopt("bot", "m1", doc(1), "/fleet", now=2.0) is None  # adopted already
        for n in (2, 3, 4):
            await revisions.adopt("bot", f"m{n}", doc(n), None, now=float(n))
        history = await revisions.history("bot")
        assert [(r.number, r.document["spec"]) for r in history] == [
            (2, {"env": {"V": "2"}}),
            (3, {"env": {"V": "3"}}),
            (4, {"env": {"V": "4"}}),
        ]  # three kept
        undone = await revisions.undo("bot", now=5.0)
        assert (undone.number, undone.cause, undone.document["spec"]) == (5, "undo", {"env": {"V": "3"}})
        current = await revisions.current()
        assert list(current) == ["bot"] and current["bot"].number == 5
        assert (await revisions.adopted()) == {"bot": "m4"}
        with pytest.raises(RevisionError):
            await revisions.undo("nobody", now=6.0)
        await revisions.forget("bot")
        assert await revisions.adopt("bot", "m4", doc(4), None, now=7.0) is not None  # adopted again
    finally:
        await store.close()
