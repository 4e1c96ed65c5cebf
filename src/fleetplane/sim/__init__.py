"""The model simulator: an OpenAI- and Anthropic-compatible HTTP server with seeded content,
latency distributions, provider-faithful rate limits and injectable faults, run as its own process.

A wing: imports the ground floor only (`telemetry.tokens` for token counts).
"""
