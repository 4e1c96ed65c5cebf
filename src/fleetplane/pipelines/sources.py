"""Where plans come from: a directory of manifests (errors at file:line), or the applied state."""

from __future__ import annotations

from pathlib import Path

from fleetplane.manifests.errors import ManifestError, ManifestErrors
from fleetplane.manifests.loader import load
from fleetplane.manifests.pipeline import Pipeline
from fleetplane.manifests.pipeline_md import MARKDOWN_SUFFIX, read_markdown
from fleetplane.manifests.source import YamlDocument, read_yaml
from fleetplane.pipelines.plan import Loc, Locator, Plan, compile_plan
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store


class PipelineNotFound(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        shown = ", ".join(sorted(known)) or "none is applied"
        super().__init__(f"no Pipeline named '{name}' (known: {shown})")


def load_plans(path: str | Path) -> dict[str, Plan]:
    """Every Pipeline under `path`, compiled; one `ManifestErrors` with every problem otherwise."""
    desired = load(path)
    plans: dict[str, Plan] = {}
    errors: list[ManifestError] = []
    for pipeline in desired.of_kind(Pipeline):
        origin = desired.origin(pipeline)
        document = _document(origin.path, origin.file, origin.document)
        try:
            plans[pipeline.name] = compile_plan(pipeline, _locator(document, origin.file))
        except ManifestErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise ManifestErrors(errors)
    return plans


def _document(path: Path, display: str, index: int) -> YamlDocument | None:
    read = read_markdown if path.name.endswith(MARKDOWN_SUFFIX) else read_yaml
    documents, _ = read(path, display)
    return documents[index] if index < len(documents) else None


def _locator(document: YamlDocument | None, file: str) -> Locator:
    def locate(loc: Loc) -> tuple[str, int, int]:
        if document is None:
            return file, 1, 1
        at = document.locate(loc)
        return file, at.line, at.column

    return locate


async def applied_plan(store: Store, name: str) -> Plan:
    """The plan of the Pipeline applied under `name`; `PipelineNotFound` or `ManifestErrors` otherwise."""
    applied = await AppliedRepository(store).all()
    found = applied.get(("Pipeline", name))
    if found is None:
        raise PipelineNotFound(name, [n for k, n in applied if k == "Pipeline"])
    pipeline = Pipeline.model_validate(found.document)
    source = found.source or f"Pipeline/{name}"
    return compile_plan(pipeline, lambda _loc: (source, 1, 1))


async def applied_pipelines(store: Store) -> dict[str, Pipeline]:
    applied = await AppliedRepository(store).all()
    return {n: Pipeline.model_validate(d.document) for (k, n), d in applied.items() if k == "Pipeline"}
