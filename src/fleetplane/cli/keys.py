"""`fleetplane keys`: virtual keys made by hand. A secret is shown once; the store keeps only its hash."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fleetplane.cli.common import DatabaseURL, console, fail, format_time, now, with_store
from fleetplane.manifests.fields import NAME_RE, parse_duration
from fleetplane.store.applied import AppliedDocument, AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRecord, KeyRepository, NewKey, new_secret

keys_app = typer.Typer(
    name="keys",
    help="Virtual keys: create, list, revoke, rotate. A secret is shown once and stored only as a hash.",
    no_args_is_help=True,
)

_PATTERN_CHARS = set("*?[")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def tenant_path(key: KeyRecord | NewKey) -> str:
    """org/team[/user:U | /customer:C][/agent:A]: who a request made with the key is charged to."""
    parts = [key.organization, key.team]
    if key.user:
        parts.append(f"user:{key.user}")
    if key.customer:
        parts.append(f"customer:{key.customer}")
    if key.agent:
        parts.append(f"agent:{key.agent}")
    return "/".join(parts)


@keys_app.command("create")
def create(
    team: Annotated[str, typer.Option("--team", help="The team the key belongs to; it must be applied.")],
    user: Annotated[str | None, typer.Option("--user", help="A user of the team the key stands for.")] = None,
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="A customer of the team's organization (not with --user)."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="The agent that uses the key.")] = None,
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated model names, aliases or patterns it may call.")
    ] = "*",
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="The key's name (default: the team, who it is for, and a random suffix)."
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime from now: 30d, 12h, 90m, or seconds.")
    ] = None,
    database_url: DatabaseURL = None,
) -> None:
    """Create a key for an applied team; print its secret once and the tenant path it resolves to."""
    if user is not None and customer is not None:
        fail("a key stands for a user or a customer, not both: give --user or --customer")
    for option, value in (("--team", team), ("--user", user), ("--customer", customer), ("--agent", agent)):
        _check_name(option, value)
    _check_name("--name", name)
    lifetime = _lifetime(expires)
    allowed = tuple(m.strip() for m in models.split(",") if m.strip())
    if not allowed:
        fail("--models: give at least one model name or pattern, e.g. --models '*'")

    async def work(store: Store) -> tuple[KeyRecord, str]:
        applied = await AppliedRepository(store).all()
        organization = _check_tenancy(applied, team, user, customer)
        _check_models(applied, allowed)
        repo = KeyRepository(store)
        key_name = name or _made_up_name(team, agent or user or customer)
        if await repo.get(key_name) is not None:
            fail(f"a key named '{key_name}' already exists; choose another --name")
        created = now()
        key = NewKey(
            name=key_name,
            organization=organization,
            team=team,
            user=user,
            customer=customer,
            agent=agent,
            models=allowed,
            source="cli",
            expires_at=created + lifetime if lifetime is not None else None,
        )
        secret = new_secret()
        return await repo.create(key, secret=secret, now=created), secret

    record, secret = with_store(database_url, work)
    _show_secret(record, secret, title=f"Key '{record.name}' created")


@keys_app.command("list")
def list_keys(database_url: DatabaseURL = None) -> None:
    """List keys (never their secrets): name, prefix, tenant path, models, source, dates."""

    async def work(store: Store) -> list[KeyRecord]:
        return await KeyRepository(store).all()

    records = with_store(database_url, work)
    if not records:
        console.print("no keys", markup=False)
        return
    table = Table()
    for column in ("NAME", "PREFIX", "TENANT", "MODELS", "SOURCE", "CREATED", "EXPIRES", "REVOKED"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r.name,
            r.key_prefix + "...",
            tenant_path(r),
            ",".join(r.models),
            r.source,
            format_time(r.created_at),
            format_time(r.expires_at),
            format_time(r.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")], database_url: DatabaseURL = None
) -> None:
    """Revoke a key: requests made with it are refused from then on."""

    async def work(store: Store) -> KeyRecord:
        repo = KeyRepository(store)
        record = await repo.get(name)
        if record is None:
            fail(f"no key named '{name}'")
        if record.revoked_at is None:
            await repo.revoke(name, now=now())
        return record

    record = with_store(database_url, work)
    if record.revoked_at is not None:
        console.print(f"key '{name}' was already revoked at {format_time(record.revoked_at)}", markup=False)
    else:
        console.print(f"revoked key '{name}' ({tenant_path(record)})", markup=False)


@keys_app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="The key's name.")], database_url: DatabaseURL = None
) -> None:
    """Give a key a new secret, shown once; the old secret stops working at once."""

    async def work(store: Store) -> tuple[KeyRecord, str]:
        repo = KeyRepository(store)
        record = await repo.get(name)
        if record is None:
            fail(f"no key named '{name}'")
        applied = (await AppliedRepository(store).all()).get(("VirtualKey", name))
        if applied is not None and (applied.document.get("spec") or {}).get("secretRef"):
            fail(
                f"key '{name}' takes its secret from the secretRef of VirtualKey/{name}: "
                "change the secret there and run `fleetplane apply`"
            )
        secret = new_secret()
        await repo.set_secret(name, secret, now=now())
        return record, secret

    record, secret = with_store(database_url, work)
    note = "It was revoked; with the new secret it is active again." if record.revoked_at is not None else ""
    _show_secret(record, secret, title=f"Key '{name}' rotated", note=note)


def _check_name(option: str, value: str | None) -> None:
    if value is not None and not NAME_RE.match(value):
        fail(
            f"{option}: '{value}' is not a valid name; expected 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )


def _lifetime(expires: str | None) -> float | None:
    if expires is None:
        return None
    try:
        seconds = float(parse_duration(expires))
    except ValueError:
        fail(f"--expires: '{expires}' is not a duration; expected e.g. 30d, 12h, 90m or a number of seconds")
    if seconds <= 0:
        fail(f"--expires: '{expires}' is not a lifetime; expected a duration greater than 0")
    return seconds


def _check_tenancy(
    applied: Mapping[tuple[str, str], AppliedDocument], team: str, user: str | None, customer: str | None
) -> str:
    """The organization of the team, after checking the user or customer fits it."""
    team_spec = _spec(applied, "Team", team)
    if team_spec is None:
        fail(f"no Team named '{team}' is applied; apply it first with `fleetplane apply`")
    organization = str(team_spec["organization"])
    if user is not None:
        user_spec = _spec(applied, "User", user)
        if user_spec is None:
            fail(f"no User named '{user}' is applied")
        if user_spec["team"] != team:
            fail(f"User/{user} belongs to Team/{user_spec['team']}, not Team/{team}")
    if customer is not None:
        customer_spec = _spec(applied, "Customer", customer)
        if customer_spec is None:
            fail(f"no Customer named '{customer}' is applied")
        if customer_spec["organization"] != organization:
            fail(
                f"Customer/{customer} belongs to Organization/{customer_spec['organization']}, "
                f"but Team/{team} belongs to Organization/{organization}"
            )
    return organization


def _check_models(applied: Mapping[tuple[str, str], AppliedDocument], allowed: tuple[str, ...]) -> None:
    names = {name for kind, name in applied if kind == "Model"}
    for doc in applied.values():
        if doc.kind == "Model":
            names.update((doc.document.get("spec") or {}).get("aliases") or [])
    for entry in allowed:
        if _PATTERN_CHARS.isdisjoint(entry) and entry not in names:
            fail(f"--models: no Model or alias named '{entry}' is applied")
        if not _PATTERN_CHARS.isdisjoint(entry) and names and not any(fnmatchcase(n, entry) for n in names):
            console.print(
                f"note: the pattern '{entry}' matches no applied model yet", style="dim", markup=False
            )


def _spec(applied: Mapping[tuple[str, str], AppliedDocument], kind: str, name: str) -> dict[str, Any] | None:
    doc = applied.get((kind, name))
    return (doc.document.get("spec") or {}) if doc is not None else None


def _made_up_name(team: str, who: str | None) -> str:
    stem = f"{team}-{who}" if who else team
    return f"{stem[:56].rstrip('-')}-{secrets.token_hex(3)}"


def _show_secret(record: KeyRecord, secret: str, *, title: str, note: str = "") -> None:
    body = Text()
    body.append(secret + "\n\n", "bold")
    body.append(f"name:    {record.name}\n")
    body.append(f"tenant:  {tenant_path(record)}\n")
    body.append(f"models:  {','.join(record.models)}\n")
    body.append(f"expires: {format_time(record.expires_at)}\n")
    if note:
        body.append(note + "\n")
    body.append("This secret will not be shown again: store it now.", "bold yellow")
    console.print(Panel(body, title=title, border_style="yellow"))
