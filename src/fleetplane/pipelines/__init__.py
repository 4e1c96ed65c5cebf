"""Pipelines: skills composed in stages (trigger → context → route → execute → validate → sink) and run
durably.

What this wing owns:
- the plan: `plan` (a Pipeline compiled into a frozen, digested plan; expressions are the manifests'
  safe language), `sources` (plans from a directory or the applied state);
- durable execution: `runs` (run rows, pins, fenced leases), `journal` (step intents and outputs,
  retention), `engine` (start a run; take a turn on it), `stages` and `walk` (the stages in order),
  `steps` (one durable skill invocation: replay, re-run, reconcile or ask, retries), `outcomes`,
  `context` (what a turn holds), `faults` (crash points for tests);
- governance: `approvals` and `gates`, `guardrails` and `checks`, `tools` (allow-lists, tool approvals)
  and `mcp` (MCP tools pinned by definition hash), `reasoning` (the per-run trace), `audit` (the
  always-on audit sink), `control` (resume, cancel, show);
- the outside: `sinks`, `gateway` (model calls through the AI gateway), `schedule`, `worker`,
  `service` (the HTTP routes and the lifecycle the server mounts), `runtime` (deps from the environment).

A wing: may import the ground floor (`manifests`, `store`, `state`, `telemetry`) and the skills wing's
public API only (`from fleetplane.skills import ...`, through `skillapi`); models are called through the
gateway over HTTP.
"""
