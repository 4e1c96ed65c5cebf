"""Crash points for tests: a worker kills itself with SIGKILL at a named point of a step's life.

`FLEETPLANE_PIPELINES_FAULT=POINT` or `POINT:STEP_KEY` (e.g. `after_execute:refund`, `after_intent:notify[1]`,
`after_sink_send:sink:crm`). SIGKILL, not an exception: nothing after the point runs — no `finally`, no
lease release, no span end — exactly as when a machine dies. Unset (always, outside tests) it costs one
environment lookup.

| point | the journal holds | the outside world has seen |
|---|---|---|
| `after_intent` | the step's intent | nothing of this attempt |
| `after_execute` | the intent | the skill's effect (its output is lost) |
| `after_commit` | the committed output | the effect; later steps and sinks not yet |
| `after_sink_intent` | the sink's intent | nothing from the sink |
| `after_sink_send` | the sink's intent | the sink's delivery (not recorded as done) |
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "FLEETPLANE_PIPELINES_FAULT"
POINTS = ("after_intent", "after_execute", "after_commit", "after_sink_intent", "after_sink_send")


def crash_point(point: str, step_key: str) -> None:
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    name, _, key = wanted.partition(":")
    if name == point and (not key or key == step_key):
        os.kill(os.getpid(), signal.SIGKILL)
