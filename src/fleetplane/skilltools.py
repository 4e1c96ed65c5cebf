"""Published skills as tools for declarative agents: the server side of function calling.

`GET /v1/skills` answers the OpenAI tool definitions of the skills the calling agent declares
(`spec.declarative.skills` of its applied Agent manifest); `POST /v1/skills/{name}/invoke` runs one tool
call. Both take the caller's virtual key (the sandbox bridge injects the agent's own), authenticated by the
gateway's key index; the agent is who the key stands for, never what the body says.

An invoke is governed like a pipeline step: the skill must be declared by that agent; the version is
resolved from the registry at call time (the run id buckets canaries) and loaded verified under the trust
file and the signing policy; the arguments are checked against the input schema and guardrails (400 with
the error); a tool rule of the skill that would need a person for these arguments refuses the call (409):
an agent is never blocked waiting for an approval. The idempotency key is the agent's tool call id, and
an at-most-once skill answers a repeated call id with the first outcome instead of running again; after
an attempt that ended without one (a failure, a timeout), it asks the skill's reconcile hook whether the
effect happened before running again, and without a hook refuses (409): a person must look first.

A top-floor module: it composes the gateway (authentication) and the skills wing, which never meet.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fleetplane.gateway.auth import KeyIndex, presented_secret
from fleetplane.gateway.errors import GatewayError
from fleetplane.gateway.tenant import Tenant
from fleetplane.manifests.agent import Agent
from fleetplane.skills import LoadedSkill, SkillCatalog, SkillContext, SkillError
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store

# A SkillError kind → the HTTP status an agent's tool call gets for it.
STATUS = {
    "invalid_input": 400,
    "not_found": 404,
    "invalid": 403,
    "tampered": 403,
    "untrusted": 403,
    "revoked": 403,
    "unsigned": 403,
    "timeout": 504,
    "transient": 503,
    "failed": 502,
    "invalid_output": 502,
}
REMEMBERED = 4096  # at-most-once calls kept per server, by idempotency key


class Refusal(Exception):
    """A tool call refused or failed: `{"error": {"type", "message", ...}}` with its status."""

    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra

    def response(self) -> Response:
        return _json({"error": {"type": self.kind, "message": self.message, **self.extra}}, self.status)


class Unauthenticated(Refusal):
    """The gateway's own refusal of the key, answered exactly as the gateway answers it."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.status, error.kind, error.message)
        self.error = error

    def response(self) -> Response:
        return Response(
            self.error.body("openai"),
            status_code=self.error.status,
            headers=self.error.response_headers(),
            media_type="application/json",
        )


