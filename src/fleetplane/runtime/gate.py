"""The rollout gate: the hook through which a rollout asks "may this new revision replace the serving one?".

An Agent names an eval suite in `spec.rollout.gate`; when its new revision's surge replica is ready, the
reconciler holds the rollout (the surge replica takes no ordinary traffic, no old replica is stopped) and
runs the gate as a task of its own, off the reconcile loop. The runtime wing knows nothing of evals: the
top floor fills `RolloutGate` (`fleetplane.cli.rollout_gate.EvalsRolloutGate` runs the suite against both
revisions through invokes pinned with `x-fleetplane-revision` and asks the evals wing's statistical gate).

A pass lets the rollout go on; a block — or a gate that fails, with its error as the reason — stops it:
the surge replica is removed, and the serving revision is made the newest again (an undo, stored like
any other), so the blocked one does not come back with the next server start; `rollout status` says
`blocked` with the gate's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal, Protocol

GateState = Literal["running", "passed", "blocked"]


@dataclass(frozen=True)
class GateRequest:
    agent: str
    suite: str  # the EvalSuite named by the agent's spec.rollout.gate
    margin: float | None  # overrides every gated dimension's margin when set
    candidate: int  # the new revision's number (pin invokes to it with x-fleetplane-revision)
    baseline: int  # the serving revision's number


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str


class RolloutGate(Protocol):
    async def __call__(self, request: GateRequest) -> GateVerdict: ...


@dataclass(eq=False)
class GateRun:
    """The gate of one revision of one agent: running, then passed or blocked, with why."""

    digest: str
    number: int
    request: GateRequest
    state: GateState = "running"
    reason: str = ""
    undone: int | None = None  # the revision number the block rolled back to (the serving spec again)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def settle(self, verdict: GateVerdict) -> None:
        self.state = "passed" if verdict.passed else "blocked"
        self.reason = verdict.reason

    def report(self) -> dict[str, object]:
        return {
            "suite": self.request.suite,
            "candidate": self.request.candidate,
            "baseline": self.request.baseline,
            "state": self.state,
            "reason": self.reason,
        }


async def ask(gate: RolloutGate, run: GateRun) -> None:
    """Run `gate` for `run`; an error in the gate blocks, its error the reason (a gate that cannot tell
    must not let a revision through)."""
    try:
        verdict = await gate(run.request)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        verdict = GateVerdict(False, f"the rollout gate failed: {type(exc).__name__}: {exc}")
    run.settle(verdict)


async def cancel(run: GateRun) -> bool:
    """Stop `run`'s gate if it is still running; True when it was."""
    task = run.task
    if task is None or task.done():
        return False
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True


def gate_message(run: GateRun, ready: int, surge: str | None, surge_state: str | None) -> str | None:
    """What `rollout status` says of a gated rollout: blocked (why), running, or waiting for the surge
    replica; None once the gate passed (the rolling update's own message applies)."""
    suite, baseline = run.request.suite, run.request.baseline
    if run.state == "blocked":
        again = f" as revision {run.undone}" if run.undone is not None else ""
        return (
            f"revision {run.number} blocked by its rollout gate ({suite}): {run.reason}; "
            f"revision {baseline} keeps serving{again} ({ready} ready)"
        )
    if run.state != "running":
        return None
    if run.task is None:
        waiting = f"{surge} is {surge_state}" if surge else "starting it"
        return (
            f"revision {run.number}: rollout gate ({suite}) waits for the new revision's surge replica "
            f"({waiting}); revision {baseline} serving"
        )
    return f"revision {run.number}: rollout gate ({suite}) running against revision {baseline}, which serves"
