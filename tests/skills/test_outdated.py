"""What `outdated` flags as a new permission between two versions' contracts."""

from __future__ import annotations

from dataclasses import replace

from skilltools import FIXTURES

from fleetplane.skills.contract import Effects, ToolRule
from fleetplane.skills.folder import read_folder
from fleetplane.skills.outdated import new_permissions


def test_new_permissions_are_flagged() -> None:
    old = read_folder(FIXTURES / "send-refund").contract
    assert new_permissions(old, old) == ()
    new = replace(
        old,
        tools=(
            ToolRule("payments.refund", "never", None),
            ToolRule("payments.lookup", "never", None),
            ToolRule("mail.send", "always", None),
        ),
        effects=Effects("external", idempotent=False, at_most_once=False, reconcile=None),
        model="chat-large",
    )
    assert new_permissions(old, new) == (
        "tool payments.refund: approval when -> never",
        "new tool mail.send (approval: always)",
        "no longer at-most-once",
        "model (none) -> chat-large",
    )
    stricter = replace(old, tools=(ToolRule("payments.refund", "always", None),))
    assert new_permissions(old, stricter) == ()
    wider_rule = replace(old, tools=(ToolRule("payments.refund", "when", "args.amount > 1000"),))
    assert new_permissions(old, wider_rule) == (
        "tool payments.refund: approval rule 'args.amount > 100' -> 'args.amount > 1000'",
    )
    summarize = read_folder(FIXTURES / "summarize").contract
    writes = replace(summarize, effects=Effects("write", idempotent=True, at_most_once=False, reconcile=None))
    assert new_permissions(summarize, writes) == ("effects pure -> write",)