def _json(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def declared_skills(entries: list[str]) -> dict[str, str]:
    """`name@constraint` (or a bare name: any version) entries as name → constraint."""
    out: dict[str, str] = {}
    for entry in entries:
        name, _, constraint = entry.partition("@")
        out[name.strip()] = constraint.strip() or "*"
    return out


@dataclass
class _Declared:
    generation: int
    by_agent: dict[str, dict[str, str]]


class SkillTools:
    """The routes; `keys` is the gateway's `KeyIndex` (GatewayRuntime.keys), `gateway_url` its OpenAI base
    URL (…/v1) for prompt skills, which call it with the agent's own key."""

    def __init__(self, store: Store, keys: KeyIndex, catalog: SkillCatalog, gateway_url: str | None) -> None:
        self.store, self.keys, self.catalog, self.gateway_url = store, keys, catalog, gateway_url
        self._declared: _Declared | None = None
        # At-most-once calls by idempotency key: the answer, or None for an attempt without an outcome.
        self._outcomes: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}  # one attempt at a time per key

    def routes(self) -> list[Route]:
        return [
            Route("/v1/skills", self.tools, methods=["GET"]),
            Route("/v1/skills/{name}/invoke", self.invoke, methods=["POST"]),
        ]

    async def _declared_by(self, agent: str) -> dict[str, str]:
        """The agent's declared skills, from the applied manifests (re-read when the generation moves)."""
        repo = AppliedRepository(self.store)
        generation = await repo.generation()
        if self._declared is None or self._declared.generation != generation:
            by_agent: dict[str, dict[str, str]] = {}
            for (kind, name), doc in (await repo.all()).items():
                if kind != Agent.KIND:
                    continue
                try:
                    spec = Agent.model_validate(doc.document).spec
                except ValueError:
                    continue  # a document that no longer validates declares nothing
                if spec.declarative is not None:
                    by_agent[name] = declared_skills(spec.declarative.skills)
            self._declared = _Declared(generation, by_agent)
        return self._declared.by_agent.get(agent, {})

    async def _agent(self, request: Request) -> tuple[Tenant, str]:
        try:
            tenant = await self.keys.authenticate(request.headers)
        except GatewayError as exc:
            raise Unauthenticated(exc) from None
        if tenant.agent is None:
            raise Refusal(
                403,
                "permission_error",
                f"key {tenant.key_name!r} does not stand for an agent: "
                "skills are tools of declarative agents",
            )
        return tenant, tenant.agent

    async def _load(self, name: str, constraint: str, run_id: str | None) -> LoadedSkill:
        try:
            ref = await self.catalog.resolve(name, constraint, run_id=run_id)
            return await self.catalog.load(ref)
        except SkillError as exc:
            raise Refusal(STATUS.get(exc.kind, 502), exc.kind, str(exc)) from None

    async def tools(self, request: Request) -> Response:
        try:
            _, agent = await self._agent(request)
            declared = await self._declared_by(agent)
            tools, skills, unavailable = [], [], []
            for name, constraint in sorted(declared.items()):
                try:
                    skill = await self._load(name, constraint, request.query_params.get("runId"))
                except Refusal as refused:
                    unavailable.append({"name": name, "error": refused.message})
                    continue
                tools.append(skill.tool_definition())
                skills.append({"name": name, "version": skill.ref.version, "digest": skill.ref.digest})
        except Refusal as refused:
            return refused.response()
        return _json({"agent": agent, "tools": tools, "skills": skills, "unavailable": unavailable})

    async def invoke(self, request: Request) -> Response:
        try:
            return _json(await self._invoke(request, request.path_params["name"]))
        except Refusal as refused:
            return refused.response()

    async def _invoke(self, request: Request, name: str) -> dict[str, Any]:
        _, agent = await self._agent(request)
        declared = await self._declared_by(agent)
        if name not in declared:
            if not await self.catalog.registry.versions(name):
                raise Refusal(404, "not_found", f"skill {name!r} is not published")
            listed = ", ".join(f"{n}@{c}" for n, c in sorted(declared.items())) or "none"
            raise Refusal(
                403,
                "permission_error",
                f"agent {agent!r} does not declare skill {name!r} (spec.declarative.skills: {listed})",
            )
        body = _body(await request.body())
        arguments, call_id, run_id = body["arguments"], body["callId"], body["runId"]
        skill = await self._load(name, declared[name], run_id or call_id)
        label = f"skill {name}@{skill.ref.version}"
        try:
            skill.check_input(arguments)
        except SkillError as exc:
            raise Refusal(400, exc.kind, str(exc)) from None
        for rule in skill.contract.tools:
            # The skill's tool calls are not known before it runs: its rules are asked with the call's
            # arguments as both `args` and `input`, and a rule that cannot be evaluated asks (fails closed).
            if rule.requires_approval(arguments, arguments):
                why = f"when {rule.when}" if rule.approval == "when" else "always"
                raise Refusal(
                    409,
                    "approval_required",
                    f"{label}: tool {rule.name} needs a person's approval for these arguments ({why}); "
                    "an agent does not wait for one: ask a person, "
                    "or run it in a pipeline with an approval gate",
                    tool=rule.name,
                )
        effects = skill.contract.effects
        if effects.at_most_once and not call_id:
            raise Refusal(400, "invalid_request", f"{label} runs at most once: the call needs its callId")
        key = f"agent:{agent}:{call_id or run_id or name}"
        ctx = SkillContext(
            run_id=run_id or call_id or key,
            step_id=f"tool:{name}",
            attempt=1,
            idempotency_key=key,
            traceparent=request.headers.get("traceparent"),
            gateway_url=self.gateway_url,
            gateway_key=presented_secret(request.headers),
        )
        if effects.at_most_once:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                return await self._once(skill, arguments, ctx, call_id)
        return _answer(skill, await _run(skill, arguments, ctx))

    async def _once(
        self, skill: LoadedSkill, arguments: dict[str, Any], ctx: SkillContext, call_id: str
    ) -> dict[str, Any]:
        key, label = ctx.idempotency_key, f"skill {skill.ref.name}@{skill.ref.version}"
        if key in self._outcomes:
            earlier = self._outcomes[key]
            if earlier is not None:
                return {**earlier, "replayed": True}
            # An earlier attempt ended without an outcome: its effect may have happened.
            if skill.contract.effects.reconcile is None:
                raise Refusal(
                    409,
                    "outcome_unknown",
                    f"{label}: an earlier attempt of call {call_id} ended without an outcome and the skill "
                    "has no reconcile hook: a person must check before it runs again",
                )
            try:
                found = await skill.reconcile(arguments, ctx)
            except SkillError as exc:
                raise Refusal(STATUS.get(exc.kind, 502), exc.kind, str(exc)) from None
            if found is not None:
                self._remember(key, _answer(skill, found))
                return {**_answer(skill, found), "replayed": True}
        self._remember(key, None)
        answer = _answer(skill, await _run(skill, arguments, ctx))
        self._remember(key, answer)
        return answer

    def _remember(self, key: str, answer: dict[str, Any] | None) -> None:
        self._outcomes[key] = answer
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > REMEMBERED:
            old, _ = self._outcomes.popitem(last=False)
            lock = self._locks.get(old)
            if lock is not None and not lock.locked():
                del self._locks[old]


async def _run(skill: LoadedSkill, arguments: dict[str, Any], ctx: SkillContext) -> dict[str, Any]:
    try:
        return await skill.invoke(arguments, ctx)
    except SkillError as exc:
        raise Refusal(STATUS.get(exc.kind, 502), exc.kind, str(exc)) from None


def _answer(skill: LoadedSkill, output: dict[str, Any]) -> dict[str, Any]:
    ref = skill.ref
    return {"skill": ref.name, "version": ref.version, "digest": ref.digest, "output": output}


def _body(raw: bytes) -> dict[str, Any]:
    """`{"arguments": object or JSON text (as a model writes it), "callId": str, "runId": str}`."""
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise Refusal(400, "invalid_request", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_request", "the body must be an object")
    arguments = body.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            raise Refusal(400, "invalid_input", "arguments: not valid JSON text") from None
    if not isinstance(arguments, dict):
        raise Refusal(400, "invalid_input", "arguments: expected an object")
    ids = {k: body.get(k) for k in ("callId", "runId")}
    for field, value in ids.items():
        if value is not None and not isinstance(value, str):
            raise Refusal(400, "invalid_request", f"{field}: expected a string")
    return {"arguments": arguments, "callId": ids["callId"] or "", "runId": ids["runId"] or ""}
