"""Fixtures for the pipelines' tests: a store, an in-test skill catalog, a manual clock, an effects log,
and `make_plan` to compile a pipeline written inline."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from fakeskills import EFFECTS_ENV, FakeCatalog

from fleetplane.manifests.pipeline import Pipeline
from fleetplane.pipelines.context import Deps
from fleetplane.pipelines.plan import Plan, compile_plan
from fleetplane.state.clock import ManualClock
from fleetplane.store.db import Store


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "effects.jsonl"
    monkeypatch.setenv(EFFECTS_ENV, str(path))
    return path


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def clock() -> ManualClock:
    import time

    return ManualClock(start=time.time())


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(sqlite_url)
    yield opened
    await opened.close()


@pytest.fixture
async def deps(
    store: Store, catalog: FakeCatalog, clock: ManualClock, effects: Path, tmp_path: Path
) -> AsyncIterator[Deps]:
    made = Deps(store=store, catalogs=lambda _signed: catalog, clock=clock, sink_root=tmp_path / "sinks")
    yield made
    await made.http.aclose()


def compile_text(text: str) -> Plan:
    document = yaml.safe_load(textwrap.dedent(text))
    document.setdefault("apiVersion", "fleetplane.dev/v1alpha1")
    document.setdefault("kind", "Pipeline")
    return compile_plan(Pipeline.model_validate(document))


@pytest.fixture
def make_plan() -> Callable[[str], Plan]:
    return compile_text
