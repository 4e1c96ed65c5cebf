"""The model simulator: an OpenAI- and Anthropic-compatible HTTP server with seeded replies whose token
counts are exact, latency distributions, provider-faithful rate limits and error shapes, injectable faults
(errors, overloads, outages, hung and truncated streams), per-request `[[sim ...]]` directives and an admin
API, run as its own process (`python -m fleetplane.sim`, `SimProcess`). See docs/sim.md.

A wing: imports only the ground floor's `fleetplane.telemetry.tokens` (token counts) and
`fleetplane.state.clock` (injected time) from the rest of fleetplane.
"""
