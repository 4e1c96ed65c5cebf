"""The evals wing: suites, scorers, runs, statistics and gates (and, in its own subpackages, judges, online
sampling, the review queue, Pareto selection and A/B).

What it owns:
- `scoring`: the `Scorer` protocol, the `Sample` a scorer reads, the `Score` it returns and the registry of
  scorer types by name (an `EvalSuite` names its scorers; judges register theirs here too);
- `cases` / `importers`: a suite's cases read from YAML or JSONL and from promptfoo, OpenAI Evals and Agent
  Skills files, with file:line errors;
- `scorers/`: deterministic (exact, regex, JSON Schema, text overlap...) and cheap heuristic scorers, and the
  cost / latency / token dimensions;
- `runner` / `targets`: a run of a suite against a target through the gateway over HTTP;
- `results`: runs and their case x dimension x epoch scores in the store;
- `stats` / `gate`: Wilson, bootstrap, exact McNemar, Holm, and the deploy gate (`evaluate_gate`).

What it may import: the ground floor (`manifests`, `store`, `state`, `telemetry`). It calls models through
the gateway over HTTP and reads traffic through telemetry's query API and the store, never the gateway's or
another wing's internals.
"""
