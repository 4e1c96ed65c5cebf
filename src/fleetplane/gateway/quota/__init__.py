"""L1: token budgets and hierarchical quotas, as a gateway policy over the state floor's quota engine.

`rules` turns Quota manifests (and the `quota:` fields of tenant kinds) into rules; `schedule` says which
limits are in force at a moment; `scopes` matches a request attempt to the rules and names its counters;
`reserve` sizes a reservation; `policy` admits, charges progressively and settles; `waiting` queues
requests that may wait for quota.
"""
