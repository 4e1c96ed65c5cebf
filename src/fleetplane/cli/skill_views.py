"""How `fleetplane skill` shows the registry: tables of versions and updates, one version in detail, an
eval report."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from fleetplane.cli.common import console, format_time
from fleetplane.skills.channels import Channel
from fleetplane.skills.evalrun import EvalReport
from fleetplane.skills.outdated import Update
from fleetplane.skills.registry import PublishedVersion


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def show_channel_table(versions: list[PublishedVersion], channels: dict[str, Channel]) -> None:
    if not versions:
        console.print("no skills published", markup=False)
        return
    table = Table()
    # Narrow enough for 80 columns; `show` has the full digest, signer and publication.
    for column in ("NAME", "VERSION", "SERVES", "DIGEST", "SIGNER", "EVAL", "EFFECTS"):
        table.add_column(column, no_wrap=column in ("NAME", "VERSION"))
    for v in versions:
        channel = channels.get(v.name)
        serves = ""
        if channel is not None and channel.version == v.version:
            serves = "stable" if not channel.canary_version else f"stable {100 - channel.canary_percent}%"
        elif channel is not None and channel.canary_version == v.version:
            serves = f"canary {channel.canary_percent}%"
        table.add_row(
            v.name,
            v.version,
            serves,
            v.ref.digest.removeprefix("sha256:")[:8],
            v.signer[:8] if v.signer else "unsigned",
            _score(v.eval_score),
            v.contract.effects.kind,
        )
    console.print(table)


def show_version(v: PublishedVersion, channel: Channel | None, history: list[dict[str, Any]]) -> None:
    c = v.contract
    lines = [
        f"{v.name}@{v.version}  {v.ref.digest}",
        f"  {c.description}",
        f"  published {format_time(v.published_at)} by {v.published_by}; {v.files} files, {v.size} bytes; "
        f"{'signed by key ' + v.signer if v.signer else 'unsigned'}",
        f"  effects: {c.effects.kind}"
        + (", idempotent" if c.effects.idempotent else "")
        + (", at-most-once" if c.effects.at_most_once else "")
        + (f", reconcile {c.effects.reconcile}" if c.effects.reconcile else ""),
        f"  retry: {c.retry.max_attempts} attempts, back-off {c.retry.base:g}s..{c.retry.cap:g}s on "
        f"{', '.join(c.retry.retry_on)}; timeout {c.timeout:g}s",
    ]
    if c.model:
        lines.append(f"  model group: {c.model}")
    for tool in c.tools:
        rule = f"approval {tool.approval}" + (f" ({tool.when})" if tool.when else "")
        lines.append(f"  tool {tool.name}: {rule}")
    if c.guardrails:
        lines.append(
            f"  guardrails: {', '.join(g['type'] + ' on ' + g.get('on', 'both') for g in c.guardrails)}"
        )
    score = _score(v.eval_score)
    lines.append(
        f"  eval score: {score}" + (f" (threshold {v.eval_threshold:.2f})" if v.eval_threshold else "")
    )
    if channel is not None:
        canary = (
            f"; canary {channel.canary_version} at {channel.canary_percent}%"
            if channel.canary_version
            else ""
        )
        back = f"; rollback to {channel.previous_version}" if channel.previous_version else ""
        lines.append(f"serving: {channel.version}{canary}{back} (generation {channel.generation})")
    for h in history:
        was = f" from {h['from_version']}" if h["from_version"] else ""
        share = f" {h['canary_percent']}%" if h["action"] == "canary" else ""
        when = format_time(h["at"])
        lines.append(f"  {when} {h['action']}{share} {h['version']}{was} by {h['actor']}: {h['reason']}")
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def show_report(report: EvalReport) -> None:
    for case in report.cases:
        mark = "pass" if case.passed else "FAIL"
        console.print(f"{mark} {case.id} ({case.score:.2f})", markup=False)
        for failure in case.failures:
            console.print(f"     {failure}", markup=False, soft_wrap=True)
    verdict = "passed" if report.passed else "FAILED"
    console.print(
        f"eval suite {verdict}: score {report.score:.2f}, threshold {report.threshold:.2f}, "
        f"{len(report.cases)} cases",
        markup=False,
    )


def show_outdated(updates: list[Update]) -> None:
    if not updates:
        console.print("every locked skill is up to date", markup=False)
        return
    table = Table()
    for column in ("NAME", "CONSTRAINT", "LOCKED", "AVAILABLE", "SERVING", "EVAL DELTA", "NEW PERMISSIONS"):
        table.add_column(column)
    for u in updates:
        delta = "-" if u.eval_delta is None else f"{u.eval_delta:+.2f}"
        table.add_row(
            u.name, u.constraint, u.pinned, u.version, "yes" if u.serving else "", delta,
            "; ".join(u.new_permissions) or "none",
        )  # fmt: skip
    console.print(table)
