"""Skills as declarative agents' tools, the server side: who may call which skill, with which arguments,
and what an agent gets instead of waiting for an approval (in process, SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agentfleet import Server, server

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fleet(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Server]:
    async with server(tmp_path, sqlite_url) as made:
        yield made


async def call(fleet: Server, key: str | None, name: str, body: dict[str, Any] | bytes) -> httpx.Response:
    headers = {"authorization": f"Bearer {fleet.keys[key]}"} if key else {}
    async with fleet.client() as http:
        if isinstance(body, bytes):
            return await http.post(f"/v1/skills/{name}/invoke", content=body, headers=headers)
        return await http.post(f"/v1/skills/{name}/invoke", json=body, headers=headers)


async def test_the_tool_definitions_are_the_declared_skills_that_resolve(fleet: Server) -> None:
    async with fleet.client() as http:
        answer = await http.get("/v1/skills", headers={"authorization": f"Bearer {fleet.keys['faq-key']}"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["agent"] == "faq"
    assert [t["function"]["name"] for t in body["tools"]] == ["send-refund", "summarize"]
    summarize = body["tools"][1]
    assert summarize["type"] == "function" and summarize["function"]["parameters"]["required"] == ["text"]
    assert [(s["name"], s["version"]) for s in body["skills"]] == [
        ("send-refund", "2.1.0"),
        ("summarize", "1.0.0"),
    ]
    assert body["unavailable"] == [
        {
            "name": "missing-skill",
            "error": "no published version of skill missing-skill satisfies '*' (published: none)",
        }
    ]


async def test_a_declared_skill_runs_with_the_agents_arguments(fleet: Server) -> None:
    answer = await call(
        fleet, "faq-key", "summarize", {"arguments": '{"text": "one two three", "maxWords": 2}'}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["skill"], body["version"], body["output"]) == (
        "summarize",
        "1.0.0",
        {"summary": "one two", "words": 2},
    )
    assert body["digest"].startswith("sha256:")


async def test_a_skill_the_agent_does_not_declare_is_refused(fleet: Server) -> None:
    answer = await call(fleet, "other-key", "summarize", {"arguments": {"text": "hello"}})
    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "type": "permission_error",
            "message": "agent 'other' does not declare skill 'summarize' (spec.declarative.skills: none)",
        }
    }


async def test_arguments_outside_the_input_schema_are_a_400_with_the_schema_error(fleet: Server) -> None:
    answer = await call(fleet, "faq-key", "summarize", {"arguments": {"text": "hi", "maxWords": 0}})
    assert answer.status_code == 400
    assert answer.json() == {
        "error": {
            "type": "invalid_input",
            "message": "skill summarize@1.0.0: input.maxWords: expected a number at least 1, found 0",
        }
    }
    answer = await call(fleet, "faq-key", "summarize", {"arguments": "{not json"})
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": {"type": "invalid_input", "message": "arguments: not valid JSON text"}},
    )
    answer = await call(fleet, "faq-key", "summarize", b"[1]")
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": {"type": "invalid_request", "message": "the body must be an object"}},
    )


async def test_an_unknown_skill_is_a_404(fleet: Server) -> None:
    answer = await call(fleet, "faq-key", "nope", {"arguments": {}})
    assert (answer.status_code, answer.json()) == (
        404,
        {"error": {"type": "not_found", "message": "skill 'nope' is not published"}},
    )
    answer = await call(fleet, "faq-key", "missing-skill", {"arguments": {}})  # declared, never published
    assert (answer.status_code, answer.json()) == (
        404,
        {
            "error": {
                "type": "not_found",
                "message": "no published version of skill missing-skill satisfies '*' (published: none)",
            }
        },
    )


async def test_without_an_agents_key_nothing_runs(fleet: Server) -> None:
    answer = await call(fleet, None, "summarize", {"arguments": {"text": "hi"}})
    assert answer.status_code == 401
    assert answer.json() == {
        "error": {
            "message": "No API key: send a fleetplane virtual key as 'Authorization: Bearer <key>' "
            "or 'x-api-key: <key>'.",
            "type": "authentication_error",
            "param": None,
            "code": "missing_api_key",
        }
    }
    async with fleet.client() as http:
        answer = await http.get("/v1/skills", headers={"authorization": "Bearer sk-wrong"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    answer = await call(fleet, "person", "summarize", {"arguments": {"text": "hi"}})
    assert (answer.status_code, answer.json()) == (
        403,
        {
            "error": {
                "type": "permission_error",
                "message": "key 'person' does not stand for an agent: skills are tools of declarative agents",
            }
        },
    )


async def test_a_call_that_needs_a_persons_approval_is_refused_not_waited_for(
    fleet: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUNDS_LEDGER", str(tmp_path / "refunds.jsonl"))
    answer = await call(
        fleet, "faq-key", "send-refund", {"arguments": {"order": "ord-7", "amount": 500}, "callId": "c1"}
    )
    assert answer.status_code == 409
    assert answer.json() == {
        "error": {
            "type": "approval_required",
            "message": "skill send-refund@2.1.0: tool payments.refund needs a person's approval for these "
            "arguments (when args.amount > 100); an agent does not wait for one: ask a person, or run it in "
            "a pipeline with an approval gate",
            "tool": "payments.refund",
        }
    }
    assert not (tmp_path / "refunds.jsonl").exists()


async def test_an_at_most_once_skill_runs_once_per_tool_call_id(
    fleet: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "refunds.jsonl"
    monkeypatch.setenv("REFUNDS_LEDGER", str(ledger))
    refund = {"arguments": {"order": "ord-7", "amount": 20}, "callId": "call_9"}
    first = await call(fleet, "faq-key", "send-refund", refund)
    again = await call(fleet, "faq-key", "send-refund", refund)
    assert first.status_code == again.status_code == 200
    output = {"refundId": "rf-ord-7", "order": "ord-7", "amount": 20, "status": "sent"}
    assert first.json()["output"] == again.json()["output"] == output
    assert "replayed" not in first.json() and again.json()["replayed"] is True
    lines = ledger.read_text().splitlines()
    assert len(lines) == 1 and '"key": "agent:faq:call_9"' in lines[0]  # the idempotency key is the call id
    answer = await call(fleet, "faq-key", "send-refund", {"arguments": {"order": "ord-8", "amount": 5}})
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": {
                "type": "invalid_request",
                "message": "skill send-refund@2.1.0 runs at most once: the call needs its callId",
            }
        },
    )


async def test_the_signing_policy_holds_for_agents_too(fleet: Server, tmp_path: Path) -> None:
    from fleetplane.skills import SkillRegistry

    await SkillRegistry(fleet.store, fleet.home).set_require_signed(True, actor="test")
    answer = await call(fleet, "faq-key", "summarize", {"arguments": {"text": "hi"}})
    assert (answer.status_code, answer.json()) == (
        403,
        {
            "error": {
                "type": "unsigned",
                "message": "summarize@1.0.0 is not signed (no skill.dsse.json) and signing is required",
            }
        },
    )
    async with fleet.client() as http:
        listed = await http.get("/v1/skills", headers={"authorization": f"Bearer {fleet.keys['faq-key']}"})
    assert listed.json()["tools"] == []  # an agent is offered nothing it could not run


async def test_after_an_attempt_without_an_outcome_the_reconcile_hook_decides(
    fleet: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = tmp_path / "refunds.jsonl"
    monkeypatch.setenv("REFUNDS_LEDGER", str(ledger))
    monkeypatch.setenv("REFUNDS_UNAVAILABLE", "1")
    refund = {"arguments": {"order": "ord-3", "amount": 30}, "callId": "call_3"}
    failed = await call(fleet, "faq-key", "send-refund", refund)
    assert (failed.status_code, failed.json()) == (
        503,
        {
            "error": {
                "type": "transient",
                "message": "skill send-refund@2.1.0: the payments provider is unavailable "
                "(REFUNDS_UNAVAILABLE is set)",
            }
        },
    )
    monkeypatch.delenv("REFUNDS_UNAVAILABLE")
    retried = await call(fleet, "faq-key", "send-refund", refund)  # reconcile: not sent, so it runs now
    assert retried.status_code == 200 and "replayed" not in retried.json()
    # The outcome is forgotten (another server process, say): the hook finds the refund in the ledger.
    fleet.tools._outcomes["agent:faq:call_3"] = None
    again = await call(fleet, "faq-key", "send-refund", refund)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["output"] == retried.json()["output"]
    assert len(ledger.read_text().splitlines()) == 1


async def test_without_a_reconcile_hook_an_attempt_without_an_outcome_is_not_run_again(
    fleet: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from agentfleet import EXAMPLES

    from fleetplane.skills import SkillRegistry

    folder = tmp_path / "skills" / "send-refund"
    shutil.copytree(EXAMPLES / "send-refund", folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("SKILL.md", "skill.yaml"):
        (folder / name).write_text((folder / name).read_text().replace('"2.1.0"', '"2.2.0"'))
    yaml = folder / "skill.yaml"
    yaml.write_text(yaml.read_text().replace('  reconcile: "refunds:find"\n', ""))
    await SkillRegistry(fleet.store, fleet.home).publish(folder, actor="test")
    monkeypatch.setenv("REFUNDS_LEDGER", str(tmp_path / "refunds.jsonl"))
    monkeypatch.setenv("REFUNDS_UNAVAILABLE", "1")
    refund = {"arguments": {"order": "ord-4", "amount": 40}, "callId": "call_4"}
    assert (await call(fleet, "faq-key", "send-refund", refund)).status_code == 503
    monkeypatch.delenv("REFUNDS_UNAVAILABLE")
    answer = await call(fleet, "faq-key", "send-refund", refund)
    assert (answer.status_code, answer.json()) == (
        409,
        {
            "error": {
                "type": "outcome_unknown",
                "message": "skill send-refund@2.2.0: an earlier attempt of call call_4 ended without an "
                "outcome and the skill has no reconcile hook: a person must check before it runs again",
            }
        },
    )
    assert not (tmp_path / "refunds.jsonl").exists()
