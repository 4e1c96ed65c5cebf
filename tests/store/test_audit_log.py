"""The audit log: appends chain; editing, removing or truncating an entry is detected and named."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import delete, update

from fleetplane.store.audit import AuditLog
from fleetplane.store.db import Store
from fleetplane.store.tables import audit_log


async def filled(url: str, n: int = 5) -> tuple[Store, AuditLog]:
    store = await Store.open(url)
    log = AuditLog(store)
    for i in range(n):
        await log.append(
            "skill.publish", f"summarize@1.{i}.0", actor="ci", details={"digest": f"d{i}"}, at=1000.0 + i
        )
    return store, log


@pytest.mark.anyio
async def test_an_intact_log_verifies(database_url: str) -> None:
    store, log = await filled(database_url)
    try:
        result = await log.verify()
        assert (result.ok, result.entries) == (True, 5)
        entries = await log.entries()
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
        assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(entries))
    finally:
        await store.close()


@pytest.mark.anyio
async def test_an_edited_entry_is_detected(database_url: str) -> None:
    store, log = await filled(database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
        result = await log.verify()
        assert (result.ok, result.seq) == (False, 3)
        assert result.problem == "entry 3 (skill.publish summarize@1.2.0) was altered"
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_removed_entry_is_detected(database_url: str) -> None:
    store, log = await filled(database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
        result = await log.verify()
        assert (result.ok, result.problem) == (False, "entry 2 is missing (the next is 3)")
    finally:
        await store.close()


@pytest.mark.anyio
async def test_removing_the_newest_entries_is_detected(database_url: str) -> None:
    store, log = await filled(database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(delete(audit_log).where(audit_log.c.seq >= 4))
        result = await log.verify()
        assert (result.ok, result.problem) == (False, "entries after 3 were removed (the head is entry 5)")
    finally:
        await store.close()


@pytest.mark.anyio
async def test_concurrent_appends_form_one_chain(database_url: str) -> None:
    store, log = await filled(database_url, n=0)
    try:
        await asyncio.gather(
            *(log.append("approval.decide", f"run-{i}", actor="ops", at=float(i)) for i in range(20))
        )
        result = await log.verify()
        assert (result.ok, result.entries) == (True, 20)
    finally:
        await store.close()
