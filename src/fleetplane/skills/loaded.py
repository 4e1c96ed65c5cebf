"""A verified skill ready to run: `invoke` is one attempt, checked against the contract on both sides.

One attempt: input guardrails and schema → the entrypoint under the contract's timeout → output schema
and guardrails. Retrying is the caller's (the pipelines engine reads `contract.retry`), because only the
caller knows the run's journal and whether an attempt's side effect may already have happened — which
is what `reconcile` answers.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetplane.skills import prompt
from fleetplane.skills.contract import Contract, SkillRef
from fleetplane.skills.errors import SkillError, TransientError
from fleetplane.skills.evalcases import EvalSuite
from fleetplane.skills.guardrails import violations
from fleetplane.skills.pyloader import load_callable, package_for
from fleetplane.skills.schema import is_object_schema, validate
from fleetplane.skills.spec import Entrypoint, PromptEntry, PythonEntry


@dataclass
class SkillContext:
    """What a skill knows about the attempt it runs in, and the gateway and tools it may use."""

    run_id: str
    step_id: str
    attempt: int
    idempotency_key: str  # run id + step id (+ loop index): the same for every attempt and version
    traceparent: str | None = None
    gateway_url: str | None = None  # the gateway's OpenAI base URL, e.g. http://127.0.0.1:8700/v1
    gateway_key: str | None = None
    call_tool: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    log: Callable[[str], None] = field(default=print)


class LoadedSkill:
    def __init__(
        self,
        ref: SkillRef,
        contract: Contract,
        entrypoint: Entrypoint,
        files: Mapping[str, bytes],
        evals: EvalSuite | None = None,
        signer: str | None = None,
    ) -> None:
        self.ref = ref
        self.contract = contract
        self.entrypoint = entrypoint
        self.evals = evals or EvalSuite((), 1.0)
        self.signer = signer  # the trusted key id that signed it, None when unsigned
        self._files = files
        self._package: str | None = None
        self.label = f"skill {ref.name}@{ref.version}"

    def tool_definition(self) -> dict[str, Any]:
        """The skill as an OpenAI function-calling tool (what a declarative agent offers its model): its
        name (kebab-case, so always a valid function name), description and input schema."""
        return {
            "type": "function",
            "function": {
                "name": self.ref.name,
                "description": self.contract.description[:1024],
                "parameters": self.contract.input_schema,
            },
        }

    def __repr__(self) -> str:
        return f"LoadedSkill({self.ref.name}@{self.ref.version}, {self.ref.digest})"

    async def invoke(self, input: dict[str, Any], ctx: SkillContext) -> dict[str, Any]:
        self.check_input(input)
        try:
            async with asyncio.timeout(self.contract.timeout):
                output = await self._run(input, ctx)
        except TimeoutError:
            raise SkillError(
                "timeout", f"{self.label} did not finish within its timeout of {self.contract.timeout:g}s"
            ) from None
        self.check_output(output)
        return output

    async def reconcile(self, input: dict[str, Any], ctx: SkillContext) -> dict[str, Any] | None:
        """The outcome if the attempt's side effect happened (checked like an output), None if it did not."""
        target = self.contract.effects.reconcile
        if target is None:
            raise SkillError(
                "invalid", f"{self.label} has no reconcile hook (effects.reconcile in skill.yaml)"
            )
        try:
            async with asyncio.timeout(self.contract.timeout):
                answer = await self._call(target, input, ctx)
        except TimeoutError:
            raise SkillError("timeout", f"{self.label}: reconcile did not finish within "
                             f"{self.contract.timeout:g}s") from None  # fmt: skip
        if answer is None:
            return None
        self.check_output(answer)
        return answer

    def check_input(self, input: Any) -> None:
        if not isinstance(input, dict):
            raise SkillError(
                "invalid_input", f"{self.label}: the input must be a mapping, found {type(input).__name__}"
            )
        problems = validate(input, self.contract.input_schema)
        if problems:
            raise SkillError("invalid_input", f"{self.label}: {problems[0].render('input')}")
        for violation in violations(self.contract.guardrails, input, "input"):
            raise SkillError("invalid_input", f"{self.label}: {violation}")

    def check_output(self, output: Any) -> None:
        if not isinstance(output, dict):
            raise SkillError("invalid_output", f"{self.label}: the output must be a mapping, "
                             f"found {type(output).__name__}")  # fmt: skip
        schema = self.contract.output_schema
        # A prompt skill with a text output schema answers {"text": ...}; the schema is the text's.
        value = output.get("text") if not is_object_schema(schema) else output
        problems = validate(value, schema)
        if problems:
            raise SkillError("invalid_output", f"{self.label}: {problems[0].render('output')}")
        for violation in violations(self.contract.guardrails, output, "output"):
            raise SkillError("invalid_output", f"{self.label}: {violation}")

    async def _run(self, input: dict[str, Any], ctx: SkillContext) -> Any:
        if isinstance(self.entrypoint, PromptEntry):
            return await prompt.call(self.contract, self.entrypoint, input, ctx)
        assert isinstance(self.entrypoint, PythonEntry)
        return await self._call(self.entrypoint.target, input, ctx)

    async def _call(self, target: str, input: dict[str, Any], ctx: SkillContext) -> Any:
        if self._package is None:
            self._package = package_for(self.ref.digest, f"{self.ref.name}@{self.ref.version}", self._files)
        try:
            function = load_callable(self._package, target)
        except Exception as exc:
            raise SkillError("failed", f"{self.label}: cannot load {target} from scripts/: "
                             f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        # The skill gets its own copy: whatever it does to its input, the caller's journal keeps the original.
        argument = copy.deepcopy(input)
        try:
            if inspect.iscoroutinefunction(function):
                result = await function(argument, ctx)
            else:
                # A blocking callable must not stall the event loop every other step shares.
                result = await asyncio.to_thread(function, argument, ctx)
                if inspect.isawaitable(result):
                    result = await result
        except SkillError:
            raise
        except TransientError as exc:
            raise SkillError("transient", f"{self.label}: {exc}") from exc
        except (TimeoutError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise SkillError("failed", f"{self.label}: {target} raised {type(exc).__name__}: {exc}") from exc
        return result
