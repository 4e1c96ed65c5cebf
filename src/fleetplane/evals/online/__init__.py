"""Production evals: sampled, asynchronous scoring of live gateway traffic.

- `sampling`: rules by agent / model / prompt version / team and the deterministic nested hash sample;
- `config`: the online evals file (`FLEETPLANE_ONLINE_EVALS`): rules, cheap scorers, judges, audit rate;
- `items`: the store side (items claimed once, scores, feedback);
- `evaluator`: `OnlineEvaluator` polls the span store by a cursor, runs the cheap scorers on every matching
  span, sends sampled and flagged items to the judge, stores the scores, exports them as
  `gen_ai.evaluation.result` events and a score histogram, and fills the review queue.

It reads traffic only through telemetry's span store queries, after the spans were written: nothing here
runs on a request's path. It may import the ground floor and the rest of the evals wing.
"""
