"""`fleetplane review`: the human review queue, read and written straight in the database.

`list` shows the queue; `next` assigns the oldest open item to a reviewer (or shows the one they hold)
with what it asked and answered and why it is there; `label` records labels per dimension (values in
[0, 1]) with a comment; `agreement` reports how often each judge and cheap scorer agrees with the labels.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from fleetplane.cli.common import DatabaseURL, console, fail, format_time, now, with_store
from fleetplane.cli.ids import resolve_id
from fleetplane.evals.review import Agreement, ReviewError, ReviewItem, ReviewQueue, agreement
from fleetplane.store.db import Store
from fleetplane.store.evals_online import review_items

review_app = typer.Typer(
    name="review",
    help="The human review queue: list items, take the next one, label it; agreement with the scorers.",
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Reviewer = Annotated[
    str, typer.Option("--reviewer", "-r", help="Who is reviewing.", envvar="FLEETPLANE_REVIEWER")
]


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("list")
def list_items(
    status: Annotated[str | None, typer.Option(help="open, assigned or labelled.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many items.")] = 50,
    as_json: Json = False,
    database_url: DatabaseURL = None,
) -> None:
    """The queue, oldest first: why each item is there, its status and reviewer."""
    if status is not None and status not in ("open", "assigned", "labelled"):
        fail(f"--status {status!r}: expected open, assigned or labelled")
    if limit < 1:
        fail(f"--limit {limit}: expected 1 or more")
    items = with_store(database_url, lambda store: ReviewQueue(store).items(status=status, limit=limit))
    if as_json:
        console.print_json(json.dumps([i.as_json() for i in items]))
        return
    if not items:
        console.print("the review queue is empty" if status is None else f"no {status} items")
        return
    table = Table("item", "source", "reasons", "status", "reviewer", "queued (UTC)", "trace")
    for i in items:
        table.add_row(
            i.id,
            i.source,
            ", ".join(i.reasons),
            i.status,
            i.assignee or "-",
            format_time(i.created_at),
            i.trace_id,
        )
    console.print(table)


@review_app.command("next")
def next_item(reviewer: Reviewer, as_json: Json = False, database_url: DatabaseURL = None) -> None:
    """Take the next item (the one you hold, else the oldest open one) and show it."""
    if not reviewer.strip():
        fail("--reviewer: expected a name")
    item = with_store(database_url, lambda store: ReviewQueue(store).next(reviewer.strip(), now()))
    if as_json:
        console.print_json(json.dumps(item.as_json() if item else None))
        return
    if item is None:
        console.print("nothing to review")
        return
    _show(item)
    console.print(
        f"label it: fleetplane review label {item.id} -r {reviewer.strip()} DIMENSION=0..1 --comment '...'",
        markup=False,
    )


@review_app.command("label")
def label(
    item_id: Annotated[str, typer.Argument(help="The review item's id (or a unique prefix of it).")],
    labels: Annotated[
        list[str], typer.Argument(help="DIMENSION=VALUE pairs, values in [0, 1] (0 bad, 1 good).")
    ],
    reviewer: Reviewer,
    comment: Annotated[str | None, typer.Option(help="Why, in a sentence.")] = None,
    database_url: DatabaseURL = None,
) -> None:
    """Label an item on one or more dimensions."""
    parsed: dict[str, float] = {}
    for pair in labels:
        dimension, sep, raw = pair.partition("=")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not sep or not dimension.strip() or not 0 <= value <= 1:
            fail(f"label {pair!r}: expected DIMENSION=VALUE with a value in [0, 1], e.g. quality=0.5")
        parsed[dimension.strip()] = value

    async def write(store: Store) -> ReviewItem | str:
        try:
            full = await resolve_id(store, review_items.c.id, item_id, "review item")
            return await ReviewQueue(store).label(full, reviewer.strip(), parsed, comment=comment, now=now())
        except ReviewError as exc:
            return str(exc)

    result = with_store(database_url, write)
    if isinstance(result, str):
        fail(result)
    console.print(
        f"labelled {result.id}: " + ", ".join(f"{d}={v:g}" for d, v in parsed.items()), markup=False
    )


@review_app.command("agreement")
def agreement_report(
    threshold: Annotated[float, typer.Option(help="Pass/fail cut for both sides, in [0, 1].")] = 0.5,
    as_json: Json = False,
    database_url: DatabaseURL = None,
) -> None:
    """How often each judge and cheap scorer agrees with the human labels (pass/fail at the threshold)."""
    if not 0 <= threshold <= 1:
        fail(f"--threshold {threshold}: expected a value in [0, 1]")
    rates: list[Agreement] = with_store(database_url, lambda store: agreement(store, threshold=threshold))
    if as_json:
        console.print_json(json.dumps([a.as_json() for a in rates]))
        return
    if not rates:
        console.print("no labelled item has a machine score yet")
        return
    table = Table("scorer", "tier", "dimension", "items", "agreement", "mean |diff|")
    for a in rates:
        table.add_row(a.scorer, a.tier, a.dimension, str(a.items), f"{a.rate:.0%}", f"{a.mean_abs_diff:.2f}")
    console.print(table)


def _show(item: ReviewItem) -> None:
    subject = item.subject
    asked = (
        "\n".join(f"{m.get('role')}: {m.get('content')}" for m in subject.get("input") or [])
        or "(not captured)"
    )
    body = (
        f"[bold]why[/]: {escape(', '.join(item.reasons))} ({item.source})\n"
        f"[bold]trace[/]: {item.trace_id} span {item.span_id}\n"
        f"[bold]finish[/]: {escape(str(subject.get('finish_reason') or '-'))}\n\n"
        f"[bold]asked[/]\n{escape(asked)}\n\n"
        f"[bold]answered[/]\n{escape(subject.get('output') or '(not captured)')}"
    )
    console.print(Panel(body, title=f"review item {item.id} — {item.status} ({item.assignee})"))
