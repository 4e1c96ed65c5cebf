"""What `fleetplane up` builds from FLEETPLANE_ONLINE_EVALS: nothing without it, the evaluator with it, and a
one-line `ConfigError` naming the file and field for a bad file, scorer or same-family judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetplane.evals.judges import ModelCatalog, ModelInfo
from fleetplane.evals.online.config import ConfigError
from fleetplane.evals.online.service import EvalsService
from fleetplane.store.db import Store
from fleetplane.telemetry.spanstore import SpanStore

pytestmark = pytest.mark.anyio
CATALOG = ModelCatalog({"fast": ModelInfo("fast", "gpt"), "claude": ModelInfo("claude", "claude")})
GOOD = "cheap: [{type: length, min: 3}]\njudge: {type: llm-rubric, judge: claude, rubric: r}\n"


async def build(tmp_path: Path, text: str | None) -> EvalsService:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.close()
    env = {}
    if text is not None:
        (tmp_path / "online.yaml").write_text(text)
        env["FLEETPLANE_ONLINE_EVALS"] = str(tmp_path / "online.yaml")
    return EvalsService.create(store, spans=SpanStore(store), catalog=CATALOG, environ=env)


async def test_without_the_file_there_is_only_the_review_api(tmp_path: Path) -> None:
    service = await build(tmp_path, None)
    assert service.evaluator is None and service.config is None
    assert [r.path for r in service.routes()] == [
        "/admin/evals/review/items",
        "/admin/evals/review/next",
        "/admin/evals/review/items/{item_id}/labels",
        "/admin/evals/review/agreement",
        "/admin/evals/feedback",
    ]


async def test_with_the_file_the_evaluator_is_built(tmp_path: Path) -> None:
    service = await build(tmp_path, GOOD + "rules: [{name: fast, rate: 0.05, model: fast}]\n")
    assert service.evaluator is not None
    assert [r.name for r in service.evaluator.rules] == ["fast"]
    assert [c.name for c in service.evaluator.cheap] == ["length"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: []\n", "rules: List should have at least 1 item"),
        ("rules: [{name: x, rate: 2}]\n", "rules.0.rate: Input should be less than or equal to 1"),
        ("cheap: [{type: nope}]\nrules: [{name: x, rate: 1}]\n", "unknown scorer type 'nope'"),
        ("cheap: [{type: length, min: 3, bogus: 1}]\nrules: [{name: x, rate: 1}]\n", "bogus"),
        (
            GOOD.replace("claude", "nope") + "rules: [{name: x, rate: 1}]\n",
            "judge model 'nope' is not a Model",
        ),
        (
            GOOD.replace("judge: claude", "judge: fast") + "rules: [{name: x, rate: 1, model: fast}]\n",
            "rule 'x': judge 'fast' is of family 'gpt', the same as target 'fast'",
        ),
        ("- a list\n", "expected a mapping with 'rules', got list"),
    ],
)
async def test_a_bad_file_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await build(tmp_path, text)
    assert str(caught.value).startswith(f"{tmp_path / 'online.yaml'}: ")
    assert message in str(caught.value) and "\n" not in str(caught.value)


async def test_a_file_that_is_not_yaml_is_one_line_at_its_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await build(tmp_path, "rules: [1, 2\n")
    assert str(caught.value) == (
        f"{tmp_path / 'online.yaml'}:2:1: not YAML: expected ',' or ']', but got '<stream end>'"
    )
