"""A suite ready to run: the `EvalSuite` manifest found by name (or file), its cases read from every
case file, and its scorers made from the registry — or every problem, at file:line.

`load_suite(path, name)` reads `path` (a manifest directory, such as the fleet, or one file) with the
manifest loader, so a suite is checked with everything it refers to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetplane.evals.cases import Case, check_unique, from_spec
from fleetplane.evals.importers import read_cases
from fleetplane.evals.judges.suite import JUDGE_TYPES, suite_judge_params
from fleetplane.evals.scoring import Scorer, ScorerError, make_scorer, scorer_types
from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.errors import ManifestError, ManifestErrors
from fleetplane.manifests.evalsuite import Dimension, EvalSuite
from fleetplane.manifests.loader import load
from fleetplane.manifests.source import YamlDocument, read_yaml


class SuiteNotFound(LookupError):
    pass


@dataclass(frozen=True)
class LoadedDimension:
    spec: Dimension
    scorers: list[tuple[float, Scorer]]  # (weight, scorer)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def raw(self) -> bool:
        """Raw-number dimensions (cost, latency, tokens) are averaged, not thresholded as ratios."""
        return all(s.tier == "usage" for _, s in self.scorers)


@dataclass(frozen=True)
class LoadedSuite:
    manifest: EvalSuite
    file: str  # where the suite is written
    cases: list[Case]
    dimensions: list[LoadedDimension]
    state: DesiredState

    @property
    def name(self) -> str:
        return self.manifest.name


def find_suite(state: DesiredState, name: str, where: str) -> EvalSuite:
    suite = state.get(EvalSuite, name)
    if suite is None:
        names = sorted(s.name for s in state.of_kind(EvalSuite))
        known = f"; suites there: {', '.join(names)}" if names else "; there is no EvalSuite there"
        raise SuiteNotFound(f"no EvalSuite named {name!r} in {where}{known}")
    return suite


def load_suite(
    path: str | Path, name: str | None = None, *, prepare: Callable[[DesiredState], None] | None = None
) -> LoadedSuite:
    """Load the suite `name` from `path` (the only suite there when `name` is None).

    `prepare(state)` runs before the scorers are made (the CLI points judges at the gateway and the
    fleet's model catalog there, so a same-family judge is refused at load). Raises `SuiteNotFound`,
    `FileNotFoundError` or `ManifestErrors` (file:line of every problem).
    """
    state = load(path)
    if prepare is not None:
        prepare(state)
    if name is None:
        suites = state.of_kind(EvalSuite)
        if len(suites) != 1:
            raise SuiteNotFound(
                f"{path} holds {len(suites)} EvalSuites; name one: {', '.join(s.name for s in suites)}"
            )
        suite = suites[0]
    else:
        suite = find_suite(state, name, str(path))
    origin = state.origin(suite)
    docs, _ = read_yaml(origin.path, origin.file)
    doc = docs[origin.document]
    dimensions = _dimensions(suite, doc)
    cases = [
        from_spec(c, f"{origin.file}:{doc.locate(('spec', 'cases', i)).line}")
        for i, c in enumerate(suite.spec.cases)
    ]
    errors: list[ManifestError] = []
    for i, ref in enumerate(suite.spec.case_files):
        file = Path(ref.path) if Path(ref.path).is_absolute() else origin.path.parent / ref.path
        try:
            cases.extend(read_cases(file, str(file), ref.format))
        except ManifestErrors as exc:
            errors.extend(exc.errors)
        except FileNotFoundError:
            at = doc.locate(("spec", "caseFiles", i, "path"))
            errors.append(
                ManifestError(
                    origin.file,
                    at.line,
                    at.column,
                    suite.ref,
                    f"spec.caseFiles[{i}].path",
                    problem=f"no such file: {file}",
                )
            )
    if errors:
        raise ManifestErrors(errors)
    check_unique(cases)
    return LoadedSuite(suite, origin.file, cases, dimensions, state)


def _dimensions(suite: EvalSuite, doc: YamlDocument) -> list[LoadedDimension]:
    errors: list[ManifestError] = []
    out = []
    for i, dim in enumerate(suite.spec.dimensions):
        scorers: list[tuple[float, Scorer]] = []
        for j, ref in enumerate(dim.scorers):
            loc: tuple[str | int, ...] = ("spec", "dimensions", i, "scorers", j)
            # Judges take the suite's defaults: its judge, its same-family override, a model target.
            params = suite_judge_params(suite.spec, ref.params) if ref.type in JUDGE_TYPES else ref.params
            try:
                scorers.append((ref.weight, make_scorer(ref.type, params)))
            except ScorerError as exc:
                key = "type" if ref.type not in scorer_types() else exc.param
                at = doc.locate((*loc, key) if key else loc)
                path = f"spec.dimensions[{i}].scorers[{j}]" + (f".{key}" if key else "")
                errors.append(ManifestError(doc.file, at.line, at.column, suite.ref, path, problem=str(exc)))
        tiers = {s.tier == "usage" for _, s in scorers}
        if len(tiers) > 1:
            at = doc.locate(("spec", "dimensions", i, "scorers"))
            errors.append(
                ManifestError(
                    doc.file,
                    at.line,
                    at.column,
                    suite.ref,
                    f"spec.dimensions[{i}].scorers",
                    problem="cost, latency and tokens are raw numbers and cannot be averaged with 0-1 scores",
                    expected="a dimension of their own",
                )
            )
        out.append(LoadedDimension(dim, scorers))
    if errors:
        raise ManifestErrors(errors)
    return out
