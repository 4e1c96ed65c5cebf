"""Telemetry: token counting, cost, and (later) OpenTelemetry GenAI spans, metrics and the span store.

Ground floor: may import `fleetplane.store` for its span store, nothing above.
"""
