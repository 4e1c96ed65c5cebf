"""Pipelines: skills composed in stages (trigger → context → route → execute → validate → sink) and run
durably.

What this wing owns:
- the plan: `expr` (the safe expression language), `plan` (a Pipeline compiled into a frozen, digested
  plan), `sources` (plans from a directory or the applied state);
- durable execution: `runs` (run rows, pins, leases), `journal` (step intents and outputs), `engine` and
  `steps` (what runs, replays, retries or waits), `faults` (crash points for tests);
- governance: `approvals`, `guardrails`, `tools` (allow-lists, MCP pins), `reasoning` (the per-run trace),
  `audit` (the always-on audit sink);
- the outside: `sinks`, `gateway` (model calls through the AI gateway), `schedule`, `worker`, `service`
  (the HTTP routes and the lifecycle the server mounts).

A wing: may import the ground floor (`manifests`, `store`, `state`, `telemetry`) and the skills wing's
public API only (`from fleetplane.skills import ...`, through `skillapi`); models are called through the
gateway over HTTP.
"""
