"""Checks across documents: every name a manifest refers to exists and fits, each error at the referring line.

A reference to a document that exists but is itself invalid is not reported again: that document has
its own errors, and one cause should give one message.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetplane.manifests.errors import ManifestError, one_of, render_path
from fleetplane.manifests.kinds import (
    Agent,
    Breaker,
    Customer,
    Manifest,
    Model,
    Provider,
    Quota,
    Team,
    User,
    VirtualKey,
)
from fleetplane.manifests.source import YamlDocument

_PATTERN_CHARS = set("*?[")
_LIST_AT_MOST = 10  # past this, a list of every name is noise: suggest the closest one instead


@dataclass
class Declared:
    """Every name the directory declares, from valid and invalid documents alike."""

    names: dict[str, set[str]] = field(default_factory=dict)  # kind -> names
    aliases: set[str] = field(default_factory=set)

    def add(self, kind: str, name: str) -> None:
        self.names.setdefault(kind, set()).add(name)

    def of(self, kind: str) -> set[str]:
        return self.names.get(kind, set())


class _Checker:
    def __init__(self, valid: Sequence[tuple[Manifest, YamlDocument]], declared: Declared) -> None:
        self.valid = {(m.kind, m.name): m for m, _ in valid}
        self.declared = declared
        self.errors: list[ManifestError] = []

    def error(
        self,
        m: Manifest,
        doc: YamlDocument,
        loc: tuple[str | int, ...],
        problem: str,
        expected: str | None = None,
    ) -> None:
        at = doc.locate(loc)
        self.errors.append(
            ManifestError(
                doc.file, at.line, at.column, m.ref, render_path(loc), problem=problem, expected=expected
            )
        )

    def exists(
        self, m: Manifest, doc: YamlDocument, loc: tuple[str | int, ...], kind: str, name: str
    ) -> bool:
        names = self.declared.of(kind)
        if name in names:
            return True
        self.error(m, doc, loc, *_missing(f"no {kind} named '{name}'", name, names, f"no {kind} is defined"))
        return False

    def get(self, kind: type[Manifest], name: str | None) -> Manifest | None:
        return self.valid.get((kind.KIND, name)) if name is not None else None


def check_references(
    valid: Sequence[tuple[Manifest, YamlDocument]], declared: Declared
) -> list[ManifestError]:
    checker = _Checker(valid, declared)
    alias_owner: dict[str, tuple[Manifest, YamlDocument, int]] = {}
    for m, doc in valid:
        if isinstance(m, Provider):
            _check_provider(checker, m, doc)
        elif isinstance(m, Model):
            _check_model(checker, m, doc, alias_owner)
        elif isinstance(m, Team):
            checker.exists(m, doc, ("spec", "organization"), "Organization", m.spec.organization)
        elif isinstance(m, User):
            checker.exists(m, doc, ("spec", "team"), "Team", m.spec.team)
        elif isinstance(m, Customer):
            checker.exists(m, doc, ("spec", "organization"), "Organization", m.spec.organization)
        elif isinstance(m, VirtualKey):
            _check_key(checker, m, doc)
        elif isinstance(m, Quota):
            _check_target(checker, m, doc, m.spec.target.fields())
        elif isinstance(m, Breaker):
            _check_target(checker, m, doc, {m.spec.target.level: m.spec.target.value})
        elif isinstance(m, Agent):
            _check_agent(checker, m, doc)
    return checker.errors


# What a target's field names: the kind whose name it must be ("agent" is a free label until agents exist).
_TARGET_KINDS = {
    "organization": "Organization",
    "team": "Team",
    "user": "User",
    "customer": "Customer",
    "key": "VirtualKey",
}


def _check_agent(checker: _Checker, m: Agent, doc: YamlDocument) -> None:
    if m.spec.team is not None:
        checker.exists(m, doc, ("spec", "team"), "Team", m.spec.team)
    elif len(checker.declared.of("Team")) > 1:
        checker.error(
            m,
            doc,
            ("spec",),
            "several teams are defined: name the one this agent's key belongs to",
            "spec.team",
        )
    if m.spec.declarative is not None:
        model = m.spec.declarative.model
        names = checker.declared.of("Model") | checker.declared.aliases
        if model not in names:
            problem, expected = _missing(
                f"no Model or alias named '{model}'", model, names, "no Model is defined"
            )
            checker.error(m, doc, ("spec", "declarative", "model"), problem, expected)


def _check_target(checker: _Checker, m: Manifest, doc: YamlDocument, fields: dict[str, str]) -> None:
    for field_name, value in fields.items():
        if value == "*":
            continue
        loc = ("spec", "target", field_name)
        if field_name in _TARGET_KINDS:
            checker.exists(m, doc, loc, _TARGET_KINDS[field_name], value)
        elif field_name == "model":
            names = checker.declared.of("Model") | checker.declared.aliases
            if value not in names:
                problem, expected = _missing(
                    f"no Model or alias named '{value}'", value, names, "no Model is defined"
                )
                checker.error(m, doc, loc, problem, expected)
        elif field_name == "deployment":
            provider = value.split("/", 1)[0]
            checker.exists(m, doc, loc, "Provider", provider)


def _check_provider(checker: _Checker, m: Provider, doc: YamlDocument) -> None:
    config = m.spec.sim.config if m.spec.sim else None
    if config and not (doc.path.parent / config).is_file():
        shown = (Path(doc.file).parent / config).as_posix()
        checker.error(m, doc, ("spec", "sim", "config"), f"no such file: {shown}")


def _check_model(
    checker: _Checker, m: Model, doc: YamlDocument, alias_owner: dict[str, tuple[Manifest, YamlDocument, int]]
) -> None:
    for i, deployment in enumerate(m.spec.deployments):
        checker.exists(m, doc, ("spec", "deployments", i, "provider"), "Provider", deployment.provider)
    for j, alias in enumerate(m.spec.aliases):
        loc = ("spec", "aliases", j)
        if alias in checker.declared.of("Model"):
            checker.error(m, doc, loc, f"alias '{alias}' is the name of Model/{alias}")
        elif alias in alias_owner:
            owner, owner_doc, index = alias_owner[alias]
            at = owner_doc.locate(("spec", "aliases", index))
            where = f"{owner_doc.file}:{at.line}:{at.column}"
            checker.error(m, doc, loc, f"alias '{alias}' is already an alias of {owner.ref} ({where})")
        else:
            alias_owner[alias] = (m, doc, j)


def _check_key(checker: _Checker, m: VirtualKey, doc: YamlDocument) -> None:
    spec = m.spec
    checker.exists(m, doc, ("spec", "team"), "Team", spec.team)
    team = checker.get(Team, spec.team)
    if spec.user is not None and checker.exists(m, doc, ("spec", "user"), "User", spec.user):
        user = checker.get(User, spec.user)
        if isinstance(user, User) and user.spec.team != spec.team:
            problem = f"User/{spec.user} belongs to Team/{user.spec.team}, not Team/{spec.team}"
            checker.error(m, doc, ("spec", "user"), problem)
    if spec.customer is not None and checker.exists(m, doc, ("spec", "customer"), "Customer", spec.customer):
        customer = checker.get(Customer, spec.customer)
        if (
            isinstance(customer, Customer)
            and isinstance(team, Team)
            and customer.spec.organization != team.spec.organization
        ):
            problem = (
                f"Customer/{spec.customer} belongs to Organization/{customer.spec.organization}, "
                f"but Team/{spec.team} belongs to Organization/{team.spec.organization}"
            )
            checker.error(m, doc, ("spec", "customer"), problem)
    callable_names = checker.declared.of("Model") | checker.declared.aliases
    for i, entry in enumerate(spec.models):
        if _PATTERN_CHARS.isdisjoint(entry) and entry not in callable_names:
            problem, expected = _missing(
                f"no Model or alias named '{entry}'", entry, callable_names, "no Model is defined"
            )
            checker.error(m, doc, ("spec", "models", i), problem, expected)


def _missing(problem: str, name: str, names: set[str], none: str) -> tuple[str, str | None]:
    """The problem and what was expected: the names there are, or the closest one when there are many."""
    if not names:
        return f"{problem}; {none}", None
    if len(names) <= _LIST_AT_MOST:
        return problem, one_of(sorted(names))
    close = difflib.get_close_matches(name, sorted(names), n=1)
    return (f"{problem}; did you mean '{close[0]}'?" if close else problem), None
